"""Masks over parameters: magnitude and random pruning, lottery tickets, supermasks, dropout.

A mask is a boolean pytree with the structure and leaf shapes of the params it acts on; True
keeps a weight. Leaves that are not prunable (biases, fixed projections) are all-True, never
None, so a mask always has the params' tree and can be stacked, vmapped and multiplied in.
Which leaves are prunable is the caller's choice, given as a pytree of Python bools shaped
like the params (`esparse.nn.kernel_mask_spec(params)` marks the Dense kernels).

Every selection here keeps an exact count with ties broken by index (the lower flat index is
kept) and takes its counts as possibly traced integers, so pruning runs under jit, vmap over
seeds and `lax.scan` over pruning rounds. The k largest are found by a 32-step bisection on
the order-preserving integer image of the float bits (one counting pass per bit), not a sort.

References: Frankle & Carbin 2019 (lottery tickets, IMP with rewinding); Frankle et al. 2020
(rewinding to step j); Ramanujan et al. 2020 (edge-popup supermasks); Srivastava et al. 2014
(dropout).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from esparse._checks import (
    finite,
    float_in_range,
    host_value,
    one_of,
    positive_int,
    same_tree,
)

__all__ = [
    "ControlResult",
    "ImpResult",
    "PackedMask",
    "apply_mask",
    "count",
    "density",
    "dropout",
    "dropout_mask",
    "edge_popup_mask",
    "imp",
    "keep_pruned_zero",
    "kept_fraction",
    "layer_density",
    "magnitude_prune",
    "ones_like",
    "pack",
    "per_leaf",
    "random_mask",
    "random_mask_control",
    "reinit_control",
    "top_k_mask",
    "train_only",
    "unpack",
]

PRNGKey = jax.Array
Params = Any
Mask = Any
TrainFn = Callable[[PRNGKey, Params, Mask], tuple[Params, dict]]

# --------------------------------------------------------------------------- exact top-k


def _sortable(x: jax.Array) -> jax.Array:
    """float -> uint32 with the same order (-0.0 is first made +0.0)."""
    x = x.astype(jnp.float32)
    bits = lax.bitcast_convert_type(jnp.where(x == 0, jnp.float32(0), x), jnp.uint32)
    return jnp.where(bits >> 31 == 1, ~bits, bits | jnp.uint32(0x80000000))


@jax.jit
def _top_k_keys(keys: jax.Array, k) -> jax.Array:
    """keys: (n,) uint32; k: int, possibly traced, in [0, n]. Bool mask of the k largest.

    Ties at the k-th value go to the lower index, so the count is exactly k.
    """
    k = jnp.asarray(k, jnp.int32)

    def bit(i, t):
        candidate = t | (jnp.uint32(1) << (31 - i).astype(jnp.uint32))
        return jnp.where(jnp.sum(keys >= candidate) >= k, candidate, t)

    threshold = lax.fori_loop(0, 32, bit, jnp.uint32(0))  # the k-th largest key
    above = keys > threshold
    tie = keys == threshold
    return above | (tie & (jnp.cumsum(tie) <= k - jnp.sum(above)))


@jax.jit
def top_k_mask(x: jax.Array, k: int | jax.Array) -> jax.Array:
    """Bool mask of the k largest entries of x over all its elements; ties by flat index.

    x: any shape, float; k: int in [0, x.size] (may be traced). Returns x.shape bool.
    """
    return _top_k_keys(_sortable(x).ravel(), k).reshape(x.shape)


# --------------------------------------------------------------------------- validation


def _leaves(name: str, tree, params) -> list:
    """Leaves of `tree`, checked to have the structure and shapes of `params`."""
    same_tree(name, tree, "params", params)
    return jax.tree_util.tree_leaves(tree)


def _prunable_list(prunable, params) -> list[bool]:
    same_tree("prunable", prunable, "params", params, shapes=False)
    flags = jax.tree_util.tree_leaves(prunable)
    for flag in flags:
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"prunable must hold Python bools, got a leaf {flag!r}")
    return [bool(f) for f in flags]


def _check_fraction(name: str, value, *, density: bool = False) -> None:
    """A sparsity must lie in [0, 1), a density in (0, 1]. Values already on the host are
    checked; a jax array's value is not read (no sync), only its shape."""
    if jnp.ndim(value) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {jnp.shape(value)}")
    host = host_value(value)
    if host is None:
        return
    float_in_range(name, host.item(), 0.0, 1.0, low_open=density, high_open=not density)


