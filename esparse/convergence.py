"""Has training finished? The under-trained rule and the budget calibration's stopping rule.

Both are pre-registered in CLAIMS.md ("Clarified on 2026-12-03: converged budgets"): a verdict
rests on runs that finished learning, and budgets come from calibration seeds, never from the
seeds that decide a verdict. Training curves are small host arrays (seeds, logs), so this is
numpy on the host, like `esparse.stats`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "ACCURACY_RISE",
    "OBJECTIVE_DROP",
    "TAIL",
    "BudgetStep",
    "budget_settles",
    "under_trained",
]

TAIL = 0.2  # the last 20% of the steps
OBJECTIVE_DROP = 0.02  # more than 2% relative fall of the objective over the tail
ACCURACY_RISE = 0.01  # more than 1 point rise of the train accuracy over the tail
METRIC_MOVE = {"accuracy": 0.01, "loss": 0.10}  # calibration: 1 point, or 10% relative


def _value_at(steps: np.ndarray, curve: np.ndarray, at: np.ndarray) -> np.ndarray:
    """curve (seeds, logs) at steps (seeds, logs) linearly interpolated at `at` (seeds,)."""
    return np.array([np.interp(a, s, c) for a, s, c in zip(at, steps, curve, strict=True)])


def under_trained(
    steps: np.typing.ArrayLike,
    objective: np.typing.ArrayLike,
    accuracy: np.typing.ArrayLike | None = None,
    *,
    floor: float = 0.0,
) -> np.ndarray:
    """Which runs were still learning when they stopped (CLAIMS.md, 2026-12-03).

    steps: (seeds, logs) or (logs,) the step of each log, increasing, the last one the budget
    T; objective: (seeds, logs) the training objective on a fixed training subset; accuracy:
    optional (seeds, logs) training accuracy in [0, 1]. A run is under-trained when its
    objective fell by more than 2% (relative) between step 0.8 T (interpolated between logs)
    and T, or its accuracy rose by more than 1 point. floor: an objective at or below it at
    T has reached the claim's target (e.g. rf-single-neuron's 1e-4 of Var(y)) and counts as
    trained. A run whose objective is not finite at T never converged and counts as
    under-trained. Returns (seeds,) bool.
    """
    obj = np.atleast_2d(np.asarray(objective, dtype=np.float64))
    st = np.broadcast_to(np.asarray(steps, dtype=np.float64), obj.shape)
    if obj.shape[1] < 2:
        raise ValueError(f"objective must hold >= 2 logs per run, got shape {obj.shape}")
    if np.any(np.diff(st, axis=1) <= 0):
        raise ValueError("steps must increase along the logs")
    start = st[:, -1] - TAIL * st[:, -1]
    if np.any(start < st[:, 0]):
        raise ValueError(
            f"the logs must cover the last {TAIL:.0%} of the steps: the first log is at step "
            f"{st[0, 0]:g}, after {start[0]:g}"
        )
    before, end = _value_at(st, obj, start), obj[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        drop = np.where(before > 0, (before - end) / np.abs(before), 0.0)
    still = ((drop > OBJECTIVE_DROP) & ~(end <= floor)) | ~np.isfinite(end)
    if accuracy is not None:
        acc = np.atleast_2d(np.asarray(accuracy, dtype=np.float64))
        rise = acc[:, -1] - _value_at(st, acc, start)
        still |= (rise > ACCURACY_RISE) & ~(end <= floor)
    return still


@dataclass(frozen=True)
class BudgetStep:
    """One budget T of a calibration: the fraction of under-trained runs per arm, and the
    criterion metrics (name -> per-seed values and their kind) of runs trained for T."""

    budget: int
    under_trained: Mapping[str, float]
    metrics: Mapping[str, tuple[np.ndarray, Literal["accuracy", "loss"]]]


def budget_settles(
    at_t: BudgetStep, at_2t: BudgetStep, loss_target: float = 0.0
) -> tuple[bool, list[str]]:
    """The calibration's stopping rule: T is the budget when no run at T is under-trained and
    no criterion metric moves between T and 2T by more than 1 point (accuracies) or 10%
    relative (losses; a loss at or below `loss_target` at both budgets has settled). Seed
    means are compared. Returns (settles, the reasons it does not)."""
    reasons = [
        f"{arm}: {frac:.0%} of runs under-trained at T={at_t.budget}"
        for arm, frac in at_t.under_trained.items()
        if frac > 0
    ]
    for name, (values, kind) in at_t.metrics.items():
        a = float(np.mean(values))
        b = float(np.mean(at_2t.metrics[name][0]))
        if kind == "accuracy":
            moved = abs(b - a) > METRIC_MOVE["accuracy"]
            how = f"{100 * (b - a):+.2f} points"
        else:
            settled = max(a, b) <= loss_target
            moved = not settled and abs(b - a) > METRIC_MOVE["loss"] * abs(a)
            how = f"{(b - a) / abs(a) if a else np.inf:+.1%}"
        if moved:
            reasons.append(f"{name} moves {how} from T={at_t.budget} to 2T={at_2t.budget}")
    return not reasons, reasons
