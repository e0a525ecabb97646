"""double-descent (Mukherjee & Huberman; Belkin et al. 2019): test error of minimum-norm
random-feature regression peaks at the interpolation threshold N = n and falls again beyond it.

Protocol (CLAIMS.md): MNIST-1D (standardised inputs), n training samples drawn per seed
(quick 1000, full 4000), random ReLU features (`features.random_relu_features`, nested in N),
N on a log grid from n/10 to 10n (with extra points at 0.8n, 0.9n, n, 1.1n, 1.25n); minimum-norm
least squares on one-hot targets (`features.min_norm_lstsq`). Squared and 0-1 test loss on the
MNIST-1D test split, and the readout weight norm.
Criterion: the N of the peak median test squared loss and the N of the peak median weight norm
both lie within [0.8n, 1.25n]; the median loss at N = 10n is at most half the largest median
loss on the grid excluding N = n. Reported: whether the over-parameterised end beats the best
under-parameterised loss (squared and 0-1).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from esparse import data, features, stats
from experiments.core import Claim, Evaluation, errorbar, save_figure, subplots

_RATIOS = (0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.1, 1.25, 1.6, 2.5, 4.0, 6.0, 10.0)


@dataclass(frozen=True)
class Config:
    seeds: int
    n_train: int = 1000
    ratios: tuple[float, ...] = _RATIOS
    num_samples: int = 5000


CONFIGS = {
    "smoke": Config(seeds=3, n_train=100, ratios=(0.2, 0.8, 1.0, 1.25, 4.0, 10.0)),
    "quick": Config(seeds=8),
    "full": Config(seeds=32, n_train=4000, num_samples=10000),
}


def _sizes(config: Config) -> list[int]:
    return [max(1, round(r * config.n_train)) for r in config.ratios]


def _fit(key, ds: data.Dataset, n: int, n_features: int):
    row_key, feat_key = jax.random.split(key)
    rows = jax.random.choice(row_key, ds.x_train.shape[0], (n,), replace=False)
    x, labels = ds.x_train[rows], ds.y_train[rows]
    w, b = features.random_relu_weights(feat_key, x.shape[1], n_features)
    weights = features.min_norm_lstsq(features.relu_features(x, w, b), data.one_hot(labels, 10))
    pred = features.relu_features(ds.x_test, w, b) @ weights
    sq = jnp.mean(jnp.sum(jnp.square(pred - data.one_hot(ds.y_test, 10)), axis=1))
    zero_one = jnp.mean(jnp.argmax(pred, axis=1) != ds.y_test)
    return sq, zero_one, features.weight_norm(weights)


def run(keys, config: Config) -> dict:
    ds = data.standardize(data.mnist1d(num_samples=config.num_samples))
    out = {"test_squared_loss": [], "test_zero_one_loss": [], "weight_norm": []}
    fn = jax.jit(jax.vmap(_fit, in_axes=(0, None, None, None)), static_argnums=(2, 3))
    for n_features in _sizes(config):
        sq, zo, norm = fn(keys, ds, config.n_train, n_features)
        out["test_squared_loss"].append(np.asarray(sq))
        out["test_zero_one_loss"].append(np.asarray(zo))
        out["weight_norm"].append(np.asarray(norm))
    return {name: np.stack(v, axis=1) for name, v in out.items()}


def evaluate(metrics: dict, config: Config) -> Evaluation:
    sizes = np.array(_sizes(config))
    n = config.n_train
    sq = np.median(metrics["test_squared_loss"], axis=0)
    zo = np.median(metrics["test_zero_one_loss"], axis=0)
    norm = np.median(metrics["weight_norm"], axis=0)
    peak_n, norm_peak_n = int(sizes[np.argmax(sq)]), int(sizes[np.argmax(norm)])
    not_n = sizes != n
    largest_excl = float(sq[not_n].max())
    end = float(sq[-1])
    under = sizes < n
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
            "median loss at N=10n / largest median loss excluding N=n", end / largest_excl, 0.5
        ),
    ]
    summary = {
        "n_train": n,
        "n_features": sizes.tolist(),
        "median_test_squared_loss": sq.tolist(),
        "median_test_zero_one_loss": zo.tolist(),
        "median_weight_norm": norm.tolist(),
        "peak_n_features_loss": peak_n,
        "peak_n_features_norm": norm_peak_n,
        "largest_loss_excluding_n": largest_excl,
        "loss_at_largest_n": end,
        "overparameterized_beats_best_underparameterized_squared": bool(end < sq[under].min()),
        "overparameterized_beats_best_underparameterized_zero_one": bool(zo[-1] < zo[under].min()),
        "best_underparameterized_squared": float(sq[under].min()),
        "best_underparameterized_zero_one": float(zo[under].min()),
        "zero_one_at_largest_n": float(zo[-1]),
    }
    headline = (
        f"peak loss at N={peak_n} (n={n}), norm peak at N={norm_peak_n}; median sq loss "
        f"{sq.max():.3g} max, {end:.3f} at N=10n vs best under-param {sq[under].min():.3f}; "
        f"0-1 {zo[-1]:.1%} at N=10n vs {zo[under].min():.1%}"
    )
    return Evaluation(checks, summary, headline)


def plot(metrics: dict, config: Config, path) -> None:
    sizes = np.array(_sizes(config)) / config.n_train
    fig, axes = subplots(ncols=3, width=4.5)
    for ax, name, label in zip(
        axes,
        ("test_squared_loss", "test_zero_one_loss", "weight_norm"),
        ("test squared loss", "test 0-1 loss", "readout weight norm"),
        strict=True,
    ):
        values = metrics[name]
        errorbar(ax, sizes, values, "mean, 95% CI", alpha=0.6)
        ax.plot(sizes, np.median(values, axis=0), "k--", label="median")
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
)
