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


def _verdict(record: dict) -> str:
    """The verdict, marked preliminary below the scale's minimum seeds."""
    decision = record.get("decision") or {}
    return decision.get("label", record["verdict"])


def _under_trained(record: dict) -> str:
    """Per arm, the fraction of runs still learning at the end, and where the budget came
    from; '' for a claim that does not train."""
    fractions = record.get("under_trained") or {}
    if not fractions:
        return ""
    arms = ", ".join(f"{arm} {frac:.0%}" for arm, frac in fractions.items())
    budget = record.get("budget") or {}
    source = (
        f"; budget {budget['field']} = {budget['value']} from {budget['source']}"
        if (budget)
        else ""
    )
    return f"<br>*under-trained runs:* {arms}{source}"


def _reasons(decision: dict) -> list[str]:
    """Why the verdict is what it is: the decisive fails, or what kept it inconclusive."""
    verdict, reasons = decision.get("verdict"), decision.get("reasons") or []
    if not reasons:
        return []
    head = {
        "not reproduced": "Decided by (a decisive fail):",
        "inconclusive": "Inconclusive because:",
    }.get(verdict, "Reasons:")
    return [head, "", *[f"- {_cell(r)}" for r in reasons], ""]


def _changes_section(records: list[dict]) -> list[str]:
    """Every protocol change made after results were seen, with reason and verdicts."""
    rows = [
        f"| `{r['claim']}` | {c['date']} | {_cell(c['what'])} | {_cell(c['reason'])} | "
        f"{_cell(c['verdict_before'])} | {_verdict(r)} ({r['scale']}) |"
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
            verdict = f"**{_verdict(r)}**"
            for name, sub in r.get("sub_verdicts", {}).items():
                verdict += f"<br>{name}: {sub.get('decision', {}).get('label', sub['verdict'])}"
            statement = r["statement"] + (" *(reconstruction)*" if r["reconstruction"] else "")
            lines.append(
                f"| `{r['claim']}` | {r['paper']} | {_cell(statement)} | {verdict} | "
                f"{_cell(r['headline'])}{_under_trained(r)} | {_cell(r['anchor'])} | "
                f"{r['seeds']} | {_code(r)} | [{r['figure']}]({r['figure']}) |"
            )
        lines += ["", RECONSTRUCTION_NOTE, "", CODE_NOTE, ""]
        lines += _changes_section(records)
        for r in records:
            lines += [f"## `{r['claim']}`: {_verdict(r)}", "", r["paper_title"], ""]
            lines += _reasons(r.get("decision") or {})
            lines += [
                f"- {c['name']}: **{c['outcome']}** ({_cell(c['detail'])}){_power(c)}"
                for c in r["checks"]
            ]
            for name, sub in r.get("sub_verdicts", {}).items():
                label = sub.get("decision", {}).get("label", sub["verdict"])
                lines.append(f"- verdict *{name}*: **{label}**")
                lines += [f"  - {_cell(x)}" for x in sub.get("decision", {}).get("reasons", [])]
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
