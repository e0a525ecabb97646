"""Budgets calibrated, not tuned: `python -m experiments calibrate [CLAIM ...] [--scale S]`.

For each trained claim (one that declares `Training`), train calibration seeds (base seed
1000003, never a verdict seed) at budgets T0, 2 T0, 4 T0, ... from the config's starting
budget, and stop at the first T where no calibration run is under-trained and no criterion
metric moves between T and 2T by more than 1 point (accuracies) or 10% relative (losses)
(`esparse.convergence.budget_settles`; CLAIMS.md, 2026-12-03). The record, every T tried with
its metrics, is written atomically to experiments/calibration/CLAIM-SCALE.json, and the
claim's config reads its budget from it. The calibration never reads a verdict.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import time
from collections.abc import Callable

import numpy as np

from esparse import convergence, engine, execution, io
from experiments import claims
from experiments.core import SCALES, Claim, under_trained_runs
from experiments.runner import code_identity, environment, seed_keys

CALIBRATION_SEED = 1000003  # CLAIMS.md: calibration seeds start here, far from verdict seeds


def trained_claims(scale: str | None = None) -> list[str]:
    """The ids of the claims that train by gradient steps (and so have a budget); with `scale`,
    those that train at that scale (a budget of 0 leaves the trained arm out)."""
    return [
        cid
        for cid in claims.claim_ids()
        if claims.get(cid).training is not None
        and (scale is None or claims.get(cid).trains(claims.get(cid).configs[scale]))
    ]


def budgets(claim: Claim, scale: str) -> list[int]:
    """The budgets a calibration may try: T0 (the config's starting budget) times 1, 2, 4..."""
    training = _training(claim)
    start = getattr(claim.configs[scale], training.budget_field)
    if not claim.trains(claim.configs[scale]):
        raise ValueError(f"claim {claim.id!r} trains nothing at {scale} scale: no budget")
    return [start * 2**i for i in range(training.max_doublings + 1)]


def _training(claim: Claim):
    if claim.training is None:
        raise ValueError(f"claim {claim.id!r} does not train: it has no budget to calibrate")
    return claim.training


def measure(claim: Claim, scale: str, budget: int, seeds: int) -> convergence.BudgetStep:
    """Train the calibration seeds for `budget` and return their under-trained fractions per
    arm and criterion metrics."""
    training = _training(claim)
    config = dataclasses.replace(
        claim.configs[scale], seeds=seeds, **{training.budget_field: budget}
    )
    try:
        raw = claim.run(seed_keys(CALIBRATION_SEED, seeds), config)
    finally:
        engine.clear_caches()
    metrics = {name: np.asarray(v) for name, v in raw.items()}
    flags = under_trained_runs(metrics, training.floor)
    if not flags:
        raise ValueError(f"claim {claim.id} trains but its run returned no training curves")
    return convergence.BudgetStep(
        budget,
        {arm: float(f.mean()) for arm, f in flags.items()},
        training.criterion_metrics(metrics, config),
    )


def _step_record(step: convergence.BudgetStep, wall: float) -> dict:
    return {
        "budget": step.budget,
        "wall_time_s": round(wall, 1),
        "under_trained": dict(step.under_trained),
        "metrics": {
            name: {"kind": kind, "mean": float(np.mean(v)), "values": np.asarray(v).tolist()}
            for name, (v, kind) in step.metrics.items()
        },
    }


def calibrate(
    claim: Claim,
    scale: str = "quick",
    *,
    seeds: int | None = None,
    progress: Callable[[str], None] = print,
    write: bool = True,
) -> dict:
    """Calibrate `claim`'s budget at `scale` (module docstring); returns the record and, with
    write=True, writes it to `claim.calibration_path(scale)`."""
    training = _training(claim)
    seeds = training.calibration_seeds if seeds is None else seeds
    if seeds < 2:
        raise ValueError(f"seeds must be >= 2 for a calibration, got {seeds}")
    tried, comparisons = [], []
    chosen, converged, previous = None, False, None
    for budget in budgets(claim, scale):
        start = time.perf_counter()
        step = measure(claim, scale, budget, seeds)
        tried.append(_step_record(step, time.perf_counter() - start))
        arms = ", ".join(f"{a} {f:.0%}" for a, f in step.under_trained.items())
        means = ", ".join(f"{n} {np.mean(v):.4g}" for n, (v, _) in step.metrics.items())
        progress(
            f"[calibrate {claim.id} {scale}] {training.budget_field}={budget}: "
            f"{tried[-1]['wall_time_s']} s; under-trained {arms}; {means}"
        )
        if previous is not None:
            # a decaying schedule: the tail rule is reported, T vs 2T alone decides
            judged = (
                dataclasses.replace(previous, under_trained={})
                if training.decaying_schedule
                else previous
            )
            settles, reasons = convergence.budget_settles(judged, step, training.loss_target)
            comparisons.append(
                {"t": previous.budget, "two_t": budget, "settles": settles, "reasons": reasons}
            )
            progress(
                f"[calibrate {claim.id} {scale}] T={previous.budget} vs 2T={budget}: "
                + ("settles" if settles else "not yet: " + "; ".join(reasons))
            )
            if settles:
                chosen, converged = previous.budget, True
                break
        previous = step
    if chosen is None:
        chosen = tried[-1]["budget"]
        progress(
            f"[calibrate {claim.id} {scale}] no budget up to {chosen} settles: the claim runs "
            f"at {chosen} and its under-trained runs are reported (a fail there is inconclusive)"
        )
    env = environment()
    record = {
        "claim": claim.id,
        "scale": scale,
        "budget_field": training.budget_field,
        "starting_budget": tried[0]["budget"],
        "budget": chosen,
        "converged": converged,
        "calibration_seeds": seeds,
        "base_seed": CALIBRATION_SEED,
        "rule": (
            "first T with no under-trained calibration run and no criterion metric moving "
            "between T and 2T by > 1 point (accuracy) or > 10% relative (loss)"
        ),
        "tried": tried,
        "comparisons": comparisons,
        "date": datetime.date.today().isoformat(),
        "commit": env["git_commit"],
        "code": code_identity(claim),
        "backend": env["backend"],
    }
    if write:
        path = claim.calibration_path(scale)
        path.parent.mkdir(parents=True, exist_ok=True)
        io.atomic_write(path, json.dumps(record, indent=1) + "\n")
        progress(f"[calibrate {claim.id} {scale}] budget {chosen} written to {path}")
    return record


def plan(claim: Claim, scale: str, seeds: int | None = None) -> str:
    """What `calibrate` would run, without running it: the budgets in order and the seeds."""
    training = _training(claim)
    seeds = training.calibration_seeds if seeds is None else seeds
    tries = budgets(claim, scale)
    return (
        f"{claim.id} ({scale}): {seeds} calibration seeds from base {CALIBRATION_SEED}; "
        f"{training.budget_field} = {', '.join(map(str, tries))} in turn, each trained from "
        f"scratch, stopping at the first T that settles against 2T (at most "
        f"{sum(tries)} {training.budget_field} per seed in all); writes "
        f"{claim.calibration_path(scale)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments calibrate",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("claims", nargs="*", help="trained claim ids (default: all of them)")
    parser.add_argument("--scale", default="quick", choices=SCALES, help="scale to calibrate")
    parser.add_argument("--seeds", type=int, default=None, help="calibration seeds per budget")
    parser.add_argument("--plan", action="store_true", help="print what would run; run nothing")
    parser.add_argument("--chunk-size", type=int, default=None, help="seeds per compiled call")
    args = parser.parse_args(argv)
    known = trained_claims(args.scale)
    unknown = [c for c in args.claims if c not in known]
    if unknown:
        parser.error(
            f"not a trained claim at {args.scale} scale: {unknown}; trained claims there: "
            f"{', '.join(known)}"
        )
    if args.seeds is not None and args.seeds < 2:
        parser.error(f"--seeds must be >= 2, got {args.seeds}")
    if args.chunk_size is not None and args.chunk_size < 1:
        parser.error(f"--chunk-size must be >= 1, got {args.chunk_size}")
    for cid in args.claims or known:
        claim = claims.get(cid)
        if args.plan:
            print(plan(claim, args.scale, args.seeds))
            continue
        with execution.execution(chunk_size=args.chunk_size):
            calibrate(claim, args.scale, seeds=args.seeds)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
