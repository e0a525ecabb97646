"""rf-single-neuron (Yehudai & Shamir 2019): random features fail to learn a single ReLU neuron
on Gaussian inputs as d grows, while gradient descent learns it.

Protocol (CLAIMS.md, with its 2026-12-02 clarification): x ~ N(0, I_d), d in {4, 8, 16, 32, 64};
target relu(w*.x + b*), w* a random direction per seed. Three targets, each with its own verdict:
- bulk (main verdict): unit w*, b* = 0, the kink in the bulk of the data;
- tail: unit w*, b* = -1.5, the kink in the tail;
- large-norm: |w*| = d, b* = 0. This follows the construction behind the paper's lower bound
  (Section 4, Theorem 4.2 of arXiv 1904.00687 as we read it: a single neuron with poly(d)
  weights, [<w*, x> + b*]_+ with |w*| and |b*| polynomial in d, cannot be approximated by
  random features unless their number or output weights are exponential in d; the full text
  was not reachable from this machine, so the theorem number is from memory and the abstract).
  A ReLU is positively homogeneous, relu(d w.x) = d relu(w.x), so on the
  normalised error below the random-feature fit equals the bulk target's exactly and only its
  output-weight norm grows (by d, reported); gradient descent must grow the neuron's weights
  to norm d, so its Adam learning rate is scaled by |w*| (Adam's steps are in parameter units).
Random ReLU features (W ~ N(0, 1/d), b ~ N(0, 1)) with ridge, lambda chosen on a 20% validation
split from a grid 1e-8 .. 1e4, solved in float64. Gradient descent on a single ReLU neuron:
full-batch Adam (cosine-decayed) from three random starts (w ~ N(0, I/d), b = 0); the start
with the lowest final *training* loss is the one evaluated, and the single-start error (the
first start alone) is reported beside it. A width-64 two-layer net (Adam, minibatches of 256,
one start) is reported. Error: test MSE / variance of the test targets.
Sizes: full n = 20000, N = 4096; quick n = 4000, N = 1024 (reduced to fit the CPU budget;
fewer features and samples make RF worse at every d, so quick scale tests the trend, full the
paper-sized gap).
Criterion (CLAIMS.md, line for line), per target: RF error rises with d (Spearman rho >= 0.9);
the GD single neuron's error < 1e-3 at every d (95% CI upper bound); at d = 64 RF error >= 10x
the GD error (paired CI of RF - 10 GD above 0); inconclusive where more than 10% of the lambda
choices sit at an edge of the grid. RF output-weight norms reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from esparse import data, engine, features, nn, regression, stats
from experiments.core import (
    Claim,
    Evaluation,
    ProtocolChange,
    errorbar,
    grid_intervals,
    lambda_edge_check,
    save_figure,
    subplots,
)

_LAMS = tuple(float(10.0**e) for e in range(-8, 5))


@dataclass(frozen=True)
class Config:
    seeds: int
    dims: tuple[int, ...] = (4, 8, 16, 32, 64)
    n_train: int = 4000
    n_test: int = 2000
    n_features: int = 1024
    # (name, b*, |w*| = d?) of each target; the first decides the main verdict
    targets: tuple[tuple[str, float, bool], ...] = (
        ("bulk", 0.0, False),
        ("tail", -1.5, False),
        ("large-norm", 0.0, True),
    )
    restarts: int = 3
    steps: int = 2000
    learning_rate: float = 1e-2
    net_width: int = 64
    net_batch: int = 256  # the reported two-layer net keeps minibatches (full batch: 16x the cost)


CONFIGS = {
    "smoke": Config(seeds=3, dims=(4, 16), n_train=500, n_features=128, steps=200),
    "quick": Config(seeds=8),
    "full": Config(seeds=32, n_train=20000, n_test=5000, n_features=4096, steps=5000),
}


def _dataset(
    key, d: int, n_train: int, n_test: int, bias: float, weight_norm: float
) -> data.Dataset:
    t_key, d_key = jax.random.split(key)
    teacher = data.relu_teacher(t_key, d, bias=bias, weight_norm=weight_norm)
    return data.teacher_dataset(d_key, teacher, n_train, n_test)


def _rf(key, ds: data.Dataset, n_features: int):
    """Normalised test MSE, output-weight norm and lambda-at-edge of RF ridge (float64)."""
    f_key, s_key = jax.random.split(key)
    x_tr, y_tr = ds.x_train.astype(jnp.float64), ds.y_train.astype(jnp.float64)
    x_te, y_te = ds.x_test.astype(jnp.float64), ds.y_test.astype(jnp.float64)
    w, b = features.random_relu_weights(f_key, x_tr.shape[1], n_features, dtype=jnp.float64)
    phi, phi_te = features.relu_features(x_tr, w, b), features.relu_features(x_te, w, b)
    sel, _ = regression.ridge_holdout(s_key, phi, y_tr, jnp.asarray(_LAMS, jnp.float64))
    mse = jnp.mean(jnp.square(phi_te @ sel.weights - y_te)) / jnp.var(y_te)
    return mse, regression.weight_norm(sel.weights), sel.at_edge


def _neuron_apply(params, x, key=None, train=False):
    return jax.nn.relu(x @ params["w"] + params["b"])[:, None]


def _neuron_init(key, d: int):
    return {"w": jax.random.normal(key, (d,)) / jnp.sqrt(d), "b": jnp.zeros(())}


def _trained(
    keys, params, datasets: data.Dataset, apply_fn, config: Config, lr: float, batch_size: int
):
    """Adam with a cosine-decayed rate, one run per seed: (train_loss, test_loss)."""
    result = engine.train_seeds(
        keys,
        params,
        datasets,
        apply_fn=apply_fn,
        data_per_seed=True,
        optimizer=optax.adam(optax.cosine_decay_schedule(lr, config.steps)),
        steps=config.steps,
        batch_size=batch_size,
        loss="mse",
        log_every=config.steps,
    )
    return np.asarray(result.final["train_loss"]), np.asarray(result.final["test_loss"])


def _one_setting(keys, config: Config, d: int, bias: float, large_norm: bool) -> dict:
    norm = float(d) if large_norm else 1.0
    make = partial(
        _dataset, d=d, n_train=config.n_train, n_test=config.n_test, bias=bias, weight_norm=norm
    )
    datasets = engine.vmap_seeds(make, keys)
    with jax.enable_x64(True):
        rf = partial(_rf, n_features=config.n_features)
        rf_mse, rf_norm, rf_edge = (
            np.asarray(v) for v in engine.vmap_seeds(rf, keys, datasets, in_axes=(0,))
        )
    variance = np.asarray(jnp.var(datasets.y_test, axis=1))
    targets = datasets._replace(
        y_train=datasets.y_train[..., None], y_test=datasets.y_test[..., None]
    )
    lr = config.learning_rate * norm
    # single neuron: `restarts` starts per seed, run as S * restarts seeds of one program
    r = config.restarts
    start_keys = jax.vmap(lambda k: jax.random.split(jax.random.fold_in(k, 7), r))(keys)
    start_keys = start_keys.reshape(-1)
    repeated = jax.tree.map(lambda a: jnp.repeat(a, r, axis=0), targets)
    neuron_train, neuron_test = _trained(
        start_keys,
        jax.vmap(lambda k: _neuron_init(k, d))(start_keys),
        repeated,
        _neuron_apply,
        config,
        lr,
        config.n_train,  # full batch
    )
    neuron_train, neuron_test = neuron_train.reshape(-1, r), neuron_test.reshape(-1, r)
    best = np.argmin(neuron_train, axis=1)
    net = nn.mlp((d, config.net_width, 1))
    first_starts = start_keys.reshape(-1, r)[:, 0]
    net_params = jax.vmap(net.init)(first_starts)
    _, net_test = _trained(keys, net_params, targets, net.apply, config, lr, config.net_batch)
    return {
        "rf": rf_mse,
        "rf_norm": rf_norm,
        "rf_edge": rf_edge,
        "gd_neuron": neuron_test[np.arange(len(best)), best] / variance,
        "gd_neuron_single_start": neuron_test[:, 0] / variance,
        "gd_two_layer": net_test / variance,
    }


def run(keys, config: Config) -> dict:
    metrics = {}
    for name, bias, large_norm in config.targets:
        per_d = [_one_setting(keys, config, d, bias, large_norm) for d in config.dims]
        for metric in per_d[0]:
            metrics[f"{name}_{metric}"] = np.stack([p[metric] for p in per_d], axis=1)
    return metrics


def _checks(metrics: dict, config: Config, tag: str) -> list[stats.Check]:
    rf, gd = metrics[f"{tag}_rf"], metrics[f"{tag}_gd_neuron"]
    checks = [
        stats.at_least(
            f"{tag}: RF error rises with d (Spearman rho)",
            stats.spearman(config.dims, rf.mean(axis=0)),
            0.9,
        )
    ]
    for j, d in enumerate(config.dims):
        checks.append(
            stats.ci_below(f"{tag}: GD neuron error < 1e-3 at d={d}", stats.mean_ci(gd[:, j]), 1e-3)
        )
    checks.append(
        stats.ci_above(
            f"{tag}: RF error - 10 x GD error at d={config.dims[-1]}",
            stats.paired_ci(rf[:, -1], 10 * gd[:, -1]),
            0.0,
        )
    )
    checks.append(lambda_edge_check(metrics[f"{tag}_rf_edge"], f"{tag}: RF ridge"))
    return checks


def _describe(name: str, bias: float, large_norm: bool) -> str:
    return f"{name} (b*={bias:g}, |w*|={'d' if large_norm else '1'})"


def evaluate(metrics: dict, config: Config) -> Evaluation:
    names = [t[0] for t in config.targets]
    summary = {"dims": list(config.dims), "targets": [list(t) for t in config.targets]}
    for name in names:
        summary[name] = {
            metric: grid_intervals(metrics[f"{name}_{metric}"])
            for metric in ("rf", "rf_norm", "gd_neuron", "gd_neuron_single_start", "gd_two_layer")
        }
        summary[name]["rf_spearman_rho"] = stats.spearman(
            config.dims, metrics[f"{name}_rf"].mean(axis=0)
        )
        summary[name]["lambda_at_grid_edge_fraction"] = float(metrics[f"{name}_rf_edge"].mean())
    main = names[0]
    rf, gd = metrics[f"{main}_rf"], metrics[f"{main}_gd_neuron"]
    single = metrics[f"{main}_gd_neuron_single_start"]
    headline = (
        f"{_describe(*config.targets[0])}: RF err {rf[:, 0].mean():.2e} (d={config.dims[0]}) -> "
        f"{rf[:, -1].mean():.2e} (d={config.dims[-1]}); GD neuron (best of {config.restarts}) "
        f"max over d {gd.mean(axis=0).max():.1e}, single start {single.mean(axis=0).max():.1e}; "
        f"2-layer {metrics[f'{main}_gd_two_layer'][:, -1].mean():.1e}"
    )
    return Evaluation(
        _checks(metrics, config, main),
        summary,
        headline,
        sub_verdicts={_describe(*t): _checks(metrics, config, t[0]) for t in config.targets[1:]},
    )


def plot(metrics: dict, config: Config, path) -> None:
    fig, axes = subplots(ncols=len(config.targets), width=5.5)
    for ax, target in zip(axes, config.targets, strict=True):
        name = target[0]
        errorbar(ax, config.dims, metrics[f"{name}_rf"], f"random features (N={config.n_features})")
        errorbar(
            ax, config.dims, metrics[f"{name}_gd_neuron"], f"GD neuron, best of {config.restarts}"
        )
        errorbar(ax, config.dims, metrics[f"{name}_gd_neuron_single_start"], "GD neuron, one start")
        errorbar(ax, config.dims, metrics[f"{name}_gd_two_layer"], f"GD, width {config.net_width}")
        ax.axhline(1e-3, color="gray", ls="--", lw=0.7, label="1e-3")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("input dimension d")
        ax.set_ylabel("test MSE / target variance")
        ax.set_title(f"relu(w*.x + b*): {_describe(*target)}, n={config.n_train}", fontsize=9)
        ax.legend(fontsize=7)
    save_figure(fig, path)


CLAIM = Claim(
    id="rf-single-neuron",
    paper="YS",
    statement=(
        "Random features fail to learn a single ReLU neuron on Gaussian inputs as d grows, "
        "while gradient descent learns it."
    ),
    anchor="YS: lower bound exponential in d; no experiments in the paper.",
    configs=CONFIGS,
    run=run,
    evaluate=evaluate,
    plot=plot,
    changes=(
        ProtocolChange(
            date="2026-12-02",
            what=(
                "gradient descent on the neuron: full-batch Adam from three random starts, the "
                "start with the lowest training loss evaluated (was: one start, minibatches); the "
                "large-norm target added; lambda-at-edge rule"
            ),
            reason=(
                "the single start stalled in a dead region with the kink in the tail, which tests "
                "the start, not whether a neuron is learnable (CLAIMS.md clarification); the large-"
                "norm variant of the spec was not run"
            ),
            verdict_before="reproduced (bulk); tail kink not reproduced (GD 0.03-0.29)",
        ),
    ),
)
