"""Pruning: masks that keep the largest-magnitude weights (global or per layer), one round of
iterative pruning, and uniformly random masks with exact counts (the random-pruning control).

Masks are bool pytrees shaped like the params (`esparse.masks`). prunable: one default for
every function (None: every leaf with ndim >= 2, not biases; True: every leaf; or a pytree
of Python bools, e.g. `esparse.nn.kernel_mask_spec(params)`); other leaves stay all-True.
Counts are exact, ties go to the lower flat index (in tree-flatten order across leaves for
scope="global"), and sparsities may be traced, so pruning runs under jit, vmap over seeds
and `lax.scan` over rounds.

References: Han et al. 2015 (magnitude pruning); Frankle & Carbin 2019 (the random-pruning
control of lottery tickets).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from esparse import _checks, selection
from esparse.masks import Mask, Params, round_count

__all__ = ["Scope", "magnitude_prune", "prune_remaining", "random_mask"]

Scope = Literal["layer", "global"]  # prune each leaf to its own count, or all leaves together

_NOT_KEPT = np.int32(np.iinfo(np.int32).min)  # the key of an entry already pruned: the least


@jax.jit
def _keep_largest(values: list, current: list, n_keep) -> list:
    """Keep the n_keep largest |values| among the currently kept entries, across all leaves."""
    keys = [
        jnp.where(c, selection.order_key(jnp.abs(v)), _NOT_KEPT).ravel()
        for v, c in zip(values, current, strict=True)
    ]
    keep = selection.top_k_keys(jnp.concatenate(keys), n_keep)
    out, start = [], 0
    for v, c in zip(values, current, strict=True):
        size = int(np.prod(jnp.shape(v)))
        out.append(keep[start : start + size].reshape(jnp.shape(v)) & c)
        start += size
    return out


def _prune(
    params: Params,
    flags: list[bool],
    current: list,
    n_keep_fn: Callable,
    fractions: list,
    scope: str,
) -> Mask:
    """n_keep_fn(fraction, n_total, n_current) -> the count kept, per leaf or in all."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    new = [jnp.ones(jnp.shape(p), bool) for p in leaves]
    idx = [i for i, f in enumerate(flags) if f]
    if scope == "layer":
        for i in idx:
            n_cur = jnp.sum(current[i], dtype=jnp.int32)
            n_keep = n_keep_fn(fractions[i], leaves[i].size, n_cur)
            new[i] = _keep_largest([leaves[i]], [current[i]], n_keep)[0]
    elif idx:
        n_total = sum(leaves[i].size for i in idx)
        n_cur = sum((jnp.sum(current[i], dtype=jnp.int32) for i in idx), jnp.int32(0))
        kept = _keep_largest(
            [leaves[i] for i in idx],
            [current[i] for i in idx],
            n_keep_fn(fractions[idx[0]], n_total, n_cur),
        )
        for i, m in zip(idx, kept, strict=True):
            new[i] = m
    return jax.tree_util.tree_unflatten(treedef, new)


