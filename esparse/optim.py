"""Optax transformations for masked and partial training: keep pruned weights at zero, and
train only some entries of the params.

A transformation is optax's pair of pure functions (init, update); these compose with any
optimizer through `optax.chain` (Frankle & Carbin 2019 train a pruned network so; edge-popup,
Ramanujan et al. 2020, trains the scores of a frozen network).
"""

from __future__ import annotations

from collections.abc import Collection

import jax
import jax.numpy as jnp
import optax

from esparse import _checks
from esparse.masks import Mask, Params

__all__ = ["keep_pruned_zero", "train_only"]


def keep_pruned_zero(mask: Mask) -> optax.GradientTransformation:
    """Optax transformation that zeroes the updates of masked-out weights.

    Put it last in the chain (`optax.chain(optax.adam(lr), keep_pruned_zero(mask))`) so any
    optimizer's final update is masked: Adam's update of a weight whose gradient is zero is
    not zero once its moments are, and weight decay moves zero weights only through the
    update. Weights that start at zero (see `esparse.masks.apply_mask`) then stay exactly
    zero forever.
    """

    def init_fn(params):
        _checks.leaves_like("mask", mask, "params", params)
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        masked = jax.tree_util.tree_map(
            lambda u, m: jnp.where(m, u, jnp.zeros_like(u)), updates, mask
        )
        return masked, state

    return optax.GradientTransformation(init_fn, update_fn)


def train_only(
    optimizer: optax.GradientTransformation, params: Params, trainable: str | Collection[str]
) -> optax.GradientTransformation:
    """`optimizer` on the top-level params entries named in `trainable`; the rest frozen.

    E.g. `train_only(optax.adam(1e-2), params, "scores")` for edge-popup supermasks, or
    "readout" for a fixed expand-and-sparsify layer. params: a dict-like pytree.
    """
    names = {trainable} if isinstance(trainable, str) else set(trainable)
    if not hasattr(params, "keys"):
        raise ValueError(f"params must be a dict of named entries, got {type(params).__name__}")
    for name in names:
        if name not in params:
            raise ValueError(
                f"trainable must name entries of params {sorted(params)}, got {name!r}"
            )
    labels = {
        k: jax.tree_util.tree_map(lambda _, k=k: "train" if k in names else "freeze", v)
        for k, v in params.items()
    }
    return optax.partition({"train": optimizer, "freeze": optax.set_to_zero()}, labels)
