"""Masks over parameters: the mask pytree, its counts and application, exact top-k, storage.

A mask is a boolean pytree with the structure and leaf shapes of the params it acts on; True
keeps a weight. Leaves that are not prunable (biases, fixed projections) are all-True, never
None, so a mask always has the params' tree and can be stacked, vmapped and multiplied in.
Which leaves are prunable has one default, the same for every function here and in
`pruning` and `lottery` (`prunable=None`): every leaf with ndim >= 2 (weight matrices, conv
kernels; not biases or scales). `prunable=True` marks every leaf, False none, or a pytree of
Python bools shaped like the params says it per leaf (`esparse.nn.kernel_mask_spec(params)`
marks the Dense kernels only, leaving out fixed 2-D projections).

Every selection over masks keeps an exact count with ties broken by index (the lower flat
index is kept) and takes its counts as possibly traced integers, so pruning runs under jit,
vmap over seeds and `lax.scan` over pruning rounds. The k largest are found by
`esparse.selection.top_k_keys`, a 32-step bisection on the order-preserving integer image of
the float bits (`esparse.selection.order_key`, the one order map of every exact selection).

The masks family, one module per concept:
- `esparse.masks` (this module): the pieces they share;
- `esparse.pruning`: magnitude pruning (global / per layer) and random masks;
- `esparse.lottery`: iterative magnitude pruning with rewinding, and its controls;
- `esparse.supermasks`: edge-popup selection of a frozen network's edges;
- `esparse.optim`: optax transformations for masked and partial training;
- dropout, the random counterpart of k-winners-take-all, is in `esparse.nn` with the models.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from esparse import _checks, selection

__all__ = [
    "PackedMask",
    "apply_mask",
    "count",
    "density",
    "layer_density",
    "ones_like",
    "pack",
    "per_leaf",
    "round_count",
    "top_k_mask",
    "unpack",
]

Params = Any  # a params pytree (leaves: arrays)
Mask = Any  # a bool pytree shaped like the params it acts on; True keeps a weight


# --------------------------------------------------------------------------- exact top-k


def top_k_mask(x: jax.Array, k: int | jax.Array) -> jax.Array:
    """Bool mask of the k largest entries of x over all its elements; ties by flat index.

    x: any shape, float; k: int in [0, x.size] (may be traced; a Python int out of range is a
    ValueError). Returns x.shape bool with exactly k True.
    """
    _checks.count_in_range("k", k, 0, int(np.size(x)))
    return _top_k_mask(x, k)


@jax.jit
def _top_k_mask(x, k):
    return selection.top_k_keys(selection.order_key(x).ravel(), k).reshape(x.shape)


# --------------------------------------------------------------------------- counting


def round_count(fraction: float | jax.Array, n: int | jax.Array) -> jax.Array:
    """round(fraction * n) as int32 (half to even), computed in float32 for jit/no-jit parity.

    The count of weights a sparsity or density `fraction` of `n` weights stands for.
    """
    return jnp.round(jnp.asarray(fraction, jnp.float32) * jnp.asarray(n, jnp.float32)).astype(
        jnp.int32
    )


def ones_like(params: Params) -> Mask:
    """The dense mask: all-True leaves shaped like params."""
    return jax.tree_util.tree_map(lambda p: jnp.ones(jnp.shape(p), bool), params)


def apply_mask(params: Params, mask: Mask) -> Params:
    """Params with masked-out weights set to exactly +0 (same dtypes)."""
    _checks.leaves_like("mask", mask, "params", params)
    return jax.tree_util.tree_map(lambda p, m: jnp.where(m, p, jnp.zeros_like(p)), params, mask)


def _selected(mask: Mask, prunable) -> list:
    leaves = jax.tree_util.tree_leaves(mask)
    flags = _checks.prunable_flags(prunable, mask)
    return [leaf for leaf, flag in zip(leaves, flags, strict=True) if flag]


def count(mask: Mask, *, prunable: Any = None) -> jax.Array:
    """Number of kept weights (int32) over the prunable leaves (module docstring: by default
    every leaf with ndim >= 2; prunable=True counts every leaf, biases included)."""
    return sum((jnp.sum(m, dtype=jnp.int32) for m in _selected(mask, prunable)), jnp.int32(0))


def density(mask: Mask, *, prunable: Any = None) -> jax.Array:
    """Overall fraction of kept weights (float32) over the prunable leaves (as `count`; a
    mask's all-True biases do not count unless prunable=True)."""
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