def _fraction_list(name: str, value, params, flags: list[bool], *, density: bool = False) -> list:
    """One fraction per params leaf from a scalar or a pytree of scalars shaped like params."""
    if jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(value)):
        values = [value] * len(flags)
    else:
        same_tree(name, value, "params", params, shapes=False)
        values = jax.tree_util.tree_leaves(value)
    for v, flag in zip(values, flags, strict=True):
        if flag:
            _check_fraction(name, v, density=density)
    return values


def _round_count(fraction, n) -> jax.Array:
    """round(fraction * n) as int32 (half to even), computed in float32 for jit/no-jit parity."""
    return jnp.round(jnp.asarray(fraction, jnp.float32) * jnp.asarray(n, jnp.float32)).astype(
        jnp.int32
    )


# --------------------------------------------------------------------------- basic ops


def ones_like(params: Params) -> Mask:
    """The dense mask: all-True leaves shaped like params."""
    return jax.tree_util.tree_map(lambda p: jnp.ones(jnp.shape(p), bool), params)


def apply_mask(params: Params, mask: Mask) -> Params:
    """Params with masked-out weights set to exactly +0 (same dtypes)."""
    _leaves("mask", mask, params)
    return jax.tree_util.tree_map(lambda p, m: jnp.where(m, p, jnp.zeros_like(p)), params, mask)


def _selected(mask: Mask, prunable) -> list:
    leaves = jax.tree_util.tree_leaves(mask)
    if prunable is None:
        return leaves
    flags = _prunable_list(prunable, mask)
    return [leaf for leaf, flag in zip(leaves, flags, strict=True) if flag]


def count(mask: Mask, *, prunable: Any = None) -> jax.Array:
    """Number of kept weights (int32), over all leaves or only the prunable ones."""
    return sum((jnp.sum(m, dtype=jnp.int32) for m in _selected(mask, prunable)), jnp.int32(0))


def density(mask: Mask, *, prunable: Any = None) -> jax.Array:
    """Overall fraction of kept weights (float32), over all leaves or only the prunable ones."""
    size = sum(int(np.prod(jnp.shape(m))) for m in _selected(mask, prunable))
    return count(mask, prunable=prunable).astype(jnp.float32) / max(size, 1)


def layer_density(mask: Mask) -> Any:
    """Per-leaf fraction of kept weights: a pytree of float32 scalars shaped like the mask."""
    return jax.tree_util.tree_map(lambda m: jnp.mean(m, dtype=jnp.float32), mask)


def per_leaf(params: Params, default: Any, **by_name: Any) -> Any:
    """A pytree of scalars shaped like params: `by_name[key]` for leaves whose path holds that
    dict key (e.g. the layer name), else `default`.

    Example: `per_leaf(params, 0.2, out=0.1)` prunes 20% of hidden layers, 10% of "out".
    """

    def value(path, _):
        names = {getattr(k, "key", getattr(k, "name", None)) for k in path}
        hits = [by_name[n] for n in names if n in by_name]
        if len(hits) > 1:
            raise ValueError(f"by_name matches {jax.tree_util.keystr(path)} more than once")
        return hits[0] if hits else default

    return jax.tree_util.tree_map_with_path(value, params)


# --------------------------------------------------------------------------- pruning


@jax.jit
def _keep_largest(values: list, current: list, n_keep) -> list:
    """Keep the n_keep largest |values| among the currently kept entries, across all leaves."""
    keys = [
        jnp.where(c, _sortable(jnp.abs(v)), jnp.uint32(0)).ravel()
        for v, c in zip(values, current, strict=True)
    ]
    keep = _top_k_keys(jnp.concatenate(keys), n_keep)
    out, start = [], 0
    for v, c in zip(values, current, strict=True):
        size = int(np.prod(jnp.shape(v)))
        out.append(keep[start : start + size].reshape(jnp.shape(v)) & c)
        start += size
    return out


