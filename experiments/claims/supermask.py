"""supermask (Mukherjee & Huberman; Zhou et al. 2019; Ramanujan et al. 2020): a randomly weighted
network contains a subnetwork that performs well without any weight training, and wider
networks contain better ones.

Protocol (CLAIMS.md, 2026-12-03: the small-scale FC protocol of Ramanujan et al.'s code,
allenai/hidden-networks configs/smallscale/fc): MNIST-1D MLP 40-w-w-10, bias-free,
signed-constant weights +-sqrt(2/fan_in), frozen; scores uniform in +-1/sqrt(fan_in)
(kaiming_uniform, a = sqrt(5)); every layer masked, the 50% of edges with the largest |score|
kept per layer (edge-popup, straight-through; `esparse.nn.supermask_mlp`); only the scores
trained, by SGD with momentum 0.9, learning rate 0.1 with cosine decay to 0 over the run (per
step; the paper's code steps it per epoch), weight decay 1e-4 on the scores, batch 128. The
budget is in epochs, calibrated (`python -m experiments calibrate supermask`; the paper: 100).
Cosine is the paper's schedule, so convergence is judged by the calibration's T vs 2T; the
tail rule over the last 20% of the steps is still applied and reported per width.
Quick widths: {64, 128, 256} (the spec's 1024, or 512, at the calibrated epochs does not fit
the suite's 15 minutes on 2 cores: an epoch of 8 seeds at w=512 takes ~4 s here; full keeps
1024 and wider).
Quick calibration (experiments/calibration/supermask-quick.json): no budget from 5 to 80 epochs
settled against its double (+2.8 to +4.0 points from 40 to 80), so the quick scale runs at 80
epochs, not converged, and its verdict is inconclusive whatever the checks read.
Criterion: the widest supermask's test accuracy >= 30% (3x chance), decided on the 95% CI of
its mean (inconclusive when the CI straddles 30%), and test accuracy rises with width
(`stats.rises_with`: paired CIs of widest - narrowest and of each step; rho reported).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np
import optax

from esparse import data, engine, nn, optim, stats
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
    save_figure,
    subplots,
)

CONTROLS = ("frozen-scores",)


@dataclass(frozen=True)
class Config:
    """control: negative control, tests only: "frozen-scores" keeps the scores at their
    initial values (no edge-popup training), which must make the claim false."""

    seeds: int
    widths: tuple[int, ...] = (64, 256, 1024)
    keep_fraction: float = 0.5
    epochs: int = 100
    batch_size: int = 128
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    num_samples: int = 5000
    control: str | None = None


CONFIGS = {
    "smoke": Config(seeds=3, widths=(16, 32, 64), epochs=4, num_samples=1000),
    # starting budget of the calibration (epochs); widths narrowed for the suite's time, and
    # since 2026-12-04 two of the calibration's three (a subset: its budget stands)
    "quick": Config(seeds=8, widths=(64, 256), epochs=5),
    "full": Config(seeds=32, widths=(64, 128, 256, 512, 1024, 2048), epochs=100),
}


def _arm(width: int) -> str:
    return f"w={width}"


def steps(config: Config, n_train: int) -> int:
    """The number of SGD steps of `config.epochs` epochs of n_train // batch_size batches."""
    return config.epochs * (n_train // config.batch_size)


def _optimizer(config: Config, total: int, params) -> optax.GradientTransformation:
    if config.control == "frozen-scores":
        return optax.set_to_zero()
    sgd = optax.chain(
        optax.add_decayed_weights(config.weight_decay),
        optax.sgd(optax.cosine_decay_schedule(config.learning_rate, total), config.momentum),
    )
    return optim.train_only(sgd, params, "scores")


def run(keys, config: Config) -> dict:
    if config.control not in (None, *CONTROLS):
        raise ValueError(f"control must be None or one of {CONTROLS}, got {config.control!r}")
    ds = data.mnist1d(num_samples=config.num_samples)
    total = steps(config, ds.x_train.shape[0])
    test, train_acc, out = [], [], {}
    for width in config.widths:
        model = nn.supermask_mlp(
            (ds.x_train.shape[1], width, width, 10), keep_fraction=config.keep_fraction
        )
        params = jax.vmap(model.init)(keys)
        one = jax.tree.map(lambda x: x[0], params)
        res = engine.train_seeds(
            keys,
            params,
            ds,
            apply_fn=model.apply,
            optimizer=_optimizer(config, total, one),
            steps=total,
            batch_size=config.batch_size,
            log_every=log_every(total),
        )
        test.append(np.asarray(res.final["test_accuracy"]))
        train_acc.append(np.asarray(res.final["train_accuracy"]))
        out.update(curves(_arm(width), res))
    return {
        "test_accuracy": np.stack(test, axis=1),
        "train_accuracy": np.stack(train_acc, axis=1),
        **out,
    }


def criterion_metrics(metrics: dict, config: Config) -> dict:
    """The test accuracy of every width (what the criterion reads)."""
    return {
        f"test_accuracy {_arm(w)}": (metrics["test_accuracy"][:, j], "accuracy")
        for j, w in enumerate(config.widths)
    }


def evaluate(metrics: dict, config: Config) -> Evaluation:
    acc = metrics["test_accuracy"]
    arms = [_arm(w) for w in config.widths]
    rho = stats.spearman(config.widths, acc.mean(axis=0))
    widest = stats.mean_ci(acc[:, -1])
    checks = [
        stats.ci_above(f"widest ({arms[-1]}) supermask test accuracy >= 30%", widest, 0.3).on(
            arms[-1]
        ),
        stats.rises_with("test accuracy rises with width", config.widths, acc).on(*arms),
    ]
    summary = {
        "widths": list(config.widths),
        "test_accuracy": grid_intervals(acc),
        "train_accuracy": grid_intervals(metrics["train_accuracy"]),
        "widest_test_accuracy": interval(acc[:, -1]),
        "spearman_rho": rho,
        "widest_minus_narrowest": stats.paired_ci(acc[:, -1], acc[:, 0]).to_dict(),
    }
    headline = (
        f"supermask test acc at w={config.widths[-1]}: {widest.mean:.1%} "
        f"[{widest.low:.1%}, {widest.high:.1%}]; at w={config.widths[0]}: "
        f"{acc[:, 0].mean():.1%}; rho {rho:.2f}"
    )
    return Evaluation(checks, summary, headline)


def plot(metrics: dict, config: Config, path) -> None:
    fig, (ax, bx) = subplots(2, width=5.5)
    errorbar(ax, config.widths, metrics["test_accuracy"], "supermask, test")
    errorbar(ax, config.widths, metrics["train_accuracy"], "supermask, train")
    ax.axhline(0.3, color="gray", ls="--", label="3x chance (criterion)")
    ax.axhline(0.1, color="gray", ls=":", label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("hidden width w")
    ax.set_ylabel("accuracy")
    ax.set_title("MNIST-1D: edge-popup supermasks of frozen random nets")
    ax.legend()
    for w in config.widths:
        arm = _arm(w)
        bx.plot(
            metrics[f"curve/{arm}/steps"][0],
            metrics[f"curve/{arm}/objective"].mean(axis=0),
            label=arm,
        )
    bx.set_xlabel("SGD step")
    bx.set_ylabel("train loss (seed mean)")
    bx.set_title(f"training curves ({config.epochs} epochs, cosine)")
    bx.legend()
    save_figure(fig, path)


CLAIM = Claim(
    id="supermask",
    paper="MH",
    statement=(
        "A randomly weighted network contains a subnetwork that performs well without any "
        "weight training, and wider networks contain better ones."
    ),
    anchor="Zhou et al. 2019: supermasks of untrained nets reach 86% on MNIST.",
    configs=CONFIGS,
    run=run,
    evaluate=evaluate,
    plot=plot,
    training=Training(
        budget_field="epochs", criterion_metrics=criterion_metrics, decaying_schedule=True
    ),
    changes=(
        ProtocolChange(
            date="2026-12-02",
            what=(
                "edge-popup ranks |scores| (Ramanujan et al.'s GetSubnet(scores.abs())); widest >= "
                "30% decided on the CI"
            ),
            reason=(
                "the implementation ranked raw scores, and compared only the mean with 30% "
                "(CLAIMS.md clarification)"
            ),
            verdict_before="reproduced (widest 46.8% [44.8, 48.9])",
        ),
        ProtocolChange(
            date="2026-12-03",
            what=(
                "Ramanujan et al.'s small-scale FC protocol (SGD momentum 0.9, lr 0.1 cosine, "
                "weight decay 1e-4 on the scores, batch 128, scores uniform +-1/sqrt(fan_in)) "
                "for a calibrated number of epochs (was Adam 1e-2, 150 steps of 64, He-uniform "
                "scores); 'rises with width' by paired CIs (was Spearman rho >= 0.9); quick "
                "widths {64, 128, 256} (was {64, 256, 1024}) for the suite's time"
            ),
            reason=(
                "150 steps is about 2.4 epochs where the paper trains 100: the verdict came from "
                "unfinished training (CLAIMS.md, 2026-12-03)"
            ),
            verdict_before=(
                "not reproduced (33.2 / 41.4 / 39.6% at w = 64 / 256 / 1024; widest 39.6% "
                "[37.2, 41.9], rho 0.50)"
            ),
        ),
        ProtocolChange(
            date="2026-12-04",
            what="quick widths 64 and 256 (was 64, 128, 256), at the calibrated 80 epochs",
            reason="the quick suite's 15 minutes on 2 cores (104 s with three widths)",
            verdict_before=(
                "reproduced (w=256 55.6% [54.7, 56.4] > 30%; w=64 49.0%; rises with width)"
            ),
        ),
    ),
)
