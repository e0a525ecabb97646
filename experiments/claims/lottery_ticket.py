"""lottery-ticket (Mukherjee & Huberman; Frankle & Carbin 2019): iterative magnitude pruning with
rewinding to the initial weights finds sparse subnetworks that train to the dense accuracy,
while the same masks re-initialised, and random masks, do worse.

Protocol (CLAIMS.md): MNIST-1D MLP 40-256-256-10, Adam. `esparse.lottery.imp` with
`esparse.train.train` as train_fn: prune 20% of each hidden kernel per round (output kernel
10%), rewind to theta_0, 8 rounds (~17% of the hidden weights left; full: 15 rounds, ~3.5%).
Controls at the last round: the same mask with a fresh init (`lottery.reinit_control`), and a
random mask of the same per-layer density trained from theta_0 (`lottery.random_mask_control`).
Criterion (CLAIMS.md, line for line): at the last round the ticket's test accuracy >= dense - 1
point (paired CI of ticket - dense above -0.01), and the ticket beats both controls (paired CIs
above 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import numpy as np
import optax

from esparse import data, engine, lottery, masks, nn, stats, train
from experiments.core import (
    Claim,
    Evaluation,
    ProtocolChange,
    errorbar,
    grid_intervals,
    interval,
    save_figure,
    subplots,
)


@dataclass(frozen=True)
class Config:
    seeds: int
    width: int = 256
    rounds: int = 15
    prune_fraction: float = 0.2
    out_prune_fraction: float = 0.1
    steps: int = 3000
    batch_size: int = 100
    learning_rate: float = 1.2e-3
    num_samples: int = 5000


CONFIGS = {
    "smoke": Config(seeds=3, width=32, rounds=1, steps=50, batch_size=50, num_samples=1000),
    # power (2026-12-02): at 8 seeds x 600 steps the ticket - dense CI was wider than the
    # 1-point margin it tests
    "quick": Config(seeds=16, rounds=8, steps=1500, batch_size=64),
    "full": Config(seeds=32, rounds=15, steps=3000),
}


def _train_fn(model: nn.Model, ds: data.Dataset, config: Config, key, params, mask):
    res = train.train(
        key,
        params,
        ds,
        apply_fn=model.apply,
        optimizer=optax.adam(config.learning_rate),
        steps=config.steps,
        batch_size=config.batch_size,
        log_every=config.steps,
        mask=mask,
    )
    return res.params, res.final


def _one_seed(key, ds: data.Dataset, model: nn.Model, config: Config):
    k_init, k_imp, k_reinit, k_random = jax.random.split(key, 4)
    params0 = model.init(k_init)
    train_fn = partial(_train_fn, model, ds, config)
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
    reinit = lottery.reinit_control(k_reinit, model.init, ticket_mask, train_fn)
    random = lottery.random_mask_control(k_random, params0, ticket_mask, train_fn)
    return {
        "round_test_accuracy": result.metrics["test_accuracy"],
        "round_train_accuracy": result.metrics["train_accuracy"],
        "density": result.densities,
        "reinit_test_accuracy": reinit.metrics["test_accuracy"],
        "random_test_accuracy": random.metrics["test_accuracy"],
    }


def run(keys, config: Config) -> dict:
    ds = data.mnist1d(num_samples=config.num_samples)
    model = nn.mlp((ds.x_train.shape[1], config.width, config.width, 10))
    fn = partial(_one_seed, model=model, config=config)
    out = engine.vmap_seeds(fn, keys, ds)
    return {name: np.asarray(value) for name, value in out.items()}


def evaluate(metrics: dict, config: Config) -> Evaluation:
    rounds = metrics["round_test_accuracy"]
    dense, ticket = rounds[:, 0], rounds[:, -1]
    reinit, random = metrics["reinit_test_accuracy"], metrics["random_test_accuracy"]
    vs_dense = stats.paired_ci(ticket, dense)
    vs_reinit = stats.paired_ci(ticket, reinit)
    vs_random = stats.paired_ci(ticket, random)
    density = float(metrics["density"][0, -1])
    checks = [
        stats.ci_above(
            f"ticket - dense at density {density:.1%} (>= -1 point)", vs_dense, -0.01, margin=0.01
        ),
        stats.ci_above("ticket - same mask re-initialised", vs_reinit, 0.0),
        stats.ci_above("ticket - random mask of the same layer densities", vs_random, 0.0),
    ]
    summary = {
        "densities": metrics["density"][0].tolist(),
        "round_test_accuracy": grid_intervals(rounds),
        "dense_test_accuracy": interval(dense),
        "ticket_test_accuracy": interval(ticket),
        "reinit_test_accuracy": interval(reinit),
        "random_mask_test_accuracy": interval(random),
        "ticket_minus_dense": vs_dense.to_dict(),
        "ticket_minus_reinit": vs_reinit.to_dict(),
        "ticket_minus_random": vs_random.to_dict(),
        "best_round_test_accuracy": interval(rounds.max(axis=1)),
    }
    headline = (
        f"at {density:.1%} of weights: ticket {ticket.mean():.1%} vs dense {dense.mean():.1%} "
        f"(diff {vs_dense.mean:+.1%} [{vs_dense.low:+.1%}, {vs_dense.high:+.1%}]); "
        f"reinit {reinit.mean():.1%}; random mask {random.mean():.1%}"
    )
    return Evaluation(checks, summary, headline)


def plot(metrics: dict, config: Config, path) -> None:
    fig, (ax,) = subplots(width=6)
    density = metrics["density"][0]
    errorbar(ax, density, metrics["round_test_accuracy"], "IMP ticket (rewind to theta_0)")
    errorbar(ax, density[-1:], metrics["reinit_test_accuracy"][:, None], "same mask, re-init")
    errorbar(ax, density[-1:], metrics["random_test_accuracy"][:, None], "random mask")
    ax.axhline(metrics["round_test_accuracy"][:, 0].mean(), color="gray", ls="--", label="dense")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("fraction of prunable weights kept")
    ax.set_ylabel("test accuracy")
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
    ),
)