def _prune(params, flags, current, n_keep_fn, fractions, scope):
    """Shared by magnitude_prune and imp: n_keep_fn(fraction, n_total, n_current) -> kept."""
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
        n_cur = sum(jnp.sum(current[i], dtype=jnp.int32) for i in idx)
        kept = _keep_largest(
            [leaves[i] for i in idx],
            [current[i] for i in idx],
            n_keep_fn(fractions[idx[0]], n_total, n_cur),
        )
        for i, m in zip(idx, kept, strict=True):
            new[i] = m
    return jax.tree_util.tree_unflatten(treedef, new)


def _check_scope(scope: str, fraction_name: str, fraction) -> None:
    one_of("scope", scope, ("layer", "global"))
    if scope == "global" and not jax.tree_util.treedef_is_leaf(
        jax.tree_util.tree_structure(fraction)
    ):
        raise ValueError(f"{fraction_name} must be one scalar with scope='global', got a pytree")


def magnitude_prune(
    params: Params,
    sparsity: float | Params,
    *,
    prunable: Any,
    scope: str = "layer",
    current_mask: Mask | None = None,
    check_finite: bool = False,
) -> Mask:
    """Mask that prunes the smallest-|w| weights to a target sparsity (Han et al. 2015).

    sparsity: float in [0, 1), or a pytree of floats shaped like params (scope="layer" only);
    may be traced. With scope="layer" each prunable leaf of n weights keeps exactly
    n - round(sparsity * n); with "global" the prunable leaves are ranked together and keep
    N - round(sparsity * N) in all. Ties go to the lower flat index (in tree-flatten order
    for "global"). Weights already pruned in `current_mask` stay pruned (the kept count is
    then at most the current one). Non-prunable leaves are all-True.
    """
    flags = _prunable_list(prunable, params)
    if check_finite:
        for path, leaf in jax.tree_util.tree_leaves_with_path(params):
            finite(f"params{jax.tree_util.keystr(path)}", leaf)
    _check_scope(scope, "sparsity", sparsity)
    fractions = _fraction_list("sparsity", sparsity, params, flags)
    current = (
        [jnp.ones(jnp.shape(p), bool) for p in jax.tree_util.tree_leaves(params)]
        if current_mask is None
        else _leaves("current_mask", current_mask, params)
    )
    mask = _prune(params, flags, current, lambda s, n, _: n - _round_count(s, n), fractions, scope)
    leaves, treedef = jax.tree_util.tree_flatten(mask)
    ok = [jnp.all(jnp.isfinite(p)) for p in jax.tree_util.tree_leaves(params)]
    if scope == "global":
        all_ok = jnp.all(jnp.stack([o for o, f in zip(ok, flags, strict=True) if f] or [True]))
        ok = [all_ok] * len(ok)
    poisoned = [m & o if f else m for m, o, f in zip(leaves, ok, flags, strict=True)]
    return jax.tree_util.tree_unflatten(treedef, poisoned)


def random_mask(
    key: PRNGKey,
    like: Params,
    density: float | Params | None = None,
    *,
    prunable: Any = None,
) -> Mask:
    """Uniformly random mask with exact per-leaf counts (the random-pruning control).

    With density=None, `like` must be a bool mask and each leaf keeps exactly as many weights
    as it does there (same per-layer density; all-True leaves stay all-True). Otherwise
    `like` is any pytree of arrays and each leaf of n entries keeps round(density * n);
    density is a float in (0, 1] or a pytree of them, possibly traced. With `prunable`
    given, non-prunable leaves are all-True.
    """
    leaves, treedef = jax.tree_util.tree_flatten(like)
    flags = [True] * len(leaves) if prunable is None else _prunable_list(prunable, like)
    if density is None:
        for leaf in leaves:
            if jnp.result_type(leaf) != jnp.bool_:
                raise ValueError(f"like must be a bool mask when density is None, got {leaf.dtype}")
        counts = [jnp.sum(leaf, dtype=jnp.int32) for leaf in leaves]
    else:
        fractions = _fraction_list("density", density, like, flags, density=True)
        counts = [_round_count(f, leaf.size) for f, leaf in zip(fractions, leaves, strict=True)]
    keys = jax.random.split(key, len(leaves))
    out = []
    for k, leaf, n_keep, flag in zip(keys, leaves, counts, flags, strict=True):
        shape = jnp.shape(leaf)
        if flag:
            bits = jax.random.bits(k, (int(np.prod(shape)),), jnp.uint32)
            out.append(_top_k_keys(bits, n_keep).reshape(shape))
        else:
            out.append(jnp.ones(shape, bool))
    return jax.tree_util.tree_unflatten(treedef, out)


