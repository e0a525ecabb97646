"""random-labels (Mukherjee & Huberman; Zhang et al. 2017): an over-parameterized MLP fits
random labels perfectly, with test accuracy at chance, only a small factor slower than true
labels.

Protocol (CLAIMS.md, with its 2026-12-02 and 2026-12-03 clarifications): MNIST-1D train set,
MLP 40-512-512-10, Adam (constant learning rate); per seed, the *training* labels drawn
uniformly at random (`esparse.data.random_labels`) vs the true labels, same init; the test
labels stay the true ones in both arms (Zhang et al. score the random-label network on the
real test set). Train loss and accuracy (on all 4000 training rows) logged at 20 evenly spaced
steps; the budget (steps) is calibrated (`python -m experiments calibrate random-labels`). A
train loss at or below 0.01 has fit the training set and counts as trained (a fitted net's loss
shrinks without end under a constant learning rate).
Criterion (CLAIMS.md, 2026-12-03): (1) random labels reach >= 99% train accuracy in converged
runs (95% CI of the final train accuracy above 0.99); (2) the slow-down factor, steps to 99%
train accuracy with random over true labels, paired per seed (first logged step at or above
99%), has a 95% CI whose upper end is at most 10 (inconclusive when a censored run, one that
never reached 99%, decides it). Validity: the random-label net's accuracy on the true test
labels lies within 10% +- 3 points (95% CI inside [7%, 13%]); outside it the labels were not
independent of the inputs and a failing check is inconclusive ("labels not independent").
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
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
    first_logged_step,
    interval,
    log_every,
    save_figure,
    subplots,
)

ARMS = ("true", "random")
CONTROLS = ("label-leak",)
LEAK = 0.7  # the label-leak control: 70% of the "random" labels are the true ones
FIT_LOSS = 0.01  # a train loss at or below it has fit the training set (counts as trained)
MAX_SLOWDOWN = 10.0  # "a small constant factor" (Zhang et al.)


@dataclass(frozen=True)
class Config:
    """control: negative control, tests only: "label-leak" keeps the true label for 70% of
    the training rows of the random arm (the rest drawn at random), which must make the claim
    false."""

    seeds: int
    width: int = 512
    steps: int = 10000
    batch_size: int = 100
    learning_rate: float = 1e-3
    num_samples: int = 5000
    control: str | None = None


CONFIGS = {
    "smoke": Config(seeds=3, width=64, steps=100, num_samples=1000),
    # starting budget of the calibration: the 2026-12-02 quick budget; width 256 (was 512, still
    # ~78k weights for 4000 labels) for the suite's time (ProtocolChange of 2026-12-04)
    "quick": Config(seeds=8, width=256, steps=2000, batch_size=64),
    "full": Config(seeds=32, steps=20000),
}


def _random_dataset(key, ds: data.Dataset, leak: float) -> data.Dataset:
    """Training labels drawn uniformly at random (with `leak` > 0: each row keeps its true
    label with probability leak); the test set keeps its true labels."""
    k_leak, k_labels = jax.random.split(key)
    labels = data.random_labels(k_labels, ds.y_train, 10)
    if leak > 0:
        labels = jnp.where(jax.random.bernoulli(k_leak, leak, labels.shape), ds.y_train, labels)
    return data.Dataset(ds.x_train, labels, ds.x_test, ds.y_test)


def run(keys, config: Config) -> dict:
    if config.control not in (None, *CONTROLS):
        raise ValueError(f"control must be None or one of {CONTROLS}, got {config.control!r}")
    ds = data.mnist1d(num_samples=config.num_samples)
    model = nn.mlp((ds.x_train.shape[1], config.width, config.width, 10))
    params = jax.vmap(model.init)(keys)
    label_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
    leak = LEAK if config.control == "label-leak" else 0.0
    random_ds = engine.vmap_seeds(lambda k, d: _random_dataset(k, d, leak), label_keys, ds)
    kwargs = dict(
        apply_fn=model.apply,
        optimizer=optax.adam(config.learning_rate),
        steps=config.steps,
        batch_size=config.batch_size,
        log_every=log_every(config.steps),
    )
    true = engine.train_seeds(keys, params, ds, **kwargs)
    rand = engine.train_seeds(keys, params, random_ds, data_per_seed=True, **kwargs)
    out = {"log_steps": np.asarray(true.log_steps)}
    for name, res in zip(ARMS, (true, rand), strict=True):
        for metric in ("train_accuracy", "test_accuracy"):
            out[f"{name}_{metric}"] = np.asarray(res.history[metric])
        out.update(curves(name, res))
    return out


def steps_to(metrics: dict, arm: str, target: float) -> np.ndarray:
    """(seeds,) the first logged step with train accuracy >= target; inf when never."""
    hit = metrics[f"{arm}_train_accuracy"] >= target - 1e-6
    return first_logged_step(hit, metrics["log_steps"][0], censor=np.inf)


def _slowdown(metrics: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per seed, steps to 99% random over true, and which seeds are censored (an arm never
    reached 99%; the budget stands in for its steps: a lower bound on the random arm's)."""
    budget = float(metrics["log_steps"][0, -1])
    true, rand = steps_to(metrics, "true", 0.99), steps_to(metrics, "random", 0.99)
    censored = ~np.isfinite(true) | ~np.isfinite(rand)
    return np.minimum(rand, budget) / np.minimum(true, budget), censored


