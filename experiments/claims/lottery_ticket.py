"""lottery-ticket (Mukherjee & Huberman; Frankle & Carbin 2019): iterative magnitude pruning with
rewinding to the initial weights finds sparse subnetworks that train to the dense accuracy,
while the same masks re-initialised, and random masks, do worse.

Protocol (CLAIMS.md): MNIST-1D MLP 40-256-256-10 (quick: 40-128-128-10, for the suite's
time), Adam (constant learning rate).
`esparse.lottery.imp` with `esparse.train.train` as train_fn: prune 20% of each hidden kernel
per round (output kernel 10%), rewind to theta_0, 8 rounds (~17% of the hidden weights left;
full: 15 rounds, ~3.5%). Controls at the last round: the same mask with a fresh init
(`lottery.reinit_control`), and a random mask of the same per-layer density trained from
theta_0 (`lottery.random_mask_control`). Since 2026-12-03 (CLAIMS.md) accuracy is read at the
early-stopping step, as Frankle & Carbin: the last 10% of the training set is a validation
split (not trained on), the validation loss is logged with the training curves at 20 evenly
spaced steps, and each run's test accuracy is the one logged at its minimum validation loss,
for the dense net, the ticket and both controls. The budget (steps per training run) is
calibrated (`python -m experiments calibrate lottery-ticket`).
Criterion (CLAIMS.md, line for line): at the last round the ticket's test accuracy >= dense - 1
point (paired CI of ticket - dense above -0.01), and the ticket beats both controls (paired CIs
above 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from esparse import data, engine, lottery, masks, nn, stats, train
from experiments.core import (
    Claim,
    Evaluation,
    ProtocolChange,
    Training,
    errorbar,
    grid_intervals,
    interval,
    log_every,
    save_figure,
    subplots,
)

ARMS = ("dense", "ticket", "reinit", "random")
CONTROLS = ("random-ticket",)
FIT_LOSS = 0.01  # a train loss at or below it has fit the training split (counts as trained)


@dataclass(frozen=True)
class Config:
    """control: negative control, tests only: "random-ticket" swaps the ticket's mask for a
    random mask of the same per-layer density (trained from theta_0), which must make the
    claim false."""

    seeds: int
    width: int = 256
    rounds: int = 15
    prune_fraction: float = 0.2
    out_prune_fraction: float = 0.1
    steps: int = 3000
    batch_size: int = 100
    learning_rate: float = 1.2e-3
    validation_fraction: float = 0.1
    num_samples: int = 5000
    control: str | None = None


CONFIGS = {
    "smoke": Config(seeds=3, width=32, rounds=1, steps=50, batch_size=50, num_samples=1000),
    # starting budget of the calibration: the 2026-12-02 quick budget; width 128 (was 256) and
    # 8 seeds (the scale's minimum; was 16 for power when the effect was 1 point, it is ~4.5
    # read at early stopping) so that the calibrated budget fits the suite's 15 minutes
    "quick": Config(seeds=8, width=128, rounds=8, steps=1500, batch_size=64),
    "full": Config(seeds=32, rounds=15, steps=3000),
}


def split_validation(ds: data.Dataset, fraction: float) -> tuple[data.Dataset, tuple]:
    """The last `fraction` of the training rows as a validation split (never trained on):
    (the dataset without them, (x_val, y_val))."""
    n_val = round(fraction * ds.x_train.shape[0])
    if not 1 <= n_val < ds.x_train.shape[0]:
        raise ValueError(f"validation_fraction leaves no validation or no train rows: {fraction}")
    cut = ds.x_train.shape[0] - n_val
    rest = data.Dataset(ds.x_train[:cut], ds.y_train[:cut], ds.x_test, ds.y_test)
    return rest, (ds.x_train[cut:], ds.y_train[cut:])


def _train_fn(model: nn.Model, ds: data.Dataset, config: Config, metrics, key, params, mask):
    res = train.train(
        key,
        params,
        ds,
        apply_fn=model.apply,
        optimizer=optax.adam(config.learning_rate),
        steps=config.steps,
        batch_size=config.batch_size,
        log_every=log_every(config.steps),
        mask=mask,
        metrics=metrics,
    )
    stop = jnp.argmin(res.history["val_loss"])  # the early-stopping log
    out = {
        "early_stop_test_accuracy": res.history["test_accuracy"][stop],
        "early_stop_step": res.log_steps[stop],
        "final_test_accuracy": res.final["test_accuracy"],
        "log_steps": res.log_steps,
        "train_loss": res.history["train_loss"],
        "train_accuracy": res.history["train_accuracy"],
        "val_loss": res.history["val_loss"],
    }
    return res.params, out


def _one_seed(key, ds: data.Dataset, model: nn.Model, config: Config, metrics):
    k_init, k_imp, k_reinit, k_random, k_swap = jax.random.split(key, 5)
    params0 = model.init(k_init)
    train_fn = partial(_train_fn, model, ds, config, metrics)
    result = lottery.imp(
        k_imp,
        params0,
        train_fn,
        rounds=config.rounds,
        prune_fraction=masks.per_leaf(
            params0, config.prune_fraction, out=config.out_prune_fraction
        ),
        prunable=nn.kernel_mask_spec(params0),
    )
    ticket_mask = jax.tree.map(lambda m: m[-1], result.masks)
    runs = {
        "dense": jax.tree.map(lambda m: m[0], result.metrics),
        "ticket": jax.tree.map(lambda m: m[-1], result.metrics),
        "reinit": lottery.reinit_control(k_reinit, model.init, ticket_mask, train_fn).metrics,
        "random": lottery.random_mask_control(k_random, params0, ticket_mask, train_fn).metrics,
    }
    if config.control == "random-ticket":
        runs["ticket"] = lottery.random_mask_control(k_swap, params0, ticket_mask, train_fn).metrics
    out = {
        "round_test_accuracy": result.metrics["early_stop_test_accuracy"],
        "round_train_accuracy": result.metrics["train_accuracy"][:, -1],
        "density": result.densities,
    }
    for arm, m in runs.items():
        out[f"{arm}_test_accuracy"] = m["early_stop_test_accuracy"]
        out[f"{arm}_final_test_accuracy"] = m["final_test_accuracy"]
        out[f"{arm}_early_stop_step"] = m["early_stop_step"]
        out[f"curve/{arm}/steps"] = m["log_steps"]
        out[f"curve/{arm}/objective"] = m["train_loss"]
        out[f"curve/{arm}/accuracy"] = m["train_accuracy"]
        out[f"{arm}_val_loss"] = m["val_loss"]
    return out


def run(keys, config: Config) -> dict:
    if config.control not in (None, *CONTROLS):
        raise ValueError(f"control must be None or one of {CONTROLS}, got {config.control!r}")
    ds, (x_val, y_val) = split_validation(
        data.mnist1d(num_samples=config.num_samples), config.validation_fraction
    )
    model = nn.mlp((ds.x_train.shape[1], config.width, config.width, 10))

    def val_loss(params, _):
        logits = model.apply(params, x_val)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y_val).mean()

    fn = partial(_one_seed, model=model, config=config, metrics={"val_loss": val_loss})
    out = engine.vmap_seeds(fn, keys, ds)
    return {name: np.asarray(value) for name, value in out.items()}


def criterion_metrics(metrics: dict, config: Config) -> dict:
    """The early-stopping test accuracy of every arm (what the criterion reads)."""
    return {f"{arm} test_accuracy": (metrics[f"{arm}_test_accuracy"], "accuracy") for arm in ARMS}


def evaluate(metrics: dict, config: Config) -> Evaluation:
    dense, ticket = metrics["dense_test_accuracy"], metrics["ticket_test_accuracy"]
    reinit, random = metrics["reinit_test_accuracy"], metrics["random_test_accuracy"]
    vs_dense = stats.paired_ci(ticket, dense)
    vs_reinit = stats.paired_ci(ticket, reinit)
    vs_random = stats.paired_ci(ticket, random)
    density = float(metrics["density"][0, -1])
    checks = [
        stats.ci_above(
            f"ticket - dense at density {density:.1%} (>= -1 point)", vs_dense, -0.01, margin=0.01
        ).on("ticket", "dense"),
        stats.ci_above("ticket - same mask re-initialised", vs_reinit, 0.0).on("ticket", "reinit"),
        stats.ci_above("ticket - random mask of the same layer densities", vs_random, 0.0).on(
            "ticket", "random"
        ),
    ]
    summary = {
        "accuracy_read_at": "early stopping (minimum validation loss)",
        "densities": metrics["density"][0].tolist(),
        "round_test_accuracy": grid_intervals(metrics["round_test_accuracy"]),
        **{f"{arm}_test_accuracy": interval(metrics[f"{arm}_test_accuracy"]) for arm in ARMS},
        **{
            f"{arm}_final_test_accuracy": interval(metrics[f"{arm}_final_test_accuracy"])
            for arm in ARMS
        },
        **{f"{arm}_early_stop_step": interval(metrics[f"{arm}_early_stop_step"]) for arm in ARMS},
        "ticket_minus_dense": vs_dense.to_dict(),
        "ticket_minus_reinit": vs_reinit.to_dict(),
        "ticket_minus_random": vs_random.to_dict(),
        "control": config.control,
    }
    headline = (
        f"at {density:.1%} of weights (early stopping): ticket {ticket.mean():.1%} vs dense "
        f"{dense.mean():.1%} (diff {vs_dense.mean:+.1%} [{vs_dense.low:+.1%}, "
        f"{vs_dense.high:+.1%}]); reinit {reinit.mean():.1%}; random mask {random.mean():.1%}"
    )
    return Evaluation(checks, summary, headline)


def plot(metrics: dict, config: Config, path) -> None:
    fig, (ax,) = subplots(width=6)
    density = metrics["density"][0]
    errorbar(ax, density, metrics["round_test_accuracy"], "IMP ticket (rewind to theta_0)")
    errorbar(ax, density[-1:], metrics["reinit_test_accuracy"][:, None], "same mask, re-init")
    errorbar(ax, density[-1:], metrics["random_test_accuracy"][:, None], "random mask")
    ax.axhline(metrics["dense_test_accuracy"].mean(), color="gray", ls="--", label="dense")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("fraction of prunable weights kept")
    ax.set_ylabel("test accuracy at early stopping")
    ax.set_title(f"MNIST-1D MLP 2x{config.width}: lottery tickets")
    ax.legend()
    save_figure(fig, path)


CLAIM = Claim(
    id="lottery-ticket",
    paper="MH",
    statement=(
        "Iterative magnitude pruning with rewinding finds sparse subnetworks that train to the "
        "dense accuracy, while the same masks re-initialised, and random masks, do worse."
    ),
    anchor=(
        "MNIST-1D notebook: dense ~66%, tickets ~74% at 90% sparsity, random masks ~42% at "
        "97%; Frankle & Carbin: LeNet-300-100 tickets match dense down to ~3.6% of weights."
    ),
    configs=CONFIGS,
    run=run,
    evaluate=evaluate,
    plot=plot,
    # at most 3000 steps (one doubling): 8 seeds x 11 trainings of 6000 steps do not fit the
    # quick suite's 15 minutes; an unsettled calibration leaves the arms' under-training reported
    training=Training(
        budget_field="steps", criterion_metrics=criterion_metrics, floor=FIT_LOSS, max_doublings=1
    ),
    changes=(
        ProtocolChange(
            date="2026-12-02",
            what=(
                "quick config from 8 seeds x 600 steps of 64 per round to 16 seeds x 1500 steps of "
                "64"
            ),
            reason=(
                "power: on fresh seeds (--seed 7919) ticket - dense read -0.5 points [-1.7, +0.7] "
                "against the 1-point margin; the CI half-width (1.2 points) exceeded the margin "
                "tested, and the dense net (60-61%) was under-trained against the notebook's 66%"
            ),
            verdict_before=(
                "reproduced (default seeds, +0.8 [-0.2, +1.8]); inconclusive at --seed 7919"
            ),
        ),
        ProtocolChange(
            date="2026-12-03",
            what=(
                "accuracy read at the early-stopping step (minimum loss on a validation split of "
                "the last 10% of the training set, not trained on) for the dense net, the ticket "
                "and both controls (was: at the end of training, on all 4000 training rows); "
                "the steps per run calibrated; training curves logged for every arm"
            ),
            reason=(
                "Frankle & Carbin read accuracy at early stopping (CLAIMS.md, 2026-12-03); "
                "budgets calibrated, not hand-set"
            ),
            verdict_before=(
                "reproduced (16 seeds x 1500 steps: ticket 66.2% vs dense 65.2%, +1.0 points "
                "[+0.2, +1.8]; re-init 58.7%, random mask 56.7%)"
            ),
        ),
        ProtocolChange(
            date="2026-12-04",
            what=(
                "quick width 128 (was 256) and seeds from 16 to 8 (the scale's minimum); the "
                "steps calibrated, the calibration capped at one doubling (1500 and 3000 steps: "
                "it did not settle, so the budget is the largest tried, 3000)"
            ),
            reason=(
                "at width 256 a calibration did not settle at 1500 vs 3000 steps (every "
                "re-init and random-mask run still learning) and 3000 steps took 146 s for 4 "
                "seeds: 16, or even 8, seeds at width 256 do not fit the quick suite's 15 minutes "
                "on 2 cores; read at early stopping the ticket's gain is ~4.5 points with a CI "
                "half-width of ~0.9 at 16 seeds, so 8 seeds keep the power"
            ),
            verdict_before=(
                "reproduced (16 seeds x 1500 steps, starting budget: ticket 64.3% vs dense 59.9%, "
                "+4.5 points [+3.6, +5.4])"
            ),
        ),
    ),
)
