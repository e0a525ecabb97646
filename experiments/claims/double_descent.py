"""double-descent (Mukherjee & Huberman; Belkin et al. 2019): test error of minimum-norm
random-feature regression peaks at the interpolation threshold N = n and falls again beyond it.

Protocol (CLAIMS.md): MNIST-1D (standardised inputs), n training samples drawn per seed
(quick 1000, full 4000), random ReLU features (`features.random_relu_features`, nested in N),
N on the log grid N = n * 10^(j/6), j = -6..6 (13 points, N = n included; CLAIMS.md's
2026-12-02 clarification), plus extra points at 0.8n, 0.9n, 1.1n, 1.25n that are drawn in the
figure and take no part in the criterion; minimum-norm least squares on one-hot targets
(`regression.min_norm_lstsq`), in float64: in float32 the SVD cutoff max(n, N) * eps drops
about a quarter of the singular values at N = n = 4000 (3047 of 4000 kept; float64 keeps
3994), a truncated-SVD fit that does not interpolate, and its norm does not peak at N = n.
Squared and 0-1 test loss on the MNIST-1D test split, and the readout weight norm.
Criterion (CLAIMS.md, line for line), on the 13-point grid only: the N of the peak median test
squared loss and the N of the peak median weight norm both lie within [0.8n, 1.25n]; the median
loss at N = 10n is at most half the largest median loss on the grid excluding N = n. Reported
in the headline (REPORT.md's row, CLAIMS.md 2026-12-03): whether the over-parameterised end
beats the best under-parameterised median loss, squared and 0-1.
`decades` (tests only) narrows the grid to n * 10^(+-decades) with the same spacing (fewer
compiles); every scale keeps 1 (n/10 to 10n).
Negative control (tests only, `Config.control="ridge"`): ridge with a large fixed lambda
(`CONTROL_RIDGE_LAMBDA` per training sample) instead of the minimum-norm fit; the
regularisation removes the peak at N = n.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from esparse import data, engine, features, regression, stats
from experiments.core import Claim, Evaluation, ProtocolChange, errorbar, save_figure, subplots


@dataclass(frozen=True)
class Config:
    seeds: int
    n_train: int = 1000
    per_decade: int = 6  # criterion grid N = n * 10^(j / per_decade), |j| <= per_decade * decades
    decades: float = 1.0  # the grid's span each side of N = n (1: n/10 to 10n, as CLAIMS.md)
    extra_ratios: tuple[float, ...] = (0.8, 0.9, 1.1, 1.25)  # figure only
    num_samples: int = 5000
    control: str | None = None  # negative control, tests only: "ridge"


CONFIGS = {
    "smoke": Config(seeds=3, n_train=100, per_decade=2, extra_ratios=(0.9,)),
    # no figure-only extra points at quick scale, for the suite's time (ProtocolChange)
    "quick": Config(seeds=8, extra_ratios=()),
    "full": Config(seeds=32, n_train=4000, num_samples=10000),
}


def _grid(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """(sizes, on_grid): every N fitted, ascending, and which belong to the criterion's grid."""
    half = round(config.per_decade * config.decades)
    j = np.arange(-half, half + 1)
    grid = {max(1, round(config.n_train * 10.0 ** (i / config.per_decade))) for i in j}
    extra = {max(1, round(r * config.n_train)) for r in config.extra_ratios} - grid
    sizes = np.array(sorted(grid | extra))
    return sizes, np.isin(sizes, sorted(grid))


CONTROL_RIDGE_LAMBDA = 1.0  # the negative control's ridge penalty, per training sample


def _fit(key, ds: data.Dataset, n: int, n_features: int, control: str | None = None):
    """One seed at one N, in float64 (run inside jax.enable_x64); control="ridge": ridge at
    lambda = CONTROL_RIDGE_LAMBDA * n instead of the minimum-norm fit."""
    row_key, feat_key = jax.random.split(key)
    rows = jax.random.choice(row_key, ds.x_train.shape[0], (n,), replace=False)
    x, labels = ds.x_train[rows].astype(jnp.float64), ds.y_train[rows]
    w, b = features.random_relu_weights(feat_key, x.shape[1], n_features, dtype=jnp.float64)
    targets = data.one_hot(labels, 10).astype(jnp.float64)
    phi = features.relu_features(x, w, b)
    if control == "ridge":
        weights = regression.ridge(phi, targets, CONTROL_RIDGE_LAMBDA * n)
    else:
        weights = regression.min_norm_lstsq(phi, targets)
    pred = regression.predict(features.relu_features(ds.x_test.astype(jnp.float64), w, b), weights)
    sq = jnp.mean(jnp.sum(jnp.square(pred - data.one_hot(ds.y_test, 10)), axis=1))
    zero_one = jnp.mean(jnp.argmax(pred, axis=1) != ds.y_test)
    return sq, zero_one, regression.weight_norm(weights)


def run(keys, config: Config) -> dict:
    if config.control not in (None, "ridge"):
        raise ValueError(f"control must be None or 'ridge', got {config.control!r}")
    ds = data.standardize(data.mnist1d(num_samples=config.num_samples))
    out = {"test_squared_loss": [], "test_zero_one_loss": [], "weight_norm": []}
    for n_features in _grid(config)[0].tolist():
        fit = partial(_fit, n=config.n_train, n_features=n_features, control=config.control)
        with jax.enable_x64(True):
            sq, zo, norm = engine.vmap_seeds(fit, keys, ds)
        out["test_squared_loss"].append(np.asarray(sq))
        out["test_zero_one_loss"].append(np.asarray(zo))
        out["weight_norm"].append(np.asarray(norm))
    return {name: np.stack(v, axis=1) for name, v in out.items()}


