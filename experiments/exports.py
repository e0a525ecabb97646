"""`python -m experiments --plan --export cuda,tpu`: every claim's engine programs lowered for
other platforms on this machine, and audited.

Each claim runs in plan mode (`runner.plan_claim`, its own code on planned zeros); each engine
call is lowered with `jax.export` for the platforms instead of being compiled here
(`esparse.exporting`). A call fails the audit when it does not lower on a platform (the
primitive is named), holds a host callback, has float64 without having asked for it
(`jax.enable_x64`), or lowers the CPU branch of an `auto` choice for an accelerator. The
table says, per claim, its calls, the float64 ones and the custom calls (solvers) they
need; every problem is printed as "claim: call i name: what".
"""

from __future__ import annotations

from collections.abc import Sequence

from experiments import claims
from experiments.runner import plan_claim

__all__ = ["FLOAT64_NOTE", "export_claims", "parse_platforms", "print_exports"]

FLOAT64_NOTE = (
    "float64 programs run at a fraction of float32 speed on GPUs (1/2 on H100/H200-class "
    "data-centre parts, 1/32-1/64 on consumer cards) and are emulated in software on TPU"
)


def parse_platforms(text: str) -> tuple[str, ...]:
    """ "cuda,tpu" -> ("cuda", "tpu"); ValueError naming an unknown platform."""
    from esparse import exporting

    platforms = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in platforms if p not in exporting.PLATFORMS]
    if unknown or not platforms:
        raise ValueError(
            f"--export takes platforms from {', '.join(exporting.PLATFORMS)} separated by "
            f"commas, got {text!r}"
        )
    return platforms


def export_claims(
    ids: Sequence[str],
    scale: str,
    platforms: Sequence[str],
    *,
    seeds: int | None = None,
    chunk_size: int | None = None,
    devices: int | None = None,
) -> list[dict]:
    """`runner.plan_claim(..., export=platforms)` of each claim: its calls with their audits,
    float64_calls, problems and plan_seconds."""
    return [
        plan_claim(
            claims.get(cid),
            scale,
            seeds=seeds,
            chunk_size=chunk_size,
            devices=devices,
            export=tuple(platforms),
        )
        for cid in ids
    ]


def _custom_calls(plan: dict) -> list[str]:
    found = {
        target
        for call in plan["calls"]
        for low in call["export"]["lowerings"]
        for target in low["custom_calls"]
    }
    return sorted(found)


def print_exports(plans: Sequence[dict], platforms: Sequence[str]) -> int:
    """Print the table and every problem; return the number of problems."""
    lowered = "+".join(platforms)
    print(
        f"{'claim':22s} {'calls':>5s} {lowered + ' lowered':>16s} {'float64 calls':>13s} "
        f"{'seconds':>7s}  custom calls"
    )
    problems, float64 = [], []
    for plan in plans:
        ok = sum(
            all(low["error"] is None for low in call["export"]["lowerings"])
            for call in plan["calls"]
        )
        n64 = len(plan["float64_calls"])
        if n64:
            float64.append(f"{plan['claim']} ({n64} of {len(plan['calls'])} calls)")
        done = f"{ok}/{len(plan['calls'])}"
        print(
            f"{plan['claim']:22s} {len(plan['calls']):5d} {done:>16s} {n64:13d} "
            f"{plan['plan_seconds']:7.1f}  {', '.join(_custom_calls(plan)) or '-'}"
        )
        problems += [f"{plan['claim']}: {p}" for p in plan["problems"]]
    total = sum(p["plan_seconds"] for p in plans)
    print(f"lowered for {lowered} in {total:.1f} s; nothing compiled or run")
    if float64:
        print(f"float64: {'; '.join(float64)}: {FLOAT64_NOTE}")
    for problem in problems:
        print(f"PROBLEM {problem}")
    print(f"{len(problems)} problem(s)")
    return len(problems)
