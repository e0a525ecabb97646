"""What a claim file declares, and the small helpers every claim shares.

A claim module builds one `Claim`: its id, paper, statement and anchor figures, a config per
scale, `run(keys, config)` returning per-seed metrics from one vmapped computation, `evaluate`
applying the pre-registered criterion (esparse.stats checks), and `plot` drawing the figure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from esparse import stats

SCALES = ("smoke", "quick", "full")
PAPERS = {
    "MH": "Mukherjee & Huberman, Why Neural Networks Work (arXiv 2211.14632)",
    "FDZ": "Fang, Dong & Zhang, Neural feature repopulation (arXiv 1910.11508)",
    "YS": "Yehudai & Shamir, Power and limitations of random features (arXiv 1904.00687)",
    "HS": "Hodas & Stinis, Doing the impossible (arXiv 1805.04928)",
}

Metrics = dict[str, np.ndarray]


@dataclass(frozen=True)
class Evaluation:
    """The criterion applied to per-seed metrics.

    checks: the pre-registered conditions deciding the main verdict.
    summary: means and CIs (JSON-ready) behind the checks and the figure.
    headline: one line of the key numbers for the report table.
    sub_verdicts: further named verdicts (e.g. the arXiv and journal versions of a claim),
      each decided from its own checks.
    """

    checks: list[stats.Check]
    summary: dict[str, Any]
    headline: str
    sub_verdicts: dict[str, list[stats.Check]] = field(default_factory=dict)


@dataclass(frozen=True)
class ProtocolChange:
    """A change to a claim's protocol or code made after its results had been seen.

    CLAIMS.md asks for each to be listed in REPORT.md with its reason and the verdict before
    and after; the verdict after is the current run's.
    """

    date: str
    what: str
    reason: str
    verdict_before: str


@dataclass(frozen=True)
class Claim:
    """One reproducible claim of ../shared/CLAIMS.md."""

    id: str
    paper: str
    statement: str
    anchor: str
    configs: Mapping[str, Any]
    run: Callable[[Any, Any], Metrics]
    evaluate: Callable[[Metrics, Any], Evaluation]
    plot: Callable[[Metrics, Any, Any], None]
    reconstruction: bool = False
    changes: tuple[ProtocolChange, ...] = ()

    def config(self, scale: str, seeds: int | None = None):
        """The config of `scale`, with its seed count replaced when `seeds` is given."""
        if scale not in self.configs:
            raise ValueError(f"scale must be one of {list(self.configs)}, got {scale!r}")
        cfg = self.configs[scale]
        return cfg if seeds is None else dataclasses.replace(cfg, seeds=seeds)


def rises_and_beats_raw(
    grid_name: str, grid, accuracy: np.ndarray, raw_accuracy: np.ndarray, at_edge: np.ndarray
) -> tuple[float, stats.Interval, list[stats.Check]]:
    """The shared criterion of es-expansion and random-net.

    accuracy: (seeds, grid) test accuracies of the features; raw_accuracy: (seeds,) the linear
    readout of the raw input; at_edge: the ridge readouts' lambda-at-grid-edge flags or
    fractions. Checks Spearman rho(grid, mean accuracy) >= 0.9, that the last grid point beats
    the raw readout (paired 95% CI above 0), and `lambda_edge_check`. Returns
    (rho, gain, checks).
    """
    rho = stats.spearman(grid, accuracy.mean(axis=0))
    gain = stats.paired_ci(accuracy[:, -1], raw_accuracy)
    checks = [
        stats.at_least(f"accuracy rises with {grid_name} (Spearman rho)", rho, 0.9),
        stats.ci_above(f"gain over raw linear readout at {grid_name}={grid[-1]}", gain, 0.0),
        lambda_edge_check(at_edge, "ridge readout"),
    ]
    return rho, gain, checks


LAMBDA_EDGE_LIMIT = 0.1  # CLAIMS.md: more than 10% of lambda choices at a grid edge -> inconclusive


def lambda_edge_check(at_edge, what: str = "ridge") -> stats.Check:
    """Inconclusive when more than 10% of the lambda choices (all seeds and grid points) sit at
    an edge of the lambda grid (CLAIMS.md, 2026-12-02): the grid was then too narrow to choose."""
    fraction = float(np.mean(np.asarray(at_edge, dtype=float)))
    return stats.at_most_or_inconclusive(
        f"{what}: fraction of lambda choices at the grid edge", fraction, LAMBDA_EDGE_LIMIT
    )


def first_logged_step(hit: np.ndarray, log_steps: np.ndarray, censor: float = np.nan) -> np.ndarray:
    """hit: (seeds, logs) bool, whether each log reached a target -> (seeds,) the first logged
    step that did, or `censor` for a seed that never did (a censored run)."""
    hit = np.asarray(hit, dtype=bool)
    first = np.where(hit.any(axis=1), np.asarray(log_steps)[np.argmax(hit, axis=1)], censor)
    return first.astype(float)


def interval(values) -> dict:
    """Mean and 95% t-interval of per-seed values, as a JSON-ready dict."""
    return stats.mean_ci(np.asarray(values)).to_dict()


def grid_intervals(values: np.ndarray) -> list[dict]:
    """values: (seeds, grid) -> one interval dict per grid point."""
    return [interval(values[:, j]) for j in range(values.shape[1])]


def errorbar(ax, x, values: np.ndarray, label: str, log: bool = False, **kwargs) -> None:
    """Plot the seed mean of values (seeds, grid) against x with 95% CI error bars.

    log=True (positive values, log-scale axes): the geometric mean with the interval of the
    mean of log(values), so no bar crosses zero.
    """
    values = np.log(values) if log else np.asarray(values)
    cis = [stats.mean_ci(values[:, j]) for j in range(values.shape[1])]
    bounds = np.array([[c.low, c.mean, c.high] for c in cis])
    if log:
        bounds = np.exp(bounds)
    low, mean, high = bounds.T
    ax.errorbar(
        x, mean, yerr=[mean - low, high - mean], capsize=3, marker="o", label=label, **kwargs
    )


def save_figure(fig, path) -> None:
    """Write `fig` to path as PNG (whatever the path's suffix) and close it."""
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def subplots(ncols: int = 1, width: float = 5.0, height: float = 3.8):
    """A figure with `ncols` axes side by side."""
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])