def criterion_metrics(metrics: dict, config: Config) -> dict:
    """What the criterion reads: the random arm's final train accuracy and the slow-down."""
    return {
        "random train_accuracy": (metrics["random_train_accuracy"][:, -1], "accuracy"),
        "slowdown to 99%": (_slowdown(metrics)[0], "loss"),
    }


def _slowdown_check(ratio: np.ndarray, censored: np.ndarray) -> stats.Check:
    ci = stats.mean_ci(ratio)
    check = stats.ci_below(
        f"slow-down factor to 99% train accuracy (random / true, paired) <= {MAX_SLOWDOWN:g}",
        ci,
        MAX_SLOWDOWN,
    )
    if censored.any() and check.outcome == "pass":  # a censored ratio is only a lower bound
        return stats.Check(
            check.name,
            "inconclusive",
            f"{check.detail}; {int(censored.sum())} censored run(s) decide it",
            check.half_width,
            check.margin,
        )
    return check


def evaluate(metrics: dict, config: Config) -> Evaluation:
    fit = stats.mean_ci(metrics["random_train_accuracy"][:, -1])
    test = stats.mean_ci(metrics["random_test_accuracy"][:, -1])
    ratio, censored = _slowdown(metrics)
    inside = test.low >= 0.07 and test.high <= 0.13
    checks = [
        stats.ci_above("random labels: final train accuracy >= 99%", fit, 0.99).on("random"),
        _slowdown_check(ratio, censored).on(*ARMS),
        stats.validity(
            "random labels: true-test accuracy within 10% +- 3 points (labels independent)",
            inside,
            f"mean {test.mean:.4g}, 95% CI [{test.low:.4g}, {test.high:.4g}]"
            + ("" if inside else " outside [0.07, 0.13] (labels not independent)"),
            arms=("random",),
        ),
    ]
    summary = {
        "random_train_accuracy": interval(metrics["random_train_accuracy"][:, -1]),
        "random_test_accuracy": interval(metrics["random_test_accuracy"][:, -1]),
        "true_train_accuracy": interval(metrics["true_train_accuracy"][:, -1]),
        "true_test_accuracy": interval(metrics["true_test_accuracy"][:, -1]),
        "slowdown_factor_99": {
            **interval(ratio),
            "per_seed": ratio.tolist(),
            "censored": int(censored.sum()),
        },
        "control": config.control,
    }
    for arm in ARMS:
        for t in (0.99, 1.0):
            values = steps_to(metrics, arm, t)
            done = values[np.isfinite(values)]
            summary[f"steps_to_{arm}_{int(t * 100)}"] = {
                "reached_fraction": float(np.isfinite(values).mean()),
                **(interval(done) if done.size >= 2 else {"values": done.tolist()}),
            }
    headline = (
        f"random labels: train {fit.mean:.1%}, true-test {test.mean:.1%}; true labels: train "
        f"{metrics['true_train_accuracy'][:, -1].mean():.1%}, test "
        f"{metrics['true_test_accuracy'][:, -1].mean():.1%}; slow-down to 99% "
        f"{ratio.mean():.2g}x [{stats.mean_ci(ratio).low:.2g}, {stats.mean_ci(ratio).high:.2g}]"
    )
    return Evaluation(checks, summary, headline)


