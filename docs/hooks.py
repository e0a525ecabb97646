"""mkdocs hooks: pages generated from the code, so that they cannot drift from it.

- `reference/<module>.md`, one per public module of esparse (found on disk, so a new or split
  module gets its page), each rendered by mkdocstrings from the docstrings;
- `reference/index.md`, the curated top-level API (`esparse.__all__`), grouped as in
  `esparse/__init__.py`;
- `claims.md`, from the claim modules (`experiments.claims`: statement, paper, protocol and
  criterion from the module docstring, configs per scale) and, when present, the results JSON
  and figure of each claim in $ESPARSE_RESULTS (default `results/`);
- the per-backend method table of the projection guide, from `esparse.selection.AUTO`,
  rewritten between its markers (the committed page carries the same rows, so that it reads
  whole unbuilt);
- a warning (an error under `mkdocs build --strict`) for a public module without `__all__`
  and for every public object of a module's `__all__` without a docstring.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import logging
import os
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.plugins.esparse")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def public_modules() -> list[str]:
    """esparse's public modules, from the files on disk: names not starting with "_"."""
    pkg = ROOT / "esparse"
    names = [p.stem for p in pkg.glob("*.py") if not p.stem.startswith("_")]
    names += [
        p.name
        for p in pkg.iterdir()
        if p.is_dir() and not p.name.startswith("_") and (p / "__init__.py").exists()
    ]
    return sorted(names)


def undocumented() -> list[str]:
    """Public modules without __all__, and names of an __all__ without a docstring."""
    problems = []
    for name in public_modules():
        module = importlib.import_module(f"esparse.{name}")
        if not inspect.getdoc(module):
            problems.append(f"esparse.{name}: module has no docstring")
        names = getattr(module, "__all__", None)
        if names is None:
            problems.append(f"esparse.{name}: module has no __all__")
            continue
        for attr in names:
            obj = getattr(module, attr, None)
            if obj is None:
                problems.append(f"esparse.{name}.{attr}: listed in __all__ but not defined")
            elif (inspect.isfunction(obj) or inspect.isclass(obj)) and not obj.__doc__:
                problems.append(f"esparse.{name}.{attr}: public object has no docstring")
    return problems


# ---------------------------------------------------------------------- pages


def _reference_page(module: str) -> str:
    # The module is the page's heading (so that `[esparse.<module>][]` links resolve).
    return (
        f"::: esparse.{module}\n"
        "    options:\n"
        "      show_root_heading: true\n"
        "      show_root_full_path: true\n"
        "      heading_level: 1\n"
    )


def _reference_index() -> str:
    import esparse

    groups = {
        "Kernels": esparse._KERNELS,
        "Masks": esparse._MASKS,
        "Models": esparse._MODELS,
        "Engine": esparse._ENGINE,
        "Analysis": esparse._ANALYSIS,
    }
    lines = [
        "# API reference",
        "",
        "`import esparse` gives the curated names below (imported on first use; "
        "`import esparse` itself takes a few milliseconds). Everything else is in the "
        "modules, one page each in this section.",
        "",
    ]
    for title, names in groups.items():
        lines += [f"## {title}", "", "| name | defined in |", "|---|---|"]
        for name, module in names.items():
            lines.append(f"| [`esparse.{name}`][esparse.{module}.{name}] | `esparse.{module}` |")
        lines.append("")
    lines += ["## Modules", ""]
    for module in public_modules():
        summary = (inspect.getdoc(importlib.import_module(f"esparse.{module}")) or "").split("\n")[
            0
        ]
        lines.append(f"- [`esparse.{module}`]({module}.md): {summary}")
    return "\n".join(lines) + "\n"


def _docstring_sections(doc: str) -> tuple[str, str, str]:
    """(intro, protocol, criterion) paragraphs of a claim module's docstring."""
    intro, protocol, criterion, rest = [], [], [], []
    current = intro
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.startswith("Protocol"):
            current = protocol
        elif stripped.startswith("Criterion"):
            current = criterion
        elif not stripped and current is criterion:
            current = rest
        current.append(line)
    return tuple(" ".join(s.split()) for s in ("\n".join(p) for p in (intro, protocol, criterion)))


def _strip_label(text: str) -> str:
    head, sep, tail = text.partition(":")
    return tail.strip() if sep and len(head) < 40 else text


