"""dropout (Mukherjee & Huberman; Srivastava et al. 2014): dropout, seen as random
sparsification, improves the test accuracy of an over-parameterized MLP on small data.

Protocol (CLAIMS.md): MNIST-1D MLP 40-1024-1024-10; dropout 0.5 on the hidden units and 0.2 on
the input vs no dropout; same init (per seed), steps, batches and Adam optimizer.
Criterion (CLAIMS.md, line for line): the paired (per seed) test-accuracy gain of dropout over
no dropout has a 95% CI above 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np
import optax

from esparse import data, engine, nn, stats
from experiments.core import (
    Claim,
    Evaluation,
    ProtocolChange,
    errorbar,
    interval,
    save_figure,
    subplots,
)


@dataclass(frozen=True)
class Config:
    seeds: int
    width: int = 1024
    dropout_rate: float = 0.5
    input_dropout_rate: float = 0.2
    steps: int = 3000
    batch_size: int = 100
    learning_rate: float = 1e-3
    log_every: int = 250
    num_samples: int = 5000


CONFIGS = {
    "smoke": Config(seeds=3, width=64, steps=100, log_every=50, num_samples=1000),
    # the protocol's budget (75 epochs): at 600 steps of 32 neither arm was trained (train
    # accuracy 88% without dropout, 54% with), which compares two unfinished runs
    "quick": Config(seeds=8, log_every=500),
    "full": Config(seeds=32, steps=10000, log_every=500),
}


def run(keys, config: Config) -> dict:
    ds = data.mnist1d(num_samples=config.num_samples)
    widths = (ds.x_train.shape[1], config.width, config.width, 10)
    plain = nn.mlp(widths)
    dropped = nn.mlp(
        widths,
        dropout_rate=config.dropout_rate,
        input_dropout_rate=config.input_dropout_rate,
    )
    params = jax.vmap(plain.init)(keys)  # the same init for both arms, per seed
    opt = optax.adam(config.learning_rate)
    out = {}
    for name, model in (("plain", plain), ("dropout", dropped)):
        res = engine.train_seeds(
            keys,
            params,
            ds,
            apply_fn=model.apply,
            optimizer=opt,
            steps=config.steps,
            batch_size=config.batch_size,
            log_every=config.log_every,
        )
        out[f"{name}_test_accuracy"] = np.asarray(res.history["test_accuracy"])
        out[f"{name}_train_accuracy"] = np.asarray(res.history["train_accuracy"])
        out["log_steps"] = np.asarray(res.log_steps)
    return out


def evaluate(metrics: dict, config: Config) -> Evaluation:
    plain = metrics["plain_test_accuracy"][:, -1]
    drop = metrics["dropout_test_accuracy"][:, -1]
    gain = stats.paired_ci(drop, plain)
    checks = [stats.ci_above("test-accuracy gain of dropout (paired)", gain, 0.0)]
    summary = {
        "plain_test_accuracy": interval(plain),
        "dropout_test_accuracy": interval(drop),
        "gain": gain.to_dict(),
        "plain_train_accuracy": interval(metrics["plain_train_accuracy"][:, -1]),
        "dropout_train_accuracy": interval(metrics["dropout_train_accuracy"][:, -1]),
        "best_over_training_plain": interval(metrics["plain_test_accuracy"].max(axis=1)),
        "best_over_training_dropout": interval(metrics["dropout_test_accuracy"].max(axis=1)),
    }
    headline = (
        f"test acc: dropout {drop.mean():.1%} vs none {plain.mean():.1%}; "
        f"gain {gain.mean:+.1%} [{gain.low:+.1%}, {gain.high:+.1%}]"
    )
    return Evaluation(checks, summary, headline)


def plot(metrics: dict, config: Config, path) -> None:
    fig, (ax,) = subplots(width=6)
    steps = metrics["log_steps"][0]
    for name, label in (("plain", "no dropout"), ("dropout", "dropout 0.5 / input 0.2")):
        errorbar(ax, steps, metrics[f"{name}_test_accuracy"], f"{label}, test")
        ax.plot(
            steps, metrics[f"{name}_train_accuracy"].mean(axis=0), ls=":", label=f"{label}, train"
        )
    ax.set_xlabel("training step")
    ax.set_ylabel("accuracy")
    ax.set_title(f"MNIST-1D MLP 2x{config.width}: dropout")
    ax.legend()
    save_figure(fig, path)


CLAIM = Claim(
    id="dropout",
    paper="MH",
    statement=(
        "Dropout, seen as random sparsification, improves the test accuracy of an "
        "over-parameterized MLP on small data."
    ),
    anchor="Srivastava et al. 2014, MNIST: 1.60% error to 1.25% with dropout.",
    configs=CONFIGS,
    run=run,
    evaluate=evaluate,
    plot=plot,
    changes=(
        ProtocolChange(
            date="2026-11-23",
            what="quick budget from 600 steps of batch 32 to the protocol's own 3000 steps of 100",
            reason=(
                "neither arm was trained at 600 steps (train accuracy 88% without dropout, 54% "
                "with)"
            ),
            verdict_before="not reproduced (-19.0 points [-21.6, -16.4])",
        ),
    ),
)
