"""Expand-and-sparsify: a random projection to m units, then k-winners-take-all per row.

The fruit-fly olfactory circuit (Dasgupta, Stevens & Navlakha, Science 2017) and the
expand-and-sparsify representation of Mukherjee & Huberman (arXiv 2211.14632): project x
(batch, d_in) to m >> d_in units with `esparse.projection`, keep the k largest per row with
`esparse.selection`, and return them dense, as (values, indices), or as packed binary codes.
On a CPU the projection and the selection are fused per block of rows, so each block's
projection is still in cache when it is sparsified, and the sparse forms never write the
dense (batch, m) output.
"""

from __future__ import annotations

import functools
from typing import Literal, get_args

import jax
import jax.numpy as jnp
from jax import lax

from esparse import _checks, codes, selection
from esparse.projection import Kind, Projection
from esparse.selection import Method

__all__ = ["OUTPUTS", "Output", "expand_and_sparsify"]

Output = Literal["dense", "indices", "packed"]  # forms of expand_and_sparsify's result
OUTPUTS: tuple[str, ...] = get_args(Output)
# Rows of x per step of the fused expand-and-sparsify, by platform (as selection.AUTO): on a
# CPU a block's projection is still in cache when it is sparsified; on GPU and TPU lax.map
# would run the blocks one after another, so the whole batch is one matmul and one selection.
_FUSED_ROWS = {"cpu": 512, "default": None}


def _sparsify(y, k, mode, method):
    """selection.select of y: (rows, m) for the dense modes; for "indices" (values, indices)
    (rows, k) and for "packed" (rows, ceil(m / 32)) uint32, both from the winner mask."""
    if mode == "indices":
        indices = codes.mask_to_indices(selection.select(y, k, "mask", method), k)
        return jnp.take_along_axis(y, indices, axis=1, mode="fill", fill_value=jnp.nan), indices
    if mode == "packed":
        return codes.pack_bits(selection.select(y, k, "mask", method))
    return selection.select(y, k, mode, method)


def _sparsified(key, x, spec: Projection, k, mode, method, fused_rows):
    """expand_and_sparsify with a concrete method and fused row block (None: no fusion)."""
    if spec.block_size is not None:
        return _sparsify(spec(key, x), k, mode, method)
    matrix = spec.matrix(key)
    batch = x.shape[0]
    rb = batch
    if fused_rows is not None:
        rb = max(b for b in range(1, min(batch, fused_rows) + 1) if batch % b == 0)
    if rb == batch or rb < 16:
        return _sparsify(spec.apply(x, matrix), k, mode, method)
    # Fused per row block: the projected block is still in cache when it is sparsified.
    blocks = x.reshape(batch // rb, rb, x.shape[1])
    out = lax.map(lambda xb: _sparsify(spec.apply(xb, matrix), k, mode, method), blocks)
    return jax.tree.map(lambda o: o.reshape(batch, -1), out)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _expand_and_sparsify(key, x, spec: Projection, k, mode, method):
    """The method and the fused row block follow the platform compiled for (selection.AUTO,
    _FUSED_ROWS); an explicit method only fixes the method."""

    def make(platform):
        chosen = selection.AUTO[platform] if method == "auto" else method
        rows = _FUSED_ROWS[platform]
        return lambda key, x: _sparsified(key, x, spec, k, mode, chosen, rows)

    return selection.by_platform(make, key, x)


def expand_and_sparsify(
    key: jax.Array,
    x: jax.Array,
    m: int,
    k: int | None = None,
    kind: Kind = "gaussian",
    binary: bool = False,
    block_size: int | None = None,
    *,
    fraction: float | None = None,
    method: Method = "auto",
    check_finite: bool = False,
    output: Output = "dense",
    **kind_args: object,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Expand-and-sparsify: random projection to m units, then k-WTA per row.

    x: (..., d_in) -> (..., m), `projection.project(key, x, m, kind, block_size, **kind_args)`
    followed by `kwta` (or `kwta_binary` with binary=True). How many win: exactly one of k
    (an int count in [1, m]) and fraction= (a share in (0, 1] of m). m, k, fraction and
    block_size are static Python ints (they set shapes): under `jax.jit` / `jax.vmap` keep
    them out of the traced arguments (static: use static_argnums / functools.partial); a
    float k in (0, 1] as a share is deprecated. Exactly k winners per row, ties to the lowest
    index; a row of x holding a NaN or an inf comes out all NaN. method ("auto", "search",
    "top_k") and check_finite as in `esparse.sparsify`. Dtypes as `projection.project`: the
    output is in x's dtype (values, binary codes), the projection is drawn in x's dtype and
    its matmul accumulates in float32. Dasgupta et al., Science 2017; Mukherjee & Huberman,
    arXiv 2211.14632.

    output: "dense" (the (..., m) array above), "indices" (`sparsify.kwta_indices`'s form:
    values and ascending indices, each (..., k); binary is ignored) or "packed" (the binary
    code as (..., ceil(m / 32)) uint32, `codes.pack_bits`'s bit order). The sparse forms
    never write the dense (batch, m) output: each fused row block is reduced to them.
    """
    spec = Projection.of(x, m, kind, block_size, check_finite=check_finite, **kind_args)
    k = _checks.count_or_fraction(k, fraction, spec.m, stacklevel=3)
    _checks.one_of("method", method, selection.METHODS)
    _checks.one_of("output", output, OUTPUTS)
    mode = output if output != "dense" else "binary" if binary else "values"
    if x.ndim == 2:
        return _expand_and_sparsify(key, x, spec, k, mode, method)
    out = _expand_and_sparsify(key, jnp.reshape(x, (-1, spec.d_in)), spec, k, mode, method)
    return jax.tree.map(lambda o: o.reshape(*x.shape[:-1], o.shape[-1]), out)