def _config_table(claim) -> list[str]:
    lines = ["| scale | config |", "|---|---|"]
    for scale, cfg in claim.configs.items():
        fields = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(cfg).items())
        lines.append(f"| {scale} | `{fields}` |")
    return lines


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def claims_page(results_dir: Path) -> tuple[str, dict[str, Path]]:
    """The claims page and the figures it links (page path -> file to copy)."""
    from experiments import claims as registry
    from experiments.core import PAPERS

    figures: dict[str, Path] = {}
    lines = [
        "# Claims",
        "",
        "Generated at build time from the claim modules of `experiments/claims/` (statement, "
        "paper, protocol, pre-registered criterion, configs) and from the results JSON of "
        f"each claim in `{results_dir.name}/` when present (set `ESPARSE_RESULTS` to build "
        "from another results directory). Run a claim with "
        "`python -m experiments <id> --scale quick`.",
        "",
        "| id | paper | statement | verdict |",
        "|---|---|---|---|",
    ]
    records = {}
    for cid in registry.claim_ids():
        claim = registry.get(cid)
        path = results_dir / f"{cid}.json"
        record = None
        if path.exists():
            try:
                record = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                log.warning("claims page: unreadable results file %s", path)
        records[cid] = record
        verdict = f"{record['verdict']} ({record['scale']})" if record else "not run"
        lines.append(
            f"| [`{cid}`](#{cid}) | {claim.paper} | {_cell(claim.statement)} | {verdict} |"
        )
    lines.append("")
    for cid in registry.claim_ids():
        claim = registry.get(cid)
        module = importlib.import_module(f"experiments.claims.{registry.CLAIM_MODULES[cid]}")
        intro, protocol, criterion = _docstring_sections(inspect.getdoc(module) or "")
        paper_key = claim.paper.split()[0]
        lines += [
            f"## `{cid}` {{#{cid}}}",
            "",
            f"**Statement.** {claim.statement}"
            + (" *(reconstruction from the paper's abstract)*" if claim.reconstruction else ""),
            "",
            f"**Paper.** {claim.paper}: {PAPERS.get(paper_key, '')}",
            "",
            f"**Literature anchor.** {claim.anchor}",
            "",
            f"**Protocol.** {_strip_label(protocol) or intro}",
            "",
            f"**Criterion.** {_strip_label(criterion) or '(see the module)'}",
            "",
            *_config_table(claim),
            "",
            f"Source: `experiments/claims/{registry.CLAIM_MODULES[cid]}.py`.",
            "",
        ]
        changes = getattr(claim, "changes", ())
        if changes:
            lines += ["**Protocol changes made after results had been seen.**", ""]
            lines += [
                f"- {c.date}: {_cell(c.what)} Reason: {_cell(c.reason)} "
                f"Verdict before: {c.verdict_before}."
                for c in changes
            ]
            lines.append("")
        record = records[cid]
        if record is None:
            lines += ["*No result in this build.*", ""]
            continue
        env = record.get("environment", {})
        lines += [
            f"**Latest verdict: {record['verdict']}** (scale {record['scale']}, "
            f"{record['seeds']} seeds, backend {env.get('backend')}, jax {env.get('jax')}, "
            f"esparse {record.get('code', {}).get('esparse_version', '?')}, "
            f"git {env.get('git_commit')}).",
            "",
            f"{record.get('headline', '')}",
            "",
        ]
        for check in record.get("checks", []):
            lines.append(
                f"- {_cell(check['name'])}: **{check['outcome']}** ({_cell(check['detail'])})"
            )
        for name, sub in record.get("sub_verdicts", {}).items():
            lines.append(f"- verdict *{name}*: **{sub['verdict']}**")
        lines.append("")
        png = results_dir / f"{cid}.png"
        if png.exists():
            figures[f"claims/{cid}.png"] = png
            lines += [f"![{cid}](claims/{cid}.png)", ""]
    return "\n".join(lines) + "\n", figures


# ---------------------------------------------------------------------- mkdocs events


def on_config(config):
    """Append one API reference page per public module to the nav."""
    reference = [{"Overview": "reference/index.md"}]
    reference += [{f"esparse.{m}": f"reference/{m}.md"} for m in public_modules()]
    config["nav"] = [*(config["nav"] or []), {"API reference": reference}]
    return config


def on_files(files, config):
    """Add the generated pages; report missing __all__ and docstrings as warnings."""
    for problem in undocumented():
        log.warning("%s", problem)

    def add(path: str, content) -> None:
        files.append(File.generated(config, path, content=content))

    add("reference/index.md", _reference_index())
    for module in public_modules():
        add(f"reference/{module}.md", _reference_page(module))
    results = Path(os.environ.get("ESPARSE_RESULTS", ROOT / "results"))
    page, figures = claims_page(results)
    add("claims.md", page)
    for path, src in figures.items():
        add(path, src.read_bytes())
    return files


_WHY = {
    ("cpu", "search"): "a threshold search over row blocks kept in cache, about ten counting "
    "passes per block; XLA:CPU lowers lax.top_k to a full sort (5x slower)",
    ("cuda", "top_k"): "XLA:GPU dispatches lax.top_k to a radix select near memory bandwidth, "
    "where the search would be many small sequential kernels",
    ("tpu", "top_k"): "exact lax.top_k; lax.approx_max_k is not exact, and fixing it up would "
    "need the search's passes",
}
_BACKENDS = (("cpu", "CPU"), ("cuda", "GPU (CUDA, ROCm)"), ("tpu", "TPU"))


def selection_rows() -> str:
    """Rows of the per-backend method table, from esparse.selection.AUTO."""
    try:
        from esparse.selection import AUTO
    except ImportError:
        log.warning("projection guide: esparse.selection.AUTO not found")
        return "| (unknown) | | |"
    rows = []
    for platform, label in _BACKENDS:
        method = AUTO.get(platform, AUTO.get("default", "?"))
        why = _WHY.get((platform, method))
        if why is None:
            log.warning("projection guide: no reason for %r on %s in docs/hooks.py", method, label)
        rows.append(f'| {label} | "{method}" | {why} |')
    return "\n".join(rows)


SELECTION_TABLE = re.compile(
    r"(<!-- selection-auto-table: begin -->\n)(.*?)(\n<!-- selection-auto-table: end -->)", re.S
)


def selection_table() -> str:
    """The per-backend method table as it stands between the markers of a page (header, rows,
    a blank line either side)."""
    return f'\n| backend | "auto" picks | why |\n|---|---|---|\n{selection_rows()}\n'


def committed_selection_table(markdown: str) -> str | None:
    """The table between the markers of a hand-written page, or None when it has none."""
    found = SELECTION_TABLE.search(markdown)
    return found.group(2) if found else None


def on_page_markdown(markdown, page, config, files):
    """Refresh the generated parts of hand-written pages. They are committed too (filled in,
    so that a page read unbuilt shows no placeholder); the build rewrites them from the code
    and tests/test_docs.py checks that the committed text is what the build writes."""
    return SELECTION_TABLE.sub(lambda m: m.group(1) + selection_table() + m.group(3), markdown)