# --------------------------------------------------------------------------- lottery tickets


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
    key: PRNGKey,
    params0: Params,
    train_fn: TrainFn,
    *,
    rounds: int,
    prune_fraction: float | Params,
    prunable: Any,
    scope: str = "layer",
    rewind_params: Params | None = None,
) -> ImpResult:
    """Iterative magnitude pruning with rewinding (Frankle & Carbin 2019; Frankle et al. 2020).

    Round r = 0..rounds trains `train_fn(key_r, apply_mask(rewind, mask_r), mask_r)`, where
    rewind is params0 (theta_0) or `rewind_params` (e.g. the weights at step j), then prunes
    round(p * remaining) of the remaining weights of each prunable leaf by the magnitude of
    the trained weights (scope="global": of all prunable weights together) to get mask_{r+1}.
    After r prunings a layer keeps about (1 - p)^r of its weights. The per-round keys are
    `jax.random.split(key, rounds + 1)`.

    prune_fraction: float in [0, 1) or a pytree shaped like params (e.g.
    `per_leaf(params, 0.2, out=0.1)`), possibly traced. train_fn(key, params, mask) ->
    (trained_params, metrics dict of arrays) must be jittable; it should keep masked weights
    at zero (e.g. with `keep_pruned_zero`). One `lax.scan` over rounds: jit it once, vmap it
    over seeds.
    """
    rounds = positive_int("rounds", rounds)
    flags = _prunable_list(prunable, params0)
    _check_scope(scope, "prune_fraction", prune_fraction)
    fractions = _fraction_list("prune_fraction", prune_fraction, params0, flags)
    rewind = params0
    if rewind_params is not None:
        _leaves("rewind_params", rewind_params, params0)
        rewind = rewind_params

    def prune_remaining(p, _n_total, n_current):
        return n_current - _round_count(p, n_current)

    def one_round(mask, round_key):
        trained, metrics = train_fn(round_key, apply_mask(rewind, mask), mask)
        current = jax.tree_util.tree_leaves(mask)
        next_mask = _prune(trained, flags, current, prune_remaining, fractions, scope)
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
    key: PRNGKey, init_fn: Callable[[PRNGKey], Params], mask: Mask, train_fn: TrainFn
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
    key: PRNGKey, params: Params, mask: Mask, train_fn: TrainFn
) -> ControlResult:
    """Random mask with the same per-leaf counts as `mask`, trained from `params`.

    Pass theta_0 as params for Frankle & Carbin's "random pruning" control (or a fresh
    init). (k_mask, k_train) = split(key).
    """
    k_mask, k_train = jax.random.split(key)
    _leaves("mask", mask, params)
    rmask = random_mask(k_mask, mask)
    trained, metrics = train_fn(k_train, apply_mask(params, rmask), rmask)
    return ControlResult(trained, metrics, rmask)


# --------------------------------------------------------------------------- optax


def keep_pruned_zero(mask: Mask) -> optax.GradientTransformation:
    """Optax transformation that zeroes the updates of masked-out weights.

    Put it last in the chain (`optax.chain(optax.adam(lr), keep_pruned_zero(mask))`) so any
    optimizer's final update is masked: Adam's update of a weight whose gradient is zero is
    not zero once its moments are, and weight decay moves zero weights only through the
    update. Weights that start at zero (see `apply_mask`) then stay exactly zero forever.
    """

    def init_fn(params):
        _leaves("mask", mask, params)
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


# --------------------------------------------------------------------------- supermasks


@jax.jit
def edge_popup_mask(scores: jax.Array, k: int) -> jax.Array:
    """Edge-popup selection (Ramanujan et al. 2020): the k edges of largest |score| in a layer.

    scores: any shape; k: int kept edges (may be traced). Forward: a float 0/1 mask with
    exactly k ones at the largest |scores| (ties by flat index), as the paper's `GetSubnet`
    applied to `scores.abs()`. Backward: straight-through through |scores|,
    d mask / d scores = sign(scores), so a weight w gets the score gradient
    sign(s) * dL/d(w_eff) * w.
    """
    magnitude = jnp.abs(scores)
    hard = top_k_mask(magnitude, k).astype(scores.dtype)
    return hard + (magnitude - lax.stop_gradient(magnitude))


