"""Claims at full scale on a device, each in its own process: the device check's --full-claims.

python -m experiments.bench device --full-claims es-expansion,flyhash-search [--full-seeds 32]
    [--full-scale full] [--full-out results/full]

Each claim runs in a child process (`python -m experiments.bench.fullclaims CLAIM --scale S
--seeds N --out DIR`): its GPU memory peak is its own (`peak_bytes_in_use` of the device,
which JAX never resets within a process), an out-of-memory ends that claim only, and a claim
still running when the time budget ends is stopped. The child runs the claim as the runner
does (`runner.run_claim`, all seeds in one call per engine call, as the plan chose: 32 seeds
per call fit 141 GB for the claims of `PREPARED`), writing DIR/CLAIM.json and DIR/CLAIM.png,
and prints one line "FULLCLAIM {json}". The parent runs the claims in the order given, writes
DIR/REPORT.md for those that finished and returns one row per claim (claim, seconds, seeds,
verdict, GPU memory peak; or why it was skipped or failed), printed by `table`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["PREPARED", "child", "run_full_claims", "table"]

# The claims the prepared device run takes at full scale, shortest first (BUILD_NOTES.md,
# "Full scale: the plan"): every engine call of each runs 32 seeds in one call far below
# 141 GB (at most 25 GB: es-expansion 20.5 and feature-repopulation 25.3 GB at 32 seeds per
# call in the 80 GB plan, the others 32 seeds within 16 GB), and their 2,000 TFLOP at about
# 20 TFLOP/s plus a compile each fit, with the device check, a 10-minute window on one H200.
# Not run on a GPU yet; the run stops at its time budget whatever the device.
PREPARED = ("flyhash-search", "es-expansion", "feature-repopulation", "random-net", "layer-mi")
_MARK = "FULLCLAIM "


def child(argv: Sequence[str] | None = None) -> int:
    """Run one claim (the child process) and print its row after `_MARK`."""
    parser = argparse.ArgumentParser(prog="python -m experiments.bench.fullclaims")
    parser.add_argument("claim")
    parser.add_argument("--scale", default="full")
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--out", default="results/full")
    args = parser.parse_args(argv)
    import jax

    from experiments import claims
    from experiments.runner import run_claim

    start = time.perf_counter()
    record = run_claim(
        claims.get(args.claim), args.scale, seeds=args.seeds, out_dir=args.out, force=True
    )
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    row = {
        "claim": args.claim,
        "scale": args.scale,
        "seconds": round(time.perf_counter() - start, 1),
        "seeds": record["seeds"],
        "verdict": str(record["verdict"]),
        "gpu_peak_gb": None if peak is None else round(peak / 1e9, 2),
        "device": str(jax.devices()[0].device_kind),
    }
    print(_MARK + json.dumps(row), flush=True)
    return 0


def _row_from(claim: str, proc: subprocess.CompletedProcess) -> dict:
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK) :])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"claim": claim, "error": f"exit {proc.returncode}: {' | '.join(tail)}"[:500]}


def _run_child(claim: str, scale: str, seeds: int, out_dir: Path, timeout: float) -> dict:
    command = [sys.executable, "-m", "experiments.bench.fullclaims", claim]
    command += ["--scale", scale, "--seeds", str(seeds), "--out", str(out_dir)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        row = _row_from(claim, proc)
    except subprocess.TimeoutExpired:
        row = {"claim": claim, "error": f"stopped at the time budget after {timeout:.0f} s"}
    row.setdefault("seconds", round(time.perf_counter() - start, 1))
    return row


def run_full_claims(
    ids: Sequence[str], scale: str, seeds: int, out_dir: Path, deadline: float
) -> list[dict]:
    """Each claim of `ids` in its own process, in order, while time is left before
    `deadline` (time.perf_counter()); then DIR/REPORT.md for those that finished."""
    from experiments import claims
    from experiments.report import write_report

    known = set(claims.claim_ids())
    rows = []
    for claim in ids:
        left = deadline - time.perf_counter()
        if claim not in known:
            row = {"claim": claim, "skipped": "unknown claim"}
        elif left < 30:
            row = {"claim": claim, "skipped": f"time budget ({left:.0f} s left)"}
        else:
            row = _run_child(claim, scale, seeds, out_dir, left)
        rows.append(row)
        print(table([row], header=False), flush=True)
    finished = [r["claim"] for r in rows if "verdict" in r]
    if finished:
        write_report(out_dir, finished)
    return rows


def table(rows: Sequence[dict], header: bool = True) -> str:
    """One line per claim: claim, seconds, seeds, verdict, GPU memory peak (GB)."""
    lines = []
    if header:
        lines.append(f"{'claim':22s} {'seconds':>8s} {'seeds':>5s} {'verdict':16s} GPU peak GB")
    for r in rows:
        if "verdict" in r:
            peak = "-" if r.get("gpu_peak_gb") is None else f"{r['gpu_peak_gb']:.2f}"
            lines.append(
                f"{r['claim']:22s} {r['seconds']:8.1f} {r['seeds']:5d} {r['verdict']:16s} {peak}"
            )
        else:
            why = r.get("skipped") or r.get("error")
            lines.append(f"{r['claim']:22s} {r.get('seconds', 0):8.1f} {'-':>5s} {why}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(child())