def evaluate(metrics: dict, config: Config) -> Evaluation:
    all_sizes, on_grid = _grid(config)
    sizes = all_sizes[on_grid]
    n = config.n_train
    sq = np.median(metrics["test_squared_loss"][:, on_grid], axis=0)
    zo = np.median(metrics["test_zero_one_loss"][:, on_grid], axis=0)
    norm = np.median(metrics["weight_norm"][:, on_grid], axis=0)
    peak_n, norm_peak_n = int(sizes[np.argmax(sq)]), int(sizes[np.argmax(norm)])
    not_n = sizes != n
    largest_excl = float(sq[not_n].max())
    end = float(sq[-1])
    under = sizes < n
    beats_sq, beats_zo = bool(end < sq[under].min()), bool(zo[-1] < zo[under].min())
    checks = [
        stats.holds(
            "peak of median test squared loss at N in [0.8n, 1.25n]",
            0.8 * n <= peak_n <= 1.25 * n,
            f"peak at N={peak_n} (n={n})",
        ),
        stats.holds(
            "peak of median weight norm at N in [0.8n, 1.25n]",
            0.8 * n <= norm_peak_n <= 1.25 * n,
            f"peak at N={norm_peak_n} (n={n})",
        ),
        stats.at_most(
            f"median loss at N={sizes[-1] / n:.3g}n / largest median loss excluding N=n",
            end / largest_excl,
            0.5,
        ),
    ]
    summary = {
        "n_train": n,
        "n_features": sizes.tolist(),
        "n_features_figure_only": all_sizes[~on_grid].tolist(),
        "median_test_squared_loss": sq.tolist(),
        "median_test_zero_one_loss": zo.tolist(),
        "median_weight_norm": norm.tolist(),
        "peak_n_features_loss": peak_n,
        "peak_n_features_norm": norm_peak_n,
        "largest_loss_excluding_n": largest_excl,
        "loss_at_largest_n": end,
        "overparameterized_beats_best_underparameterized_squared": beats_sq,
        "overparameterized_beats_best_underparameterized_zero_one": beats_zo,
        "best_underparameterized_squared": float(sq[under].min()),
        "best_underparameterized_zero_one": float(zo[under].min()),
        "zero_one_at_largest_n": float(zo[-1]),
    }
    yes_no = {True: "yes", False: "no"}
    headline = (
        f"peak loss at N={peak_n} (n={n}), norm peak at N={norm_peak_n}; median sq loss "
        f"{sq.max():.3g} max, {end:.3f} at N={sizes[-1] / n:.3g}n = {end / largest_excl:.2f} "
        f"of the largest off-threshold loss; over-parameterized end beats the best "
        f"under-parameterized loss: "
        f"squared {yes_no[beats_sq]} ({end:.3f} vs {sq[under].min():.3f}), "
        f"0-1 {yes_no[beats_zo]} ({zo[-1]:.1%} vs {zo[under].min():.1%})"
    )
    return Evaluation(checks, summary, headline)


def plot(metrics: dict, config: Config, path) -> None:
    all_sizes, on_grid = _grid(config)
    sizes = all_sizes / config.n_train
    fig, axes = subplots(ncols=3, width=4.5)
    for ax, name, label in zip(
        axes,
        ("test_squared_loss", "test_zero_one_loss", "weight_norm"),
        ("test squared loss", "test 0-1 loss", "readout weight norm"),
        strict=True,
    ):
        values = metrics[name]
        errorbar(ax, sizes, values, "mean, 95% CI", alpha=0.6)
        median = np.median(values, axis=0)
        ax.plot(sizes[on_grid], median[on_grid], "k--", label="median (criterion grid)")
        ax.plot(sizes[~on_grid], median[~on_grid], "kx", label="median (extra, figure only)")
        ax.axvline(1.0, color="red", lw=0.7, label="N = n")
        ax.set_xscale("log")
        if name != "test_zero_one_loss":
            ax.set_yscale("log")
        ax.set_xlabel("N / n (random features per training sample)")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    axes[0].set_title(f"MNIST-1D min-norm RF regression, n={config.n_train}")
    save_figure(fig, path)


CLAIM = Claim(
    id="double-descent",
    paper="MH",
    statement=(
        "Test error of minimum-norm random-feature regression peaks at the interpolation "
        "threshold N = n and falls again beyond it."
    ),
    anchor="Belkin et al.: RFF on MNIST (n=10^4) peaks at N=n.",
    configs=CONFIGS,
    run=run,
    evaluate=evaluate,
    plot=plot,
    changes=(
        ProtocolChange(
            date="2026-12-02",
            what=(
                "the peak check uses only the spec's 13-point log grid N = n 10^(j/6); extra points"
                " at 0.8n-1.25n are drawn only"
            ),
            reason=(
                "the five extra points inside the acceptance window gave the peak check five "
                "chances (CLAIMS.md clarification)"
            ),
            verdict_before="reproduced",
        ),
        ProtocolChange(
            date="2026-12-03",
            what="features, the minimum-norm SVD solve and the predictions run in float64",
            reason=(
                "at full scale (n = 4000) the float32 SVD cutoff max(n, N) * eps kept 3047 of "
                "4000 singular values at N = n: a truncated fit, whose weight norm plateaued "
                "from N = 2725 to 4000 instead of peaking at N = n"
            ),
            verdict_before="full scale: not reproduced (norm peak at N = 2725); quick: reproduced",
        ),
        ProtocolChange(
            date="2026-12-04",
            what="quick scale without the figure-only points at 0.8n-1.25n (13-point grid kept)",
            reason="the quick suite's 15 minutes on 2 cores (they decide nothing)",
            verdict_before=(
                "reproduced (loss and norm peak at N = n; 0.954 at 10n = 0.33 of the largest "
                "off-threshold loss)"
            ),
        ),
    ),
)
