"""The subsampled randomized Hadamard transform (SRHT), a structured random projection.

x -> (x D H)[:, S] / sqrt(m) with random signs D, the Walsh-Hadamard matrix H of the input
zero-padded to a power of two, and S a sample of coordinates without replacement (Ailon &
Chazelle 2009; Tropp 2011): E ||x P||^2 = ||x||^2 at O(batch m log d_in) work, with no dense
matrix stored. When m exceeds the padded size, independent SRHT blocks (new signs and sample)
are stacked; block b is drawn from `jax.random.fold_in(key, b)`, as every kind of
`esparse.projection` (which builds `project(..., kind="srht")`, blocked or not, from the
functions here; `srht`, `apply_srht` and `SRHTParams` are also reachable there).

Shapes: x is (..., d_in), any leading batch axes, -> (..., m). d_in and m are static Python
ints. Dtypes: the output has x's dtype; the transform accumulates in at least float32.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from esparse._kernels import accumulator, block_keys, check_sizes, check_x, flat

__all__ = [
    "SRHTParams",
    "apply_block",
    "apply_srht",
    "apply_unchecked",
    "draw_block",
    "fwht",
    "padded",
    "srht",
]


def padded(d_in: int) -> int:
    """The padded input size: the smallest power of two >= d_in (one SRHT block's outputs)."""
    return 1 << max(0, (d_in - 1).bit_length())


def draw_block(kb: jax.Array, d_in: int) -> tuple[jax.Array, jax.Array]:
    """One SRHT block from its key: signs (d_in,) of +-1 and the sampled coordinates, a
    permutation (padded(d_in),) of which the first outputs are used."""
    k_sign, k_rows = jax.random.split(kb)
    signs = jax.random.rademacher(k_sign, (d_in,), jnp.float32)
    rows = jax.random.permutation(k_rows, padded(d_in)).astype(jnp.int32)
    return signs, rows


class SRHTParams(NamedTuple):
    """An SRHT of m outputs: signs (blocks, d_in) of +-1, rows (m,) in [0, padded).

    Output j comes from Hadamard block j // padded, coordinate rows[j].
    """

    signs: jax.Array
    rows: jax.Array

    @property
    def d_in(self) -> int:
        return self.signs.shape[-1]

    @property
    def padded(self) -> int:
        return padded(self.signs.shape[-1])

    @property
    def m(self) -> int:
        return self.rows.shape[-1]


def srht(key: jax.Array, d_in: int, m: int) -> SRHTParams:
    """Subsampled randomized Hadamard transform of d_in inputs to m outputs (module doc)."""
    d_in, m = check_sizes(d_in, m)
    return _srht(key, d_in, m)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _srht(key, d_in, m):
    nb = -(-m // padded(d_in))
    signs, rows = jax.vmap(lambda kb: draw_block(kb, d_in))(block_keys(key, 0, nb))
    return SRHTParams(signs, rows.reshape(-1)[:m])


def _hadamard(n: int) -> np.ndarray:
    h = np.ones((1, 1), np.float32)
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h


def fwht(x: jax.Array) -> jax.Array:
    """Unnormalized Walsh-Hadamard transform of the last axis (a power of two).

    H_(2^p) = H_(2^p1) kron H_(2^p2) kron ..., applied factor by factor on a reshaped axis,
    with factors of at most 64: O(d log d) work done as small dense matmuls.
    """
    d = x.shape[-1]
    p = d.bit_length() - 1
    factors = [6] * (p // 6) + ([p % 6] if p % 6 else [])
    sizes = [1 << f for f in factors]
    y = x.reshape(*x.shape[:-1], *sizes)
    lead = x.ndim - 1
    for i, s in enumerate(sizes):
        h = jnp.asarray(_hadamard(s), x.dtype)
        y = jnp.moveaxis(jnp.tensordot(y, h, axes=[[lead + i], [0]]), -1, lead + i)
    return y.reshape(x.shape)


def apply_block(x: jax.Array, signs: jax.Array, rows: jax.Array, m: int) -> jax.Array:
    """One SRHT block of an m-output SRHT: x: (batch, d_in) -> (batch, len(rows)), scaled by
    1/sqrt(m), in x's dtype (no checks; traceable)."""
    d_pad = padded(x.shape[1])
    acc = accumulator(x.dtype)
    xs = x.astype(acc) * signs.astype(acc)
    xs = jnp.pad(xs, ((0, 0), (0, d_pad - x.shape[1])))
    return (jnp.take(fwht(xs), rows, axis=1) * jnp.asarray(1.0 / math.sqrt(m), acc)).astype(x.dtype)


def apply_unchecked(x: jax.Array, params: SRHTParams) -> jax.Array:
    """`apply_srht` for a 2-D x: (batch, d_in) -> (batch, m), without its checks (traceable;
    the blocks run one after another in `lax.map`)."""
    d_pad, m = params.padded, params.m
    nb = params.signs.shape[0]
    rows = jnp.pad(params.rows, (0, nb * d_pad - m)).reshape(nb, d_pad)
    out = lax.map(lambda sr: apply_block(x, sr[0], sr[1], m), (params.signs, rows))
    return jnp.moveaxis(out, 0, 1).reshape(x.shape[0], -1)[:, :m]


def apply_srht(x: jax.Array, params: SRHTParams, *, check_finite: bool = False) -> jax.Array:
    """Apply an SRHT. x: (..., d_in) -> (..., m), O(batch m log d) via a fast WHT.

    check_finite: raise a ValueError if x holds NaN or inf (syncs; esparse._checks)."""
    check_x(x, check_finite, params.d_in)
    out = _apply_jit(flat(x), params)
    return out if x.ndim == 2 else out.reshape(*x.shape[:-1], out.shape[-1])


_apply_jit = jax.jit(apply_unchecked)
