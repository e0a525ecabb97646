"""dropout (Mukherjee & Huberman; Srivastava et al. 2014): dropout, seen as random
sparsification, improves the test accuracy of an over-parameterized MLP on small data.

Protocol (CLAIMS.md): MNIST-1D MLP 40-1024-1024-10; dropout 0.5 on the hidden units and 0.2 on
the input vs no dropout; same init (per seed), steps, batches and Adam optimizer (constant
learning rate). Both arms log their training curves (train loss and accuracy in evaluation
mode, on the 4000 training rows) at 20 evenly spaced steps; the budget (steps) is calibrated
(`python -m experiments calibrate dropout`), and the test accuracy is read at its end. A train
loss at or below 0.01 has fit the training set and counts as trained (the run without dropout
interpolates, and its loss then shrinks without end). Quick width: 128 (the spec's 1024, 512
and 256 at their calibrated budgets do not fit the suite's 15 minutes on 2 cores: 512 took 10
minutes at 12000 steps, 256 about 3.5; 128 is still ~23k weights for 4000 examples); full
keeps 1024.
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
    Training,
    curves,
    errorbar,
    interval,
    log_every,
    save_figure,
    subplots,
)

ARMS = ("plain", "dropout")
CONTROLS = ("no-dropout",)
FIT_LOSS = 0.01  # a train loss at or below it has fit the training set (counts as trained)


@dataclass(frozen=True)
class Config:
    """control: negative control, tests only: "no-dropout" trains the dropout arm with both
    rates 0 (no dropout at all), which must make the claim false."""

    seeds: int
    width: int = 1024
    dropout_rate: float = 0.5
    input_dropout_rate: float = 0.2
    steps: int = 3000
    batch_size: int = 100
    learning_rate: float = 1e-3
    num_samples: int = 5000
    control: str | None = None


CONFIGS = {
    "smoke": Config(seeds=3, width=64, steps=100, num_samples=1000),
    # width 128 for the suite's time (module docstring); starting budget of the calibration
    # 1500 steps, as at widths 512 and 256
    "quick": Config(seeds=8, width=128, steps=1500),
    "full": Config(seeds=32, steps=10000),
}


def run(keys, config: Config) -> dict:
    if config.control not in (None, *CONTROLS):
        raise ValueError(f"control must be None or one of {CONTROLS}, got {config.control!r}")
    ds = data.mnist1d(num_samples=config.num_samples)
    widths = (ds.x_train.shape[1], config.width, config.width, 10)
    off = config.control == "no-dropout"
    plain = nn.mlp(widths)
    dropped = nn.mlp(
        widths,
        dropout_rate=0.0 if off else config.dropout_rate,
        input_dropout_rate=0.0 if off else config.input_dropout_rate,
    )
    params = jax.vmap(plain.init)(keys)  # the same init for both arms, per seed
    opt = optax.adam(config.learning_rate)
    out = {}
    for name, model in zip(ARMS, (plain, dropped), strict=True):
        res = engine.train_seeds(
            keys,
            params,
            ds,
            apply_fn=model.apply,
            optimizer=opt,
            steps=config.steps,
            batch_size=config.batch_size,
            log_every=log_every(config.steps),
        )
        out[f"{name}_test_accuracy"] = np.asarray(res.history["test_accuracy"])
        out[f"{name}_train_accuracy"] = np.asarray(res.history["train_accuracy"])
        out["log_steps"] = np.asarray(res.log_steps)
        out.update(curves(name, res))
    return out


def criterion_metrics(metrics: dict, config: Config) -> dict:
    """The final test accuracy of each arm (what the criterion reads)."""
    return {
        f"{arm} test_accuracy": (metrics[f"{arm}_test_accuracy"][:, -1], "accuracy") for arm in ARMS
    }


def evaluate(metrics: dict, config: Config) -> Evaluation:
    plain = metrics["plain_test_accuracy"][:, -1]
    drop = metrics["dropout_test_accuracy"][:, -1]
    gain = stats.paired_ci(drop, plain)
    checks = [stats.ci_above("test-accuracy gain of dropout (paired)", gain, 0.0).on(*ARMS)]
    summary = {
        "plain_test_accuracy": interval(plain),
        "dropout_test_accuracy": interval(drop),
        "gain": gain.to_dict(),
        "plain_train_accuracy": interval(metrics["plain_train_accuracy"][:, -1]),
        "dropout_train_accuracy": interval(metrics["dropout_train_accuracy"][:, -1]),
        "best_over_training_plain": interval(metrics["plain_test_accuracy"].max(axis=1)),
        "best_over_training_dropout": interval(metrics["dropout_test_accuracy"].max(axis=1)),
        "control": config.control,
    }
    headline = (
        f"test acc: dropout {drop.mean():.1%} vs none {plain.mean():.1%}; "
        f"gain {gain.mean:+.1%} [{gain.low:+.1%}, {gain.high:+.1%}]"
    )
    return Evaluation(checks, summary, headline)


def plot(metrics: dict, config: Config, path) -> None:
    fig, (ax,) = subplots(width=6)
    steps = metrics["log_steps"][0]
    for name, label in zip(ARMS, ("no dropout", "dropout 0.5 / input 0.2"), strict=True):
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
    training=Training(
        budget_field="steps", criterion_metrics=criterion_metrics, floor=FIT_LOSS, max_doublings=3
    ),
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
        ProtocolChange(
            date="2026-12-03",
            what=(
                "training curves logged for both arms and the steps calibrated (starting at "
                "1500); quick width 512 (was 1024) for the suite's time"
            ),
            reason="budgets calibrated, not hand-set (CLAIMS.md, 2026-12-03)",
            verdict_before="reproduced (dropout 71.1% vs none 68.1%, +3.0 points [2.1, 3.9])",
        ),
        ProtocolChange(
            date="2026-12-04",
            what="quick width 128 (was 512), its steps calibrated anew from 1500",
            reason=(
                "at width 512 the calibrated 12000 steps (not settled) took 621 s, 10 of the "
                "quick suite's 15 minutes on 2 cores; at width 256 the calibration did not "
                "settle either (12000 steps, 102 s for 4 seeds, about 3.5 minutes for 8)"
            ),
            verdict_before=(
                "reproduced (width 512, 12000 steps: dropout 72.2% vs none 66.5%, +5.8 points "
                "[+4.6, +6.9])"
            ),
        ),
    ),
)
