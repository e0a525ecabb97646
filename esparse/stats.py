"""Statistics across seeds: confidence intervals, paired differences, rank correlation, verdicts.

Per-seed metrics are small host arrays, so this module is numpy on the host. Every claim of the
suite turns its per-seed numbers into `reproduced`, `not reproduced` or `inconclusive` through
`decide`, from checks written before the results are looked at. The one verdict rule
(CLAIMS.md, 2026-12-03): "not reproduced" needs a decisive fail, a check on the wrong side on
arms whose runs are valid; a validity condition (lambda at a grid edge, under-trained runs,
censored runs, labels not independent) that holds on a failing check's arms makes it
inconclusive instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np
from scipy import stats as _scipy_stats

from esparse import _checks

__all__ = [
    "Check",
    "Decision",
    "INCONCLUSIVE",
    "Interval",
    "NOT_REPRODUCED",
    "REPRODUCED",
    "at_least",
    "at_most",
    "at_most_or_inconclusive",
    "ci_above",
    "ci_below",
    "decide",
    "holds",
    "loglog_slope",
    "mean_ci",
    "paired_ci",
    "rankdata",
    "rises_with",
    "spearman",
    "validity",
]

Outcome = Literal["pass", "fail", "inconclusive"]
REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Interval:
    """A mean with a confidence interval over n seeds."""

    mean: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def _as_samples(name: str, values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} must hold at least one value, got none")
    _checks.finite(name, arr)
    return arr


def mean_ci(
    values: np.typing.ArrayLike,
    confidence: float = 0.95,
    method: Literal["t", "bootstrap"] = "t",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """Mean of `values` (n,) with a two-sided confidence interval.

    method="t": Student t-interval, mean +- t_{n-1} * sd / sqrt(n). method="bootstrap":
    percentile bootstrap of the mean with `n_resamples` resamples (numpy Generator(seed)).
    With one value the interval is [mean, mean] widened to infinity (nothing is known).
    """
    arr = _as_samples("values", values)
    _checks.float_in_range("confidence", confidence, 0.0, 1.0, low_open=True, high_open=True)
    _checks.one_of("method", method, {"t", "bootstrap"})
    n = arr.size
    mean = float(arr.mean())
    if n == 1:
        return Interval(mean, -np.inf, np.inf, 1)
    alpha = 1.0 - confidence
    if method == "t":
        half = _scipy_stats.t.ppf(1 - alpha / 2, n - 1) * arr.std(ddof=1) / np.sqrt(n)
        return Interval(mean, mean - float(half), mean + float(half), n)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, n, size=(n_resamples, n))].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Interval(mean, float(low), float(high), n)


def paired_ci(
    a: np.typing.ArrayLike,
    b: np.typing.ArrayLike,
    confidence: float = 0.95,
    method: Literal["t", "bootstrap"] = "t",
) -> Interval:
    """Confidence interval of the mean paired difference a - b (same seed in each pair)."""
    a_arr, b_arr = _as_samples("a", a), _as_samples("b", b)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"a and b must pair up, got {a_arr.size} and {b_arr.size} values")
    return mean_ci(a_arr - b_arr, confidence=confidence, method=method)


def rankdata(values: np.typing.ArrayLike) -> np.ndarray:
    """Ranks 1..n of `values` (n,), ties given their average rank."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    order = np.argsort(arr, kind="stable")
    sorted_vals = arr[order]
    ranks = np.empty(arr.size)
    start = 0
    for end in range(1, arr.size + 1):
        if end == arr.size or sorted_vals[end] != sorted_vals[start]:
            ranks[order[start:end]] = 0.5 * (start + end - 1) + 1.0
            start = end
    return ranks


def spearman(x: np.typing.ArrayLike, y: np.typing.ArrayLike) -> float:
    """Spearman rank correlation of paired samples x, y (n,): Pearson correlation of ranks."""
    x_arr, y_arr = _as_samples("x", x), _as_samples("y", y)
    if x_arr.shape != y_arr.shape or x_arr.size < 2:
        raise ValueError(f"x and y must pair up with n >= 2, got {x_arr.size} and {y_arr.size}")
    rx, ry = rankdata(x_arr), rankdata(y_arr)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else 0.0


def loglog_slope(x: np.typing.ArrayLike, y: np.typing.ArrayLike) -> float:
    """Least-squares slope of log(y) against log(x); x, y > 0."""
    x_arr, y_arr = _as_samples("x", x), _as_samples("y", y)
    if np.any(x_arr <= 0) or np.any(y_arr <= 0):
        raise ValueError("x and y must be positive for a log-log slope")
    return float(np.polyfit(np.log(x_arr), np.log(y_arr), 1)[0])


