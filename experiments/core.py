"""What a claim file declares, and the small helpers every claim shares.

A claim module builds one `Claim`: its id, paper, statement and anchor figures, a config per
scale, `run(keys, config)` returning per-seed metrics from one vmapped computation, `evaluate`
applying the pre-registered criterion (esparse.stats checks), and `plot` drawing the figure.
A claim that trains by gradient steps also declares `Training`: which config field is its
budget (read from `experiments/calibration/CLAIM-SCALE.json` when that record exists), and its
runs return their training curves (`curves`), from which the runner flags under-trained runs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from esparse import convergence, stats

SCALES = ("smoke", "quick", "full")
# CLAIMS.md: at least 8 seeds at quick and 32 at full; fewer gives a "preliminary" verdict
MIN_SEEDS = {"smoke": 3, "quick": 8, "full": 32}
UNDER_TRAINED_LIMIT = 0.25  # a fail on an arm with more under-trained runs is inconclusive
N_CURVE_LOGS = 20  # the training objective is logged at >= 20 evenly spaced steps
CALIBRATION_DIR = Path(__file__).with_name("calibration")
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
class Training:
    """How a trained claim's budget is calibrated and its runs judged converged.

    budget_field: the config field holding the budget (steps, epochs or rounds' steps).
    criterion_metrics: (metrics, config) -> name -> (per-seed values, "accuracy" | "loss"), the
      numbers the calibration watches between T and 2T.
    floor: an objective at or below it at the end has reached the claim's target and counts
      as trained (`esparse.convergence.under_trained`).
    loss_target: a criterion loss at or below it at T and 2T has settled.
    calibration_seeds: how many calibration seeds (base seed 1000003) per budget.
    max_doublings: the calibration tries T0, 2 T0, ..., 2^max_doublings T0.
    decaying_schedule: the paper's learning rate decays to 0 (supermask's cosine): the tail
      rule is reported per arm but decides nothing; convergence is the calibration's T vs 2T
      comparison (CLAIMS.md, 2026-12-03), so a run at a calibrated budget that did not settle
      is under-trained (`training_checks`).
    """

    budget_field: str
    criterion_metrics: Callable[[Metrics, Any], dict[str, tuple[np.ndarray, str]]]
    floor: float = 0.0
    loss_target: float = 0.0
    calibration_seeds: int = 4
    max_doublings: int = 4
    decaying_schedule: bool = False


@dataclass(frozen=True)
class Claim:
    """One reproducible claim of CLAIMS.md."""

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
    training: Training | None = None

    def config(self, scale: str, seeds: int | None = None):
        """The config of `scale`, with its calibrated budget (`budget`) and its seed count
        replaced when `seeds` is given."""
        if scale not in self.configs:
            raise ValueError(f"scale must be one of {list(self.configs)}, got {scale!r}")
        cfg = self.configs[scale]
        source = self.budget(scale)
        if source.get("calibrated"):
            cfg = dataclasses.replace(cfg, **{source["field"]: source["value"]})
        return cfg if seeds is None else dataclasses.replace(cfg, seeds=seeds)

    def trains(self, config: Any) -> bool:
        """Whether `config` trains by gradient steps: the claim has a `Training` and the
        config's budget is positive (a budget of 0 leaves the trained arm out of a scale)."""
        return self.training is not None and getattr(config, self.training.budget_field) > 0

    def calibration_path(self, scale: str) -> Path:
        """Where `python -m experiments calibrate` writes this claim's budget at `scale`."""
        return CALIBRATION_DIR / f"{self.id}-{scale}.json"

    def budget(self, scale: str) -> dict:
        """The training budget at `scale` and where it comes from: the calibration record
        when one exists (field, value, calibrated=True, source=its path), else the config's
        starting budget, or value 0 where the scale leaves the trained arm out. {} for a claim
        that does not train."""
        if self.training is None:
            return {}
        name = self.training.budget_field
        start = getattr(self.configs[scale], name)
        if not self.trains(self.configs[scale]):
            return {
                "field": name,
                "value": 0,
                "calibrated": False,
                "source": f"no trained arm at {scale} scale ({name} = 0)",
            }
        path = self.calibration_path(scale)
        if not path.exists():
            return {
                "field": name,
                "value": start,
                "calibrated": False,
                "source": f"starting budget (no {path.name})",
            }
        record = json.loads(path.read_text())
        if record.get("claim") != self.id or record.get("budget_field") != name:
            raise ValueError(f"calibration record {path} is not {self.id}'s {name} budget")
        return {
            "field": name,
            "value": int(record["budget"]),
            "calibrated": True,
            "source": f"experiments/calibration/{path.name}",
            "converged": bool(record.get("converged", False)),
        }


def curves(arm: str, result) -> Metrics:
    """The training curves of one arm's runs from an engine `TrainResult` (seed axis first):
    the objective (train loss), the train accuracy when logged, and the steps of the logs,
    stored as metrics `curve/ARM/objective`, `curve/ARM/accuracy`, `curve/ARM/steps`."""
    out = {
        f"curve/{arm}/steps": np.asarray(result.log_steps),
        f"curve/{arm}/objective": np.asarray(result.history["train_loss"]),
    }
    if "train_accuracy" in result.history:
        out[f"curve/{arm}/accuracy"] = np.asarray(result.history["train_accuracy"])
    return out


