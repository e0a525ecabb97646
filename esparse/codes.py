"""Forms of a k-winners-take-all code other than the dense array: top-k indices, BCOO, packed bits.

A k-WTA output of width m has exactly k nonzeros per row (`esparse.sparsify`), so it is
stored more cheaply as
- indices form: `values` and `indices`, each (..., k), indices ascending within a row (the
  order of a left-to-right scan of the winner mask);
- packed form: ceil(m / 32) uint32 words per row; bit j of the code is bit j % 32 (least
  significant first) of word j // 32, and the unused high bits of the last word are 0.

This module converts between the forms and applies a linear readout to the indices form
directly (a gather of k rows of the weights instead of a dense (m, out) matmul). Used for the
sparse codes of expand-and-sparsify (Dasgupta et al., Science 2017) and FlyHash search.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import sparse

from esparse import _checks

__all__ = [
    "WORD_BITS",
    "check_words",
    "indices_readout",
    "indices_to_bcoo",
    "indices_to_dense",
    "mask_to_indices",
    "n_words",
    "pack_bits",
    "unpack_bits",
    "words_to_indices",
]

WORD_BITS = 32


def n_words(m: int) -> int:
    """Number of uint32 words of a packed code of m bits: ceil(m / 32)."""
    return -(-m // WORD_BITS)


# ---- packed bits ---------------------------------------------------------------------------


@jax.jit
def _pack(code: jax.Array) -> jax.Array:
    m = code.shape[-1]
    words = n_words(m)
    bits = (code != 0).astype(jnp.uint32)
    bits = jnp.pad(bits, [(0, 0)] * (code.ndim - 1) + [(0, words * WORD_BITS - m)])
    bits = bits.reshape(*code.shape[:-1], words, WORD_BITS)
    shifts = jnp.arange(WORD_BITS, dtype=jnp.uint32)
    return jnp.sum(bits << shifts, axis=-1, dtype=jnp.uint32)  # distinct bits: sum == or


def pack_bits(code: jax.Array) -> jax.Array:
    """Pack a binary code: (..., m), nonzero = 1 -> (..., ceil(m / 32)) uint32.

    Bit j of a row is bit j % 32 of word j // 32 (least significant bit first); the padding
    bits of the last word are 0. `unpack_bits(pack_bits(c), m) == (c != 0)` exactly.
    """
    if getattr(code, "ndim", 0) < 1 or code.shape[-1] == 0:
        raise ValueError(f"code must have a non-empty last axis, got shape {jnp.shape(code)}")
    return _pack(jnp.asarray(code))


def check_words(name: str, words: jax.Array, m: int) -> None:
    """Raise unless `words` is a uint32 array whose last axis holds ceil(m / 32) words."""
    if getattr(words, "ndim", 0) < 1:
        raise ValueError(f"{name} must be an array of packed uint32 words, got {words!r}")
    if words.dtype != jnp.uint32:
        raise ValueError(f"{name} must have dtype uint32 (packed codes), got {words.dtype}")
    if words.shape[-1] != n_words(m):
        raise ValueError(
            f"{name} has {words.shape[-1]} words per row, but a code of m={m} bits needs "
            f"ceil(m / 32) = {n_words(m)}"
        )


@functools.partial(jax.jit, static_argnums=(1, 2))
def _unpack(words: jax.Array, m: int, dtype) -> jax.Array:
    shifts = jnp.arange(WORD_BITS, dtype=jnp.uint32)
    bits = (words[..., None] >> shifts) & jnp.uint32(1)
    return bits.reshape(*words.shape[:-1], -1)[..., :m].astype(dtype)


def unpack_bits(words: jax.Array, m: int, dtype: jax.typing.DTypeLike = jnp.uint8) -> jax.Array:
    """Unpack codes: (..., ceil(m / 32)) uint32 -> (..., m) 0/1 in `dtype` (bit order as in
    `pack_bits`)."""
    m = _checks.positive_int("m", m)
    check_words("words", words, m)
    return _unpack(words, m, jnp.dtype(dtype))


# ---- indices form --------------------------------------------------------------------------


def _select_bit(word: jax.Array, r: jax.Array) -> jax.Array:
    """Position of the r-th (0-based) set bit of each uint32 word: 5 halving steps."""
    pos = jnp.zeros_like(r)
    for width in (16, 8, 4, 2, 1):
        low = lax.population_count(word & jnp.uint32((1 << width) - 1)).astype(jnp.int32)
        up = r >= low
        pos = pos + jnp.where(up, width, 0)
        r = jnp.where(up, r - low, r)
        word = jnp.where(up, word >> width, word)
    return pos


@functools.partial(jax.jit, static_argnums=(1, 2))
def _words_to_indices(words: jax.Array, k: int, m: int) -> jax.Array:
    lead, w = words.shape[:-1], words.shape[-1]
    words = words.reshape(-1, w)
    count = lax.population_count(words).astype(jnp.int32)
    total = jnp.cumsum(count, axis=1)  # set bits up to and including each word
    slots = jnp.arange(k, dtype=jnp.int32)
    # the word holding the s-th set bit: the number of words whose running total is <= s
    find = jax.vmap(lambda c: jnp.searchsorted(c, slots, side="right", method="scan_unrolled"))
    word_of = jnp.minimum(find(total).astype(jnp.int32), w - 1)
    before = jnp.take_along_axis(total - count, word_of, axis=1)
    bit = _select_bit(jnp.take_along_axis(words, word_of, axis=1), slots[None] - before)
    indices = jnp.where(slots[None] < total[:, -1:], word_of * WORD_BITS + bit, m)
    return indices.reshape(*lead, k)


def words_to_indices(words: jax.Array, m: int, k: int) -> jax.Array:
    """Packed codes -> the positions of their first k set bits, ascending.

    words: (..., ceil(m / 32)) uint32 -> (..., k) int32; a row with fewer than k bits set
    gets m in its unused slots. No sort and no pass over m positions: a running count of
    bits per word, a binary search of each slot's word, and the slot's bit in its word.
    """
    m = _checks.positive_int("m", m)
    check_words("words", words, m)
    k = _checks.int_in_range("k", k, 1, m)
    return _words_to_indices(words, k, m)


def mask_to_indices(mask: jax.Array, k: int) -> jax.Array:
    """Positions of the True entries of a mask with exactly k per row, ascending.

    mask: (..., m) bool -> (..., k) int32. A row with fewer than k True entries gets m in its
    unused slots; with more, its first k. Packs the mask (`pack_bits`), then
    `words_to_indices`. Used to turn a k-WTA mask into the indices form.
    """
    if getattr(mask, "ndim", 0) < 1 or mask.dtype != jnp.bool_:
        raise ValueError(f"mask must be a bool array, got {getattr(mask, 'dtype', mask)!r}")
    m = mask.shape[-1]
    k = _checks.int_in_range("k", k, 1, m)
    return _words_to_indices(_pack(mask), k, m)


def _check_pair(values, indices, m: int | None = None) -> None:
    if getattr(indices, "ndim", 0) < 1 or not jnp.issubdtype(indices.dtype, jnp.integer):
        raise ValueError(
            f"indices must be an integer array, got {getattr(indices, 'dtype', indices)!r}"
        )
    if jnp.shape(values) != indices.shape:
        raise ValueError(
            f"values and indices must have the same shape, got {jnp.shape(values)} and "
            f"{indices.shape}"
        )
    if m is not None and indices.shape[-1] > m:
        raise ValueError(f"m must be at least k={indices.shape[-1]}, got {m}")


@functools.partial(jax.jit, static_argnums=2)
def _to_dense(values, indices, m):
    lead, k = indices.shape[:-1], indices.shape[-1]
    rows = jnp.arange(indices.size // max(k, 1))[:, None]
    out = jnp.zeros((rows.shape[0], m), values.dtype)
    out = out.at[rows, indices.reshape(-1, k)].set(values.reshape(-1, k), mode="drop")
    return out.reshape(*lead, m)


def indices_to_dense(values: jax.Array, indices: jax.Array, m: int) -> jax.Array:
    """Indices form -> dense: values, indices (..., k) -> (..., m), zeros elsewhere."""
    m = _checks.positive_int("m", m)
    _check_pair(values, indices, m)
    return _to_dense(jnp.asarray(values), jnp.asarray(indices), m)


def indices_to_bcoo(values: jax.Array, indices: jax.Array, m: int) -> sparse.BCOO:
    """Indices form -> `jax.experimental.sparse.BCOO` of shape (..., m).

    The leading axes are batch dimensions (n_batch = ndim - 1), one sparse axis of size m with
    k stored entries per row, sorted and unique: `.todense()` equals `indices_to_dense`.
    """
    m = _checks.positive_int("m", m)
    _check_pair(values, indices, m)
    shape = (*indices.shape[:-1], m)
    return sparse.BCOO(
        (jnp.asarray(values), jnp.asarray(indices)[..., None]),
        shape=shape,
        indices_sorted=True,
        unique_indices=True,
    )


@jax.jit
def _readout(values, indices, weights):
    rows = jnp.take(weights, indices, axis=0, mode="clip")  # (..., k, out)
    prec = lax.Precision.HIGHEST
    return jnp.einsum("...k,...ko->...o", values.astype(weights.dtype), rows, precision=prec)


def indices_readout(values: jax.Array, indices: jax.Array, weights: jax.Array) -> jax.Array:
    """Linear readout of a code in indices form: sum_s values[..., s] * weights[indices[..., s]].

    values, indices: (..., k); weights: (m, out) -> (..., out). Equals
    `indices_to_dense(values, indices, m) @ weights` at k / m of the dense matmul's work: the k
    rows of the weights are gathered and summed, value-weighted.
    """
    _checks.ndim("weights", weights, 2)
    _check_pair(values, indices, weights.shape[0])
    return _readout(jnp.asarray(values), jnp.asarray(indices), jnp.asarray(weights))