@dataclass(frozen=True)
class Check:
    """One pre-registered condition of a criterion and its outcome on the data.

    CI checks also carry `half_width` (of the 95% CI) and `margin`: the tolerance the check
    tests where the criterion states one (e.g. "ticket >= dense - 1 point": 0.01), else the
    distance from the mean to the threshold. `lacks_power` is True when the CI is wider than
    that margin: the seeds cannot resolve what the check asks.

    arms: the arms (conditions, widths, targets) whose runs the check reads; () means all of
    them. `is_validity`: a condition on the protocol's validity (`validity`), which is never a
    fail: when it does not hold it makes the criterion checks on its arms undecidable.
    """

    name: str
    outcome: Outcome
    detail: str
    half_width: float | None = None
    margin: float | None = None
    arms: tuple[str, ...] = ()
    is_validity: bool = False
    blocks_only_fails: bool = False

    @property
    def lacks_power(self) -> bool:
        return (
            self.half_width is not None
            and self.margin is not None
            and (self.half_width > self.margin)
        )

    def on(self, *arms: str) -> Check:
        """This check, marked as reading the runs of `arms`."""
        return replace(self, arms=tuple(arms))

    def to_dict(self) -> dict:
        return {**asdict(self), "arms": list(self.arms), "lacks_power": self.lacks_power}


def _ci_check(name, interval, threshold, margin, above: bool) -> Check:
    half = 0.5 * (interval.high - interval.low)
    margin = abs(interval.mean - threshold) if margin is None else float(margin)
    detail = (
        f"mean {interval.mean:.4g}, 95% CI [{interval.low:.4g}, {interval.high:.4g}] "
        f"(half-width {half:.3g}, margin {margin:.3g})"
    )
    passes = interval.low > threshold if above else interval.high < threshold
    fails = interval.high <= threshold if above else interval.low >= threshold
    good, bad = (">", "<=") if above else ("<", ">=")
    if passes:
        return Check(name, "pass", f"{detail} {good} {threshold:g}", half, margin)
    if fails:
        return Check(name, "fail", f"{detail} {bad} {threshold:g}", half, margin)
    return Check(name, "inconclusive", f"{detail} straddles {threshold:g}", half, margin)


def ci_above(
    name: str, interval: Interval, threshold: float = 0.0, margin: float | None = None
) -> Check:
    """Pass if the whole CI lies above threshold, fail if it lies at or below, else inconclusive.

    margin: the tolerance the criterion states (see `Check`), default |mean - threshold|.
    """
    return _ci_check(name, interval, threshold, margin, above=True)


def ci_below(
    name: str, interval: Interval, threshold: float = 0.0, margin: float | None = None
) -> Check:
    """Pass if the whole CI lies below threshold, fail if at or above it, else inconclusive."""
    return _ci_check(name, interval, threshold, margin, above=False)


def at_least(name: str, value: float, threshold: float) -> Check:
    """A point condition value >= threshold."""
    outcome: Outcome = "pass" if value >= threshold else "fail"
    sign = ">=" if outcome == "pass" else "<"
    return Check(name, outcome, f"{value:.4g} {sign} {threshold:g}")


def at_most(name: str, value: float, threshold: float) -> Check:
    """A point condition value <= threshold."""
    outcome: Outcome = "pass" if value <= threshold else "fail"
    sign = "<=" if outcome == "pass" else ">"
    return Check(name, outcome, f"{value:.4g} {sign} {threshold:g}")


def holds(name: str, condition: bool, detail: str) -> Check:
    """A boolean condition with its explanation."""
    return Check(name, "pass" if condition else "fail", detail)


def at_most_or_inconclusive(name: str, value: float, threshold: float) -> Check:
    """A condition on the protocol's validity: pass if value <= threshold, else inconclusive.

    For conditions whose violation says the experiment cannot decide (e.g. more than 10% of the
    ridge lambda choices at an edge of the grid), not that the claim is false.
    """
    return validity(
        name, value <= threshold, f"{value:.4g} {'<=' if value <= threshold else '>'} {threshold:g}"
    )


def validity(
    name: str,
    holds_: bool,
    detail: str,
    arms: Sequence[str] = (),
    *,
    blocks_only_fails: bool = False,
) -> Check:
    """A validity condition on the runs of `arms` (() = all): pass when it holds, else
    inconclusive, and then every failing criterion check on those arms is not decisive.

    blocks_only_fails=False (the lambda-edge rule, labels not independent): when it does not
    hold, the verdict is inconclusive whatever the other checks say. True (under-trained runs,
    CLAIMS.md: "a check that fails on an arm where more than a quarter of the runs are
    under-trained is inconclusive"): it only takes the decisiveness away from fails on its
    arms; passing checks stand.
    """
    outcome: Outcome = "pass" if holds_ else "inconclusive"
    return Check(
        name,
        outcome,
        detail,
        arms=tuple(arms),
        is_validity=True,
        blocks_only_fails=blocks_only_fails,
    )