def log_every(steps: int) -> int:
    """The logging interval that gives >= N_CURVE_LOGS evenly spaced logs over `steps`."""
    if steps < N_CURVE_LOGS:
        raise ValueError(f"steps must be >= {N_CURVE_LOGS} to log the objective, got {steps}")
    return steps // N_CURVE_LOGS


def arms_with_curves(metrics: Metrics) -> list[str]:
    """The arms whose training curves `metrics` holds, in the order they were stored."""
    return list(
        dict.fromkeys(
            k.split("/")[1] for k in metrics if k.startswith("curve/") and k.endswith("/objective")
        )
    )


def under_trained_runs(metrics: Metrics, floor: float = 0.0) -> dict[str, np.ndarray]:
    """arm -> (seeds,) bool: the runs still learning at the end (`convergence.under_trained`)."""
    out = {}
    for arm in arms_with_curves(metrics):
        out[arm] = convergence.under_trained(
            metrics[f"curve/{arm}/steps"],
            metrics[f"curve/{arm}/objective"],
            metrics.get(f"curve/{arm}/accuracy"),
            floor=floor,
        )
    return out


def convergence_checks(
    metrics: Metrics, floor: float = 0.0, *, gate: bool = True
) -> tuple[dict, list[stats.Check]]:
    """Per arm, the fraction of under-trained runs and a validity check: more than a quarter
    under-trained makes any fail on that arm inconclusive ("under-trained"). gate=False: the
    fractions only (reported), no checks."""
    fractions = {a: float(r.mean()) for a, r in under_trained_runs(metrics, floor).items()}
    if not gate:
        return fractions, []
    checks = [
        stats.validity(
            f"{arm}: converged (under-trained runs <= {UNDER_TRAINED_LIMIT:.0%})",
            frac <= UNDER_TRAINED_LIMIT,
            f"{frac:.0%} of runs under-trained"
            + ("" if frac <= UNDER_TRAINED_LIMIT else " (under-trained)"),
            arms=(arm,),
            blocks_only_fails=True,
        )
        for arm, frac in fractions.items()
    ]
    return fractions, checks


def training_checks(
    claim: Claim, scale: str, metrics: Metrics, config: Any
) -> tuple[dict, list[stats.Check]]:
    """A claim's under-trained fractions per arm and the validity checks they give.

    The tail rule (`convergence_checks`), unless the claim's schedule decays
    (`Training.decaying_schedule`): then the fractions are reported only, and a run at the
    calibrated budget is converged when its calibration settled (T vs 2T); a validity check
    on all arms says so, and when it did not settle a fail is not decisive (a pass stands).
    A config whose budget is not the calibrated one has no such check."""
    training = claim.training
    if training is None or not training.decaying_schedule:
        return convergence_checks(metrics, 0.0 if training is None else training.floor)
    fractions, _ = convergence_checks(metrics, training.floor, gate=False)
    source = claim.budget(scale)
    value = getattr(config, training.budget_field)
    if not source["calibrated"] or value != source["value"]:
        return fractions, []
    settled = source["converged"]
    check = stats.validity(
        f"{training.budget_field}={value} converged (calibration T vs 2T; decaying schedule)",
        settled,
        f"{source['source']}: "
        + ("settled against 2T" if settled else "no budget settled (under-trained)"),
        blocks_only_fails=True,  # as the tail rule: a fail is not decisive, a pass stands
    )
    return fractions, [check]


def rises_and_beats_raw(
    grid_name: str, grid, accuracy: np.ndarray, raw_accuracy: np.ndarray, at_edge: np.ndarray
) -> tuple[float, stats.Interval, list[stats.Check]]:
    """The shared criterion of es-expansion and random-net.

    accuracy: (seeds, grid) test accuracies of the features; raw_accuracy: (seeds,) the linear
    readout of the raw input; at_edge: the lambda-at-grid-edge flags or fractions of every
    ridge readout of the claim, the raw-input readout's included. Checks that accuracy rises
    with the grid (`stats.rises_with`: paired CIs of last - first and of each step), that the
    last grid point beats the raw readout (paired 95% CI above 0), and `lambda_edge_check`.
    Returns (Spearman rho of the means, reported only; gain; checks).
    """
    rho = stats.spearman(grid, accuracy.mean(axis=0))
    gain = stats.paired_ci(accuracy[:, -1], raw_accuracy)
    checks = [
        stats.rises_with(f"accuracy rises with {grid_name}", grid, accuracy),
        stats.ci_above(f"gain over raw linear readout at {grid_name}={grid[-1]}", gain, 0.0),
        lambda_edge_check(at_edge, "ridge readouts (features and raw input)"),
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

    log=True (log-scale axes): the geometric mean with the interval of the mean of
    log(values), so no bar crosses zero; an exact 0 (a fit to machine precision) is drawn at
    the smallest positive value of `values` (1e-30 when there is none), as a log axis must.
    """
    values = np.asarray(values, dtype=float)
    if log:
        positive = values[values > 0]
        values = np.log(np.maximum(values, positive.min() if positive.size else 1e-30))
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
