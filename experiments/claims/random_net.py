"""random-net (Mukherjee & Huberman): an untrained random network with a trained readout performs
far above chance, and better the wider it is.

Protocol (CLAIMS.md): MNIST-1D (standardised inputs). One random ReLU hidden layer (W ~ N(0,
1/d), b ~ N(0, 1), `esparse.features.random_relu_features`), width in {64, 256, 1024, 4096},
frozen; ridge readout with lambda chosen on a validation split (`readout.ridge_classifier`).
Baseline: the same ridge readout of the raw input. Comparison (reported, not judged): an MLP
40-h-10 fully trained with Adam (`esparse.engine.train_seeds`), h = `mlp_width` (the widest
random width at full scale). The quick scale leaves the MLP out (`mlp_steps = 0`): trained to
convergence it took 48000 steps (calibration of 2026-12-04), five minutes of the suite's
fifteen on 2 cores, for a number that decides nothing.
Criterion (CLAIMS.md, line for line): Spearman rho(width, mean accuracy) >= 0.9, and the widest
random net beats the raw linear readout, paired 95% CI above 0; inconclusive where more than 10%
of the ridge lambda choices sit at an edge of the grid (2026-12-02 clarification). The gap to
the trained MLP is reported.
2026-12-03 (CLAIMS.md): "rises with width" by `stats.rises_with` (paired CIs, rho reported); the
raw-input ridge readout counts in the lambda-edge rule; the trained MLP logs its training
curves (arm "mlp", >= 20 logs, constant learning rate) and its budget `mlp_steps` is the
calibrated one; the criterion's checks read the random-feature arm ("random") and the raw
readout ("raw"). Negative control (tests only, `control="shuffle"`): each random hidden
feature's values permuted across the examples (its own permutation per feature), so no
feature says anything about its example and nothing can rise with width.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import numpy as np
import optax

from esparse import data, engine, features, nn, readout, stats
from experiments.core import (
    Claim,
    Evaluation,
    ProtocolChange,
    Training,
    curves,
    errorbar,
    grid_intervals,
    interval,
    log_every,
    rises_and_beats_raw,
    save_figure,
    subplots,
)


@dataclass(frozen=True)
class Config:
    seeds: int
    widths: tuple[int, ...] = (64, 256, 1024, 4096)
    num_samples: int = 5000
    mlp_width: int = 256
    mlp_steps: int = 3000
    batch_size: int = 128
    learning_rate: float = 1e-3
    control: str | None = None  # negative control, tests only: "shuffle"


CONTROLS = (None, "shuffle")
CONFIGS = {
    "smoke": Config(seeds=3, widths=(32, 128), num_samples=1000, mlp_width=32, mlp_steps=100),
    # no trained MLP at quick scale (module docstring): its converged budget does not fit
    "quick": Config(seeds=8, mlp_steps=0),
    "full": Config(seeds=32, widths=(64, 256, 1024, 4096, 16384), mlp_width=4096, mlp_steps=8000),
}


def _shuffled(key, phi):
    """Each column of phi (n, width) permuted across the rows by its own permutation."""
    keys = jax.random.split(key, phi.shape[1])
    return jax.vmap(lambda k, col: jax.random.permutation(k, col), in_axes=(0, 1), out_axes=1)(
        keys, phi
    )


def _random_net_accuracy(key, ds: data.Dataset, width: int, shuffle: bool = False):
    feat_key, split_key = jax.random.split(key)
    w, b = features.random_relu_weights(feat_key, ds.x_train.shape[1], width)
    phi, phi_test = (
        features.relu_features(ds.x_train, w, b),
        features.relu_features(ds.x_test, w, b),
    )
    if shuffle:
        s_key = jax.random.fold_in(feat_key, 1)
        phi = _shuffled(s_key, phi)
        phi_test = _shuffled(jax.random.fold_in(s_key, 1), phi_test)
    fit = readout.ridge_classifier(split_key, phi, ds.y_train, phi_test, ds.y_test, 10)
    return fit.test_accuracy, fit.at_edge


def _raw_accuracy(key, ds: data.Dataset):
    _, split_key = jax.random.split(key)
    fit = readout.ridge_classifier(split_key, ds.x_train, ds.y_train, ds.x_test, ds.y_test, 10)
    return fit.test_accuracy, fit.at_edge


def run(keys, config: Config) -> dict:
    if config.control not in CONTROLS:
        raise ValueError(f"control must be one of {CONTROLS}, got {config.control!r}")
    ds = data.standardize(data.mnist1d(num_samples=config.num_samples))
    acc, edge = [], []
    shuffle = config.control == "shuffle"
    for width in config.widths:
        fn = partial(_random_net_accuracy, width=width, shuffle=shuffle)
        a, e = engine.vmap_seeds(fn, keys, ds)
        acc.append(np.asarray(a))
        edge.append(np.asarray(e))
    raw, raw_edge = engine.vmap_seeds(_raw_accuracy, keys, ds)
    out = {
        "random_net_accuracy": np.stack(acc, axis=1),
        "raw_accuracy": np.asarray(raw),
        "lambda_at_edge_fraction": np.stack(edge, axis=1).mean(axis=1),
        "raw_lambda_at_edge": np.asarray(raw_edge),
    }
    if config.mlp_steps == 0:
        return out
    model = nn.mlp((ds.x_train.shape[1], config.mlp_width, 10))
    init_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
    result = engine.train_seeds(
        keys,
        jax.vmap(model.init)(init_keys),
        ds,
        apply_fn=model.apply,
        optimizer=optax.adam(config.learning_rate),
        steps=config.mlp_steps,
        batch_size=config.batch_size,
        log_every=log_every(config.mlp_steps),
    )
    return {
        **out,
        "trained_mlp_accuracy": np.asarray(result.final["test_accuracy"]),
        **curves("mlp", result),
    }


def evaluate(metrics: dict, config: Config) -> Evaluation:
    acc, raw = metrics["random_net_accuracy"], metrics["raw_accuracy"]
    mlp = metrics.get("trained_mlp_accuracy")
    # every lambda choice once: the per-seed fraction over the widths, and the raw readout's
    frac = np.repeat(metrics["lambda_at_edge_fraction"], len(config.widths))
    at_edge = np.concatenate([frac, metrics["raw_lambda_at_edge"].astype(float)])
    rho, gain, checks = rises_and_beats_raw("width", config.widths, acc, raw, at_edge)
    checks = [c.on("random", "raw") for c in checks]
    summary = {
        "widths": list(config.widths),
        "random_net_accuracy": grid_intervals(acc),
        "raw_accuracy": interval(raw),
        "spearman_rho": rho,
        "gain_over_raw": gain.to_dict(),
        "lambda_at_grid_edge_fraction": float(metrics["lambda_at_edge_fraction"].mean()),
        "raw_lambda_at_grid_edge_fraction": float(metrics["raw_lambda_at_edge"].mean()),
    }
    top = stats.mean_ci(acc[:, -1])
    headline = (
        f"random width {config.widths[-1]}: {top.mean:.1%} [{top.low:.1%}, {top.high:.1%}]; "
        f"raw linear {raw.mean():.1%}; rho {rho:.2f}; "
    )
    if mlp is None:
        headline += "no trained MLP at this scale"
    else:
        summary["trained_mlp_accuracy"] = interval(mlp)
        summary["trained_mlp_width"] = config.mlp_width
        summary["trained_mlp_minus_widest_random"] = stats.paired_ci(mlp, acc[:, -1]).to_dict()
        headline += f"trained MLP (h={config.mlp_width}) {mlp.mean():.1%}"
    return Evaluation(checks, summary, headline)


def criterion_metrics(metrics: dict, config: Config) -> dict:
    """What the calibration watches: the trained MLP's test accuracy (the reported gap)."""
    return {"trained MLP test accuracy": (metrics["trained_mlp_accuracy"], "accuracy")}