def rises_with(
    name: str, grid: Sequence[float], values: np.typing.ArrayLike, margin: float | None = None
) -> Check:
    """ "values rise with the grid" from paired CIs (CLAIMS.md, 2026-12-03).

    values: (seeds, grid) per-seed metrics, paired by seed across the grid. Pass when the
    paired 95% CI of (last - first) lies above 0 and no step between neighbouring grid points
    has a paired CI entirely below 0; fail when the (last - first) CI lies at or below 0 or a
    neighbouring step's CI lies entirely below 0; else inconclusive. The detail reports the
    Spearman rho of the means (no longer decisive).
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 2 or arr.shape[1] != len(grid):
        raise ValueError(
            f"values must be (seeds, grid) with grid = {len(grid)} >= 2 points, got {arr.shape}"
        )
    total = paired_ci(arr[:, -1], arr[:, 0])
    steps = [paired_ci(arr[:, j + 1], arr[:, j]) for j in range(arr.shape[1] - 1)]
    falling = [f"{grid[j]}->{grid[j + 1]}" for j, c in enumerate(steps) if c.high < 0]
    rho = spearman(np.asarray(grid, dtype=float), arr.mean(axis=0))
    half = 0.5 * (total.high - total.low)
    margin = abs(total.mean) if margin is None else float(margin)
    detail = (
        f"last - first {total.mean:.4g}, 95% CI [{total.low:.4g}, {total.high:.4g}]; "
        f"steps entirely below 0: {', '.join(falling) or 'none'}; Spearman rho {rho:.2f}"
    )
    if total.high <= 0 or falling:
        return Check(name, "fail", detail, half, margin)
    if total.low > 0:
        return Check(name, "pass", detail, half, margin)
    return Check(name, "inconclusive", detail + "; the last - first CI straddles 0", half, margin)


@dataclass(frozen=True)
class Decision:
    """A verdict with why: `reasons` names the decisive fail, or what kept it inconclusive.

    preliminary: fewer seeds than the scale asks (the verdict is computed all the same and
    `label` says "preliminary (N seeds)").
    """

    verdict: str
    reasons: tuple[str, ...]
    preliminary: bool
    seeds: int

    @property
    def label(self) -> str:
        return (
            f"{self.verdict}, preliminary ({self.seeds} seeds)"
            if self.preliminary
            else (self.verdict)
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "reasons": list(self.reasons), "label": self.label}


def _overlap(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    return not a or not b or bool(set(a) & set(b))


def decide(checks: Sequence[Check], n_seeds: int, min_seeds: int = 8) -> Decision:
    """The one verdict rule.

    A criterion check that fails is decisive unless a validity check that does not hold
    covers one of its arms (`Check.arms`; () = all arms): then it counts as inconclusive. Any
    decisive fail -> not reproduced; else any inconclusive check, or a validity check that
    does not hold (except those that only block fails, `validity(blocks_only_fails=True)`)
    -> inconclusive; else reproduced. Fewer than `min_seeds` seeds marks the decision
    preliminary.
    """
    if not checks:
        raise ValueError("checks must hold at least one Check, got none")
    invalid = [c for c in checks if c.is_validity and c.outcome != "pass"]
    decisive, undecided = [], []
    for c in checks:
        if c.is_validity:
            if c.outcome != "pass" and not c.blocks_only_fails:
                undecided.append(f"{c.name}: {c.detail}")
            continue
        if c.outcome == "fail":
            blockers = [
                f"{v.name} does not hold ({v.detail})" for v in invalid if _overlap(v.arms, c.arms)
            ]
            if blockers:
                undecided.append(
                    f"{c.name} fails ({c.detail}), but not decisively: " + "; ".join(blockers)
                )
            else:
                decisive.append(f"{c.name}: {c.detail}")
        elif c.outcome == "inconclusive":
            power = " (lacks power)" if c.lacks_power else ""
            undecided.append(f"{c.name}: {c.detail}{power}")
    if decisive:
        verdict, reasons = NOT_REPRODUCED, decisive
    elif undecided:
        verdict, reasons = INCONCLUSIVE, undecided
    else:
        verdict, reasons = REPRODUCED, []
    return Decision(verdict, tuple(reasons), n_seeds < min_seeds, int(n_seeds))