def plot(metrics: dict, config: Config, path) -> None:
    fig, (ax, bx) = subplots(2, width=5.5)
    steps = metrics["log_steps"][0]
    for name in ARMS:
        errorbar(ax, steps, metrics[f"{name}_train_accuracy"], f"{name} labels, train", ms=3)
        errorbar(bx, steps, metrics[f"{name}_test_accuracy"], f"{name} labels, true test set", ms=3)
    ax.axhline(0.99, color="gray", ls="--", label="99%")
    bx.axhline(0.1, color="gray", ls="--", label="chance 10%")
    ax.set_title(f"MNIST-1D MLP 2x{config.width}: train accuracy")
    bx.set_title("test accuracy")
    for a in (ax, bx):
        a.set_xlabel("training step")
        a.set_ylabel("accuracy")
        a.legend()
    save_figure(fig, path)


CLAIM = Claim(
    id="random-labels",
    paper="MH",
    statement=(
        "An over-parameterized MLP fits random labels perfectly, with test accuracy at chance, "
        "only a small factor slower than true labels."
    ),
    anchor="Zhang et al. 2017: 100% train accuracy on random CIFAR-10 labels.",
    configs=CONFIGS,
    run=run,
    evaluate=evaluate,
    plot=plot,
    training=Training(budget_field="steps", criterion_metrics=criterion_metrics, floor=FIT_LOSS),
    changes=(
        ProtocolChange(
            date="2026-12-02",
            what=(
                "the random-label network is scored on the true test labels (was: on random test "
                "labels)"
            ),
            reason=(
                "any model scores ~10% against independent random labels, so the old check said "
                "nothing about the network (CLAIMS.md clarification)"
            ),
            verdict_before="reproduced (10.1% on random test labels)",
        ),
        ProtocolChange(
            date="2026-12-03",
            what=(
                "true-test accuracy within 10% +- 3 points becomes a validity check (outside it: "
                "inconclusive, labels not independent); the checks are >= 99% final train "
                "accuracy on random labels in converged runs and a slow-down factor (steps to "
                "99%, random / true, paired) whose CI upper end is at most 10; training curves "
                "logged and the steps calibrated"
            ),
            reason=(
                "chance-level test accuracy holds by construction for independent labels, so it "
                "is not evidence for the claim (CLAIMS.md, 2026-12-03)"
            ),
            verdict_before=(
                "reproduced (100% train, 10.4% [9.4, 11.4] on the true test set; slow-down to "
                "99% 1.4x)"
            ),
        ),
        ProtocolChange(
            date="2026-12-04",
            what="quick width 256 (was 512), the steps calibrated anew from 2000",
            reason=(
                "the quick suite's 15 minutes on 2 cores: at width 512 and its calibrated 4000 "
                "steps the claim took 155 s"
            ),
            verdict_before=(
                "reproduced (width 512, 4000 steps: train 100%, true-test 10.3%, slow-down 1.4x "
                "[1.4, 1.4])"
            ),
        ),
    ),
)