def magnitude_prune(
    params: Params,
    sparsity: float | Params,
    *,
    prunable: Any = None,
    scope: Scope = "layer",
    current_mask: Mask | None = None,
    check_finite: bool = False,
) -> Mask:
    """Mask that prunes the smallest-|w| weights to a target sparsity (Han et al. 2015).

    sparsity: float in [0, 1), or a pytree of floats shaped like params (scope="layer" only);
    may be traced. With scope="layer" each prunable leaf of n weights keeps exactly
    n - round(sparsity * n); with "global" the prunable leaves are ranked together and keep
    N - round(sparsity * N) in all. Ties go to the lower flat index (in tree-flatten order
    for "global"). Weights already pruned in `current_mask` stay pruned (the kept count is
    then at most the current one). Non-prunable leaves are all-True. A prunable leaf holding
    a NaN or an inf keeps no weight (with "global": no prunable leaf keeps any);
    check_finite=True raises a ValueError naming the leaf instead (a host sync).
    """
    flags = _checks.prunable_flags(prunable, params)
    if check_finite:
        for path, leaf in jax.tree_util.tree_leaves_with_path(params):
            _checks.finite(f"params{jax.tree_util.keystr(path)}", leaf)
    _checks.pruning_scope(scope, "sparsity", sparsity)
    fractions = _checks.fraction_per_leaf("sparsity", sparsity, params, flags)
    current = (
        [jnp.ones(jnp.shape(p), bool) for p in jax.tree_util.tree_leaves(params)]
        if current_mask is None
        else _checks.leaves_like("current_mask", current_mask, "params", params)
    )
    mask = _prune(params, flags, current, lambda s, n, _: n - round_count(s, n), fractions, scope)
    leaves, treedef = jax.tree_util.tree_flatten(mask)
    ok = [jnp.all(jnp.isfinite(p)) for p in jax.tree_util.tree_leaves(params)]
    if scope == "global":
        all_ok = jnp.all(jnp.stack([o for o, f in zip(ok, flags, strict=True) if f] or [True]))
        ok = [all_ok] * len(ok)
    poisoned = [m & o if f else m for m, o, f in zip(leaves, ok, flags, strict=True)]
    return jax.tree_util.tree_unflatten(treedef, poisoned)


def prune_remaining(
    params: Params,
    mask: Mask,
    fraction: float | Params,
    *,
    prunable: Any = None,
    scope: Scope = "layer",
) -> Mask:
    """One round of iterative magnitude pruning: prune round(fraction * remaining) of the
    weights that `mask` keeps, those of smallest |params| (Frankle & Carbin 2019).

    With scope="layer" each prunable leaf keeping r weights keeps r - round(fraction * r) of
    them; with "global" the prunable leaves are ranked together (r counted over all of
    them). fraction: float in [0, 1) or a pytree of floats shaped like params (scope="layer"
    only), possibly traced. Weights pruned in `mask` stay pruned; non-prunable leaves are
    all-True. After r rounds a layer keeps about (1 - fraction)^r of its weights.
    """
    flags = _checks.prunable_flags(prunable, params)
    _checks.pruning_scope(scope, "fraction", fraction)
    fractions = _checks.fraction_per_leaf("fraction", fraction, params, flags)
    current = _checks.leaves_like("mask", mask, "params", params)

    def keep(p, _n_total, n_current):
        return n_current - round_count(p, n_current)

    return _prune(params, flags, current, keep, fractions, scope)


def random_mask(
    key: jax.Array,
    like: Params,
    density: float | Params | None = None,
    *,
    prunable: Any = None,
) -> Mask:
    """Uniformly random mask with exact per-leaf counts (the random-pruning control).

    With density=None, `like` must be a bool mask and each leaf keeps exactly as many weights
    as it does there (same per-layer density; all-True leaves stay all-True). Otherwise
    `like` is any pytree of arrays and each leaf of n entries keeps round(density * n);
    density is a float in (0, 1] or a pytree of them, possibly traced. Non-prunable leaves
    (prunable: module docstring; by default those with ndim < 2, the biases) are all-True.
    """
    leaves, treedef = jax.tree_util.tree_flatten(like)
    flags = _checks.prunable_flags(prunable, like)
    if density is None:
        for leaf in leaves:
            if jnp.result_type(leaf) != jnp.bool_:
                raise ValueError(f"like must be a bool mask when density is None, got {leaf.dtype}")
        counts = [jnp.sum(leaf, dtype=jnp.int32) for leaf in leaves]
    else:
        fractions = _checks.fraction_per_leaf("density", density, like, flags, density=True)
        counts = [round_count(f, leaf.size) for f, leaf in zip(fractions, leaves, strict=True)]
    keys = jax.random.split(key, len(leaves))
    out = []
    for k, leaf, n_keep, flag in zip(keys, leaves, counts, flags, strict=True):
        shape = jnp.shape(leaf)
        if flag:
            bits = jax.random.bits(k, (int(np.prod(shape)),), jnp.uint32)
            out.append(selection.top_k_keys(bits, n_keep).reshape(shape))
        else:
            out.append(jnp.ones(shape, bool))
    return jax.tree_util.tree_unflatten(treedef, out)
