"""es-expansion (Mukherjee & Huberman; Dasgupta et al.): expand-and-sparsify features become more
linearly useful as the expansion grows, and beat a linear readout of the raw input.

Protocol (CLAIMS.md): MNIST-1D, Gaussian projection d = 40 -> m = r * d, keep the top 5% per
sample (k-winners-take-all), ridge readout on one-hot targets with lambda chosen on a validation
split. Control: the same projection with a dense ReLU instead of the top-k (expansion plus a
nonlinearity, no sparsity), reported. Baseline: the same ridge readout of the raw input.
Criterion (CLAIMS.md with its 2026-12-02/03 clarifications): accuracy rises with r
(`stats.rises_with`: paired CI of last - first r above 0, no neighbouring step entirely below
0; Spearman rho reported only), and at the largest r of the scale's grid ("r = 40" at quick)
the paired gain over the raw readout has a 95% CI above 0; inconclusive where more than 10% of
the lambda choices of the criterion's ridge readouts (top-k features at every r and the raw
input) sit at an edge of the lambda grid.
Negative control (tests only, `Config.control="random-k"`): the top-k replaced by a random
k-subset of the units per row, independent of their values (no winner-take-all), which makes
the features a randomly masked linear map of the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from esparse import data, engine, projection, readout, sparsify, stats
from experiments.core import (
    Claim,
    Evaluation,
    ProtocolChange,
    errorbar,
    grid_intervals,
    interval,
    rises_and_beats_raw,
    save_figure,
    subplots,
)


@dataclass(frozen=True)
class Config:
    seeds: int
    ratios: tuple[int, ...] = (1, 2, 5, 10, 20, 40)
    keep_fraction: float = 0.05
    num_samples: int = 5000
    control: str | None = None  # negative control, tests only: "random-k"


CONFIGS = {
    "smoke": Config(seeds=3, ratios=(1, 5, 20), num_samples=1000),
    "quick": Config(seeds=8),
    "full": Config(seeds=32, ratios=(1, 2, 5, 10, 20, 40, 80, 160)),
}


def _expansions(key, x_all: jax.Array, m: int, k: int, control: str | None):
    """Sparse (top-k) and dense-ReLU features of one seed's Gaussian expansion to m units.

    control="random-k": the sparse features keep a random k-subset of units per row instead
    of the top k (the negative control)."""
    projected = x_all @ projection.gaussian(key, x_all.shape[1], m)
    if control == "random-k":
        noise = jax.random.uniform(jax.random.fold_in(key, 1), projected.shape)
        sparse = jnp.where(sparsify.kwta_mask(noise, k), projected, 0.0)
    else:
        sparse = sparsify.kwta(projected, k)
    return sparse, jax.nn.relu(projected)


def _readout(key, phi, ds: data.Dataset):
    """Test accuracy and lambda-at-edge flag of the ridge readout of one seed's features."""
    n = ds.x_train.shape[0]
    fit = readout.ridge_classifier(key, phi[:n], ds.y_train, phi[n:], ds.y_test, 10)
    return fit.test_accuracy, fit.at_edge


def _readouts(keys, phi, ds: data.Dataset):
    """`_readout` of every seed's features phi: (S, n_all, m)."""
    return engine.vmap_seeds(_readout, keys, phi, ds, in_axes=(0, None))


def run(keys, config: Config) -> dict:
    if config.control not in (None, "random-k"):
        raise ValueError(f"control must be None or 'random-k', got {config.control!r}")
    ds = data.mnist1d(num_samples=config.num_samples)
    x_all = jnp.concatenate([ds.x_train, ds.x_test])
    proj_keys = jax.vmap(lambda key: jax.random.fold_in(key, 0))(keys)
    split_keys = jax.vmap(lambda key: jax.random.fold_in(key, 1))(keys)
    sparse, dense, edge, dense_edge = [], [], [], []
    for r in config.ratios:
        m = r * x_all.shape[1]
        # features, then readouts, one vmapped call each (fusing both in one program stalled
        # XLA:CPU at 8 seeds); blocking per ratio bounds memory to one ratio's features
        k = max(1, round(config.keep_fraction * m))
        expand = partial(_expansions, m=m, k=k, control=config.control)
        phi_sparse, phi_dense = engine.vmap_seeds(expand, proj_keys, x_all)
        acc, at_edge = (np.asarray(v) for v in _readouts(split_keys, phi_sparse, ds))
        sparse.append(acc)
        edge.append(at_edge)
        acc, at_edge = (np.asarray(v) for v in _readouts(split_keys, phi_dense, ds))
        dense.append(acc)
        dense_edge.append(at_edge)
    raw, raw_edge = (
        np.asarray(v)
        for v in _readouts(split_keys, jnp.broadcast_to(x_all, (len(keys), *x_all.shape)), ds)
    )
    return {
        "sparse_accuracy": np.stack(sparse, axis=1),
        "dense_relu_accuracy": np.stack(dense, axis=1),
        "raw_accuracy": raw,
        "sparse_lambda_at_edge": np.stack(edge, axis=1),
        "dense_relu_lambda_at_edge": np.stack(dense_edge, axis=1),
        "raw_lambda_at_edge": raw_edge,
    }


