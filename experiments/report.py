"""REPORT.md: one table of every claim with its verdict and key numbers beside the anchor
figures, each linking its figure, then the checks behind each verdict and the environment."""

from __future__ import annotations

from pathlib import Path

from esparse import io
from experiments.runner import load_record

RECONSTRUCTION_NOTE = (
    "The bodies of the Fang-Dong-Zhang and Hodas-Stinis papers were not available: the "
    "protocols of claims marked *reconstruction* are our reconstructions from their abstracts."
)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


CODE_NOTE = (
    "*code*: the digest of the sources behind each row (the esparse package, the shared claim "
    "helpers and the claim's module) and the git commit it ran at (`+dirty`: with uncommitted "
    "changes). A change to any of those sources makes the runner redo the claim."
)


def _code(record: dict) -> str:
    code, env = record.get("code", {}), record["environment"]
    commit = env.get("git_commit") or "no git"
    dirty = "+dirty" if env.get("git_dirty") else ""
    return f"`{code.get('source_digest', '?')}` ({commit}{dirty})"


def _power(check: dict) -> str:
    if check.get("lacks_power"):
        return " *lacks power: the CI half-width exceeds the margin tested*"
    return ""


def _changes_section(records: list[dict]) -> list[str]:
    """Every protocol change made after results were seen, with reason and verdicts."""
    rows = [
        f"| `{r['claim']}` | {c['date']} | {_cell(c['what'])} | {_cell(c['reason'])} | "
        f"{_cell(c['verdict_before'])} | {r['verdict']} ({r['scale']}) |"
        for r in records
        for c in r.get("protocol_changes", [])
    ]
    if not rows:
        return []
    return [
        "## Changes made after results were seen",
        "",
        "| claim | date | change | reason | verdict before | verdict after (this run) |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def write_report(out_dir: str | Path, claim_order: list[str]) -> Path:
    """Collect DIR/<claim>.json for the claims in `claim_order` into DIR/REPORT.md."""
    out = Path(out_dir)
    records = [r for cid in claim_order if (r := load_record(out / f"{cid}.json")) is not None]
    lines = ["# esparse reproduction report", ""]
    if records:
        env = records[-1]["environment"]
        scales = sorted({r["scale"] for r in records})
        lines += [
            f"Scale: {', '.join(scales)}. Backend: {env['backend']} ({env['device_count']} "
            f"device(s), {env['devices']}), jax {env['jax']}, git {env['git_commit']}.",
            "",
            "| claim | paper | statement | verdict | key numbers (mean, 95% CI over seeds) "
            "| literature anchor | seeds | code | figure |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in records:
            verdict = f"**{r['verdict']}**"
            for name, sub in r.get("sub_verdicts", {}).items():
                verdict += f"<br>{name}: {sub['verdict']}"
            statement = r["statement"] + (" *(reconstruction)*" if r["reconstruction"] else "")
            lines.append(
                f"| `{r['claim']}` | {r['paper']} | {_cell(statement)} | {verdict} | "
                f"{_cell(r['headline'])} | {_cell(r['anchor'])} | {r['seeds']} | "
                f"{_code(r)} | [{r['figure']}]({r['figure']}) |"
            )
        lines += ["", RECONSTRUCTION_NOTE, "", CODE_NOTE, ""]
        lines += _changes_section(records)
        for r in records:
            lines += [f"## `{r['claim']}`: {r['verdict']}", "", r["paper_title"], ""]
            lines += [
                f"- {c['name']}: **{c['outcome']}** ({_cell(c['detail'])}){_power(c)}"
                for c in r["checks"]
            ]
            for name, sub in r.get("sub_verdicts", {}).items():
                lines.append(f"- verdict *{name}*: **{sub['verdict']}**")
                lines += [
                    f"  - {c['name']}: {c['outcome']} ({_cell(c['detail'])}){_power(c)}"
                    for c in sub["checks"]
                ]
            lines += [
                "",
                f"Scale {r['scale']}, {r['seeds']} seeds, wall time {r['wall_time_s']} s, "
                f"config hash `{r['config_hash']}`.",
                "",
                f"![{r['claim']}]({r['figure']})",
                "",
            ]
    else:
        lines.append("No results yet.")
    path = out / "REPORT.md"
    io.atomic_write(path, "\n".join(lines) + "\n")
    return path