def plot(metrics: dict, config: Config, path) -> None:
    fig, (ax,) = subplots(width=6)
    errorbar(ax, config.widths, metrics["random_net_accuracy"], "random ReLU layer + ridge")
    ax.axhline(metrics["raw_accuracy"].mean(), color="gray", ls="--", label="raw input, linear")
    if "trained_mlp_accuracy" in metrics:
        ax.axhline(
            metrics["trained_mlp_accuracy"].mean(),
            color="green",
            ls=":",
            label=f"trained MLP (h={config.mlp_width})",
        )
    ax.axhline(0.1, color="black", lw=0.5, label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("hidden width (frozen random)")
    ax.set_ylabel("test accuracy")
    ax.set_title("MNIST-1D: untrained random network")
    ax.legend(fontsize=8)
    save_figure(fig, path)


CLAIM = Claim(
    id="random-net",
    paper="MH",
    statement=(
        "An untrained random network with a trained readout performs far above chance, and "
        "better the wider it is."
    ),
    anchor="MNIST-1D README: logistic regression 32%, MLP 68%.",
    configs=CONFIGS,
    run=run,
    evaluate=evaluate,
    plot=plot,
    training=Training("mlp_steps", criterion_metrics),
    changes=(
        ProtocolChange(
            date="2026-12-03",
            what=(
                "accuracy rises with width by stats.rises_with (was Spearman rho >= 0.9); the raw "
                "readout's lambda choices count in the lambda-edge rule; the trained MLP logs "
                "its curves at a constant rate and its budget is calibrated"
            ),
            reason="CLAIMS.md 2026-12-03 (converged budgets, decisive checks)",
            verdict_before=(
                "reproduced (width 4096: 54.1% [52.7, 55.5] vs raw linear 22.1%, rho 1.00; "
                "trained MLP (h=256) 57.3%)"
            ),
        ),
        ProtocolChange(
            date="2026-12-04",
            what="the quick scale leaves out the trained MLP (report-only; full scale keeps it)",
            reason=(
                "its calibrated budget (48000 steps, not settled) took about 5 of the quick "
                "suite's 15 minutes on 2 cores; CLAIMS.md: make the quick config smaller, never "
                "the budget below its calibration"
            ),
            verdict_before=(
                "reproduced (width 4096: 54.1% [52.6, 55.5] vs raw linear 22.1%; trained MLP "
                "55.9% at 48000 steps)"
            ),
        ),
    ),
)