def evaluate(metrics: dict, config: Config) -> Evaluation:
    sparse, dense, raw = (
        metrics["sparse_accuracy"],
        metrics["dense_relu_accuracy"],
        metrics["raw_accuracy"],
    )
    # the criterion's ridge readouts: top-k features at every r and the raw input
    at_edge = np.concatenate(
        [metrics["sparse_lambda_at_edge"], metrics["raw_lambda_at_edge"][:, None]], axis=1
    )
    rho, gain, (rises, beats, edge) = rises_and_beats_raw("r", config.ratios, sparse, raw, at_edge)
    checks = [rises.on("top-k"), beats.on("top-k", "raw"), edge]
    dense_gain = stats.paired_ci(sparse[:, -1], dense[:, -1])
    summary = {
        "ratios": list(config.ratios),
        "sparse_accuracy": grid_intervals(sparse),
        "dense_relu_accuracy": grid_intervals(dense),
        "raw_accuracy": interval(raw),
        "spearman_rho_sparse": rho,
        "spearman_rho_dense": stats.spearman(config.ratios, dense.mean(axis=0)),
        "gain_over_raw": gain.to_dict(),
        "sparse_minus_dense_at_largest_r": dense_gain.to_dict(),
        "lambda_at_grid_edge_fraction": float(at_edge.mean()),
        "lambda_at_grid_edge_fraction_raw": float(metrics["raw_lambda_at_edge"].mean()),
        "lambda_at_grid_edge_fraction_dense_relu": float(
            metrics["dense_relu_lambda_at_edge"].mean()
        ),
    }
    top = stats.mean_ci(sparse[:, -1])
    headline = (
        f"top-5% acc at r={config.ratios[-1]}: {top.mean:.1%} [{top.low:.1%}, {top.high:.1%}]; "
        f"raw linear {raw.mean():.1%}; dense-ReLU control {dense[:, -1].mean():.1%} "
        f"(top-k - dense {dense_gain.mean:+.1%}); rho {rho:.2f}; lambda at a grid edge "
        f"{at_edge.mean():.0%} of choices"
    )
    return Evaluation(checks, summary, headline)


def plot(metrics: dict, config: Config, path) -> None:
    fig, (ax,) = subplots(width=6)
    errorbar(ax, config.ratios, metrics["sparse_accuracy"], "expand + top-5% (kWTA)")
    errorbar(ax, config.ratios, metrics["dense_relu_accuracy"], "expand + ReLU (control)")
    ax.axhline(metrics["raw_accuracy"].mean(), color="gray", ls="--", label="raw input, linear")
    ax.set_xscale("log")
    ax.set_xlabel("expansion ratio r = m / d")
    ax.set_ylabel("test accuracy (ridge readout)")
    ax.set_title("MNIST-1D: expand-and-sparsify")
    ax.legend()
    save_figure(fig, path)


CLAIM = Claim(
    id="es-expansion",
    paper="MH",
    statement=(
        "Expand-and-sparsify features grow more linearly useful with the expansion and beat a "
        "linear readout of the raw input."
    ),
    anchor="MNIST-1D README: logistic regression 32%, MLP 68%.",
    configs=CONFIGS,
    run=run,
    evaluate=evaluate,
    plot=plot,
    changes=(
        ProtocolChange(
            date="2026-12-03",
            what=(
                "'accuracy rises with r' decided by paired CIs (last - first r above 0, no "
                "neighbouring step entirely below 0) instead of Spearman rho >= 0.9 (reported "
                "only); the raw-input readout's lambda choices count toward the lambda-edge rule"
            ),
            reason=(
                "CLAIMS.md 2026-12-03: rho over six means ignores the seeds' spread and cannot "
                "be inconclusive; every ridge readout of the criterion counts"
            ),
            verdict_before=(
                "reproduced (top-k 48.5% at r=40, rho 1.00, raw linear 21.9%, lambda never at "
                "the grid edge)"
            ),
        ),
    ),
)
