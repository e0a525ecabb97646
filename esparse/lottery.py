"""Lottery tickets: iterative magnitude pruning with rewinding, and the two controls.

A ticket is a mask found by training, pruning the smallest trained weights and rewinding the
survivors to their initial values (or to the weights at an early step j); the controls train
the same mask from a fresh initialisation, and a random mask of the same per-layer counts.
The training is the caller's: any jittable `train_fn(key, params, mask) -> (trained_params,
metrics)`, so `imp` is one `lax.scan` over rounds that vmaps over seeds.

References: Frankle & Carbin 2019 (lottery tickets, IMP, the controls); Frankle et al. 2020
(rewinding to step j).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
from jax import lax

from esparse import _checks, pruning
from esparse.masks import Mask, Params, apply_mask, density, layer_density, ones_like

__all__ = ["ControlResult", "ImpResult", "imp", "random_mask_control", "reinit_control"]

TrainFn = Callable[[jax.Array, Params, Mask], tuple[Params, dict]]  # (key, params, mask)


class ImpResult(NamedTuple):
    """Iterative magnitude pruning, one entry per training round r = 0..rounds.

    masks: mask pytree with a leading (rounds + 1,) axis; masks[0] is dense and masks[r] the
    mask trained in round r (after r prunings). metrics: train_fn's metrics dict, each value
    with a leading (rounds + 1,) axis. densities: (rounds + 1,) overall density of the
    prunable weights. layer_densities: pytree of (rounds + 1,) per-leaf densities.
    final_params: the trained params of the last round (the ticket, trained).
    Under vmap over seeds every field gains a leading seed axis.
    """

    masks: Mask
    metrics: dict
    densities: jax.Array
    layer_densities: Any
    final_params: Params


def imp(
    key: jax.Array,
    params0: Params,
    train_fn: TrainFn,
    *,
    rounds: int,
    prune_fraction: float | Params,
    prunable: Any = None,
    scope: pruning.Scope = "layer",
    rewind_params: Params | None = None,
) -> ImpResult:
    """Iterative magnitude pruning with rewinding (Frankle & Carbin 2019; Frankle et al. 2020).

    Round r = 0..rounds trains `train_fn(key_r, apply_mask(rewind, mask_r), mask_r)`, where
    rewind is params0 (theta_0) or `rewind_params` (e.g. the weights at step j), then prunes
    round(p * remaining) of the remaining weights of each prunable leaf by the magnitude of
    the trained weights (scope="global": of all prunable weights together) to get mask_{r+1}
    (`esparse.pruning.prune_remaining`). After r prunings a layer keeps about (1 - p)^r of
    its weights. The per-round keys are `jax.random.split(key, rounds + 1)`.

    prune_fraction: float in [0, 1) or a pytree shaped like params (e.g.
    `per_leaf(params, 0.2, out=0.1)`), possibly traced. train_fn(key, params, mask) ->
    (trained_params, metrics dict of arrays) must be jittable; it should keep masked weights
    at zero (e.g. with `esparse.optim.keep_pruned_zero`). prunable as in `esparse.pruning`
    (default: every leaf with ndim >= 2). One `lax.scan` over rounds: jit it once, vmap it
    over seeds.
    """
    rounds = _checks.positive_int("rounds", rounds)
    flags = _checks.prunable_flags(prunable, params0)
    _checks.pruning_scope(scope, "prune_fraction", prune_fraction)
    _checks.fraction_per_leaf("prune_fraction", prune_fraction, params0, flags)
    rewind = params0
    if rewind_params is not None:
        _checks.leaves_like("rewind_params", rewind_params, "params", params0)
        rewind = rewind_params

    def one_round(mask, round_key):
        trained, metrics = train_fn(round_key, apply_mask(rewind, mask), mask)
        next_mask = pruning.prune_remaining(
            trained, mask, prune_fraction, prunable=prunable, scope=scope
        )
        record = (mask, metrics, density(mask, prunable=prunable), layer_density(mask))
        return next_mask, (record, trained)

    keys = jax.random.split(key, rounds + 1)
    _, ((masks, metrics, densities, layer_dens), trained) = lax.scan(
        one_round, ones_like(params0), keys
    )
    final = jax.tree_util.tree_map(lambda t: t[-1], trained)
    return ImpResult(masks, metrics, densities, layer_dens, final)


class ControlResult(NamedTuple):
    """A control run: trained params, train_fn's metrics, and the mask it trained under."""

    params: Params
    metrics: dict
    mask: Mask


def reinit_control(
    key: jax.Array, init_fn: Callable[[jax.Array], Params], mask: Mask, train_fn: TrainFn
) -> ControlResult:
    """Same mask, fresh initialisation (Frankle & Carbin's "random reinitialisation" control).

    Draws params from `init_fn(k_init)` and trains `train_fn(k_train, apply_mask(params, mask),
    mask)`, with (k_init, k_train) = split(key).
    """
    k_init, k_train = jax.random.split(key)
    params = init_fn(k_init)
    trained, metrics = train_fn(k_train, apply_mask(params, mask), mask)
    return ControlResult(trained, metrics, mask)


def random_mask_control(
    key: jax.Array, params: Params, mask: Mask, train_fn: TrainFn
) -> ControlResult:
    """Random mask with the same per-leaf counts as `mask`, trained from `params`.

    Pass theta_0 as params for Frankle & Carbin's "random pruning" control (or a fresh
    init). (k_mask, k_train) = split(key).
    """
    k_mask, k_train = jax.random.split(key)
    _checks.leaves_like("mask", mask, "params", params)
    rmask = pruning.random_mask(k_mask, mask)
    trained, metrics = train_fn(k_train, apply_mask(params, rmask), rmask)
    return ControlResult(trained, metrics, rmask)