# --------------------------------------------------------------------------- dropout


def _check_rate(rate) -> None:
    _check_fraction("rate", rate)


def dropout_mask(key: PRNGKey, shape: tuple[int, ...], rate: float | jax.Array) -> jax.Array:
    """Bool mask of `shape` keeping each unit independently with probability 1 - rate."""
    _check_rate(rate)
    return jax.random.bernoulli(key, 1.0 - jnp.asarray(rate, jnp.float32), shape)


def dropout(key: PRNGKey, x: jax.Array, rate: float | jax.Array) -> jax.Array:
    """Inverted dropout (Srivastava et al. 2014): x * mask / (1 - rate); E[out] = x.

    x: any shape; rate in [0, 1), may be traced; rate 0 returns x unchanged. The mask is
    `dropout_mask(key, x.shape, rate)`: dropout is a random sparsification keeping a random
    (1 - rate) fraction of units, where k-winners-take-all keeps the k largest.
    """
    _check_rate(rate)
    host = host_value(rate)
    if host is not None and float(host) == 0.0:
        return x
    keep = dropout_mask(key, jnp.shape(x), rate)
    scale = (1.0 / (1.0 - jnp.asarray(rate, jnp.float32))).astype(x.dtype)
    return jnp.where(keep, x * scale, jnp.zeros_like(x))


def kept_fraction(mask: jax.Array, axis: int | tuple[int, ...] | None = None) -> jax.Array:
    """Fraction of units a dropout (or any sparsifying) mask keeps, over `axis` (all if None).

    Its expectation under `dropout_mask` is 1 - rate.
    """
    return jnp.mean(mask, axis=axis, dtype=jnp.float32)


# --------------------------------------------------------------------------- storage


class PackedMask(NamedTuple):
    """A mask in 1 bit per weight: np.packbits of each flattened leaf, the leaf shapes and the
    tree structure (rebuild it with `jax.tree_util.tree_structure(params)` when loading)."""

    bits: tuple[np.ndarray, ...]
    shapes: tuple[tuple[int, ...], ...]
    treedef: Any


def pack(mask: Mask) -> PackedMask:
    """Pack a bool mask pytree to uint8 bit arrays (8 weights per byte); exact round trip."""
    leaves, treedef = jax.tree_util.tree_flatten(mask)
    for path, leaf in jax.tree_util.tree_leaves_with_path(mask):
        if np.asarray(leaf).dtype != np.bool_:
            raise ValueError(
                f"mask{jax.tree_util.keystr(path)} must be bool, got {np.asarray(leaf).dtype}"
            )
    bits = tuple(np.packbits(np.asarray(leaf).ravel()) for leaf in leaves)
    shapes = tuple(tuple(int(d) for d in np.shape(leaf)) for leaf in leaves)
    return PackedMask(bits, shapes, treedef)


def unpack(packed: PackedMask) -> Mask:
    """Inverse of `pack`: the bool mask pytree (numpy arrays)."""
    if len(packed.bits) != len(packed.shapes) or len(packed.shapes) != packed.treedef.num_leaves:
        raise ValueError(
            f"packed has {len(packed.bits)} bit arrays, {len(packed.shapes)} shapes "
            f"and a tree of {packed.treedef.num_leaves} leaves"
        )
    leaves = []
    for i, (bits, shape) in enumerate(zip(packed.bits, packed.shapes, strict=True)):
        n = int(np.prod(shape))
        if np.asarray(bits).dtype != np.uint8 or np.size(bits) != (n + 7) // 8:
            raise ValueError(
                f"packed.bits[{i}] must be {(n + 7) // 8} uint8 bytes for shape "
                f"{shape}, got {np.size(bits)} of {np.asarray(bits).dtype}"
            )
        leaves.append(np.unpackbits(np.asarray(bits), count=n).astype(bool).reshape(shape))
    return jax.tree_util.tree_unflatten(packed.treedef, leaves)
