"""k-winners-take-all (kWTA) sparsification per row, with straight-through gradients.

Tie policy: every row keeps exactly k entries. The winners are the k largest values; among
entries equal to the k-th largest value, the lowest indices win (the order of a stable sort
by decreasing value). -0.0 and +0.0 count as equal. NaN inputs give undefined winners.

Selection algorithm (the point of this module). XLA's `lax.top_k` sorts on CPU, which costs
more than the matmul that usually precedes it. Instead, per block of rows kept in cache, we
search for a threshold t with exactly k entries >= t, counting entries >= t in one pass per
probe:
1. one pass for per-row min, max, mean and std; three probes around the Gaussian quantile
   mean + std * z(1 - k / width) (a guess only: exactness never depends on it);
2. safeguarded regula falsi (Illinois variant) in value space on the bracket [lo, hi) with
   counts(>= lo) >= k > counts(>= hi); a step that fails to halve the count gap is followed by
   a bisection on the order-preserving integer image of the float bits, so any input
   terminates within about 2 * (32 + log2(width)) passes;
3. the search stops when counts(>= lo) == k (mask = x >= lo) or when lo and hi are adjacent
   floats (ties at lo); only in the second case is a cumsum over the tied entries computed.
On Gaussian-like rows (random projections) a block of 16 rows takes about 10 passes, the
three guesses included (the block runs until its slowest row is exact).

Reference: k-WTA as the sparsification step of expand-and-sparsify, Dasgupta et al.,
"A neural algorithm for a fundamental computing problem", Science 2017.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import ndtri

from esparse import _checks

__all__ = ["kwta", "kwta_binary", "kwta_binary_st", "kwta_mask", "kwta_st"]

_IMIN = np.int32(np.iinfo(np.int32).min)
_IMAX = np.int32(np.iinfo(np.int32).max)
_ROW_BLOCK = 16  # 16 rows x 8192 float32 = 512 KiB: one block stays in L2 during the search


_TINY = np.float32(np.finfo(np.float32).tiny)
_TINY_KEY = np.int32(np.float32(_TINY).view(np.int32))


def _to_key(v: jax.Array) -> jax.Array:
    """float32 -> int32 with the same order; -0.0, +0.0 and subnormals all map to 0.

    Subnormals count as zero because XLA's CPU backend flushes them to zero in comparisons.
    """
    b = lax.bitcast_convert_type(v, jnp.int32)
    key = b ^ ((b >> 31) & jnp.int32(0x7FFFFFFF))
    return jnp.where(jnp.abs(v) < _TINY, jnp.int32(0), key)


def _to_value(key: jax.Array) -> jax.Array:
    """A threshold for `key`: x >= _to_value(key) iff _to_key(x) >= key (for finite x)."""
    v = lax.bitcast_convert_type(key ^ ((key >> 31) & jnp.int32(0x7FFFFFFF)), jnp.float32)
    v = jnp.where((key > 0) & (key < _TINY_KEY), _TINY, v)
    return jnp.where((key <= 0) & (key > -_TINY_KEY), jnp.float32(0.0), v)


def _finish(x: jax.Array, mask: jax.Array, mode: str) -> jax.Array:
    """The output of `mode` ("mask", "values" or "binary") for x: (rows, n) and its mask."""
    if mode == "mask":
        return mask
    if mode == "binary":
        return mask.astype(x.dtype)
    return jnp.where(mask, x, jnp.zeros((), x.dtype))


def _block_select(x: jax.Array, k: jax.Array, mode: str) -> jax.Array:
    """x: (rows, n) -> (rows, n) k-WTA output of `mode`, exactly k winners per row.

    k: int32 scalar in [1, n], traced (one compilation serves every k).
    """
    rows, n = x.shape
    x_in, x = x, x.astype(jnp.float32)

    def counted(state, t, snap):
        """Probe key t: (rows,) on every row of the bracket `state` (one pass over x).

        With snap, the pass also finds the data values on either side of t and moves the
        bracket ends onto them, so a run of ties at the k-th value is isolated at once.
        """
        lo, hi, clo, chi = state
        tv = _to_value(t)[:, None]
        above = x >= tv
        c = jnp.sum(jnp.where(above, 1.0, 0.0), axis=1).astype(jnp.int32)
        new_lo, new_hi = t, t
        if snap:
            new_lo = _to_key(jnp.min(jnp.where(above, x, jnp.inf), axis=1))
            new_hi = _to_key(jnp.max(jnp.where(above, -jnp.inf, x), axis=1)) + 1
        ok = c >= k
        better_lo = ok & (t > lo)
        better_hi = ~ok & (t < hi)
        return (
            jnp.where(better_lo, new_lo, lo),
            jnp.where(better_hi, new_hi, hi),
            jnp.where(better_lo, c, clo),
            jnp.where(better_hi, c, chi),
        )

    # Bracket invariant: count(>= lo) = clo >= k > chi = count(>= hi); keys as in _to_key.
    state = (
        jnp.full((rows,), _IMIN, jnp.int32),
        jnp.full((rows,), _IMAX, jnp.int32),
        jnp.full((rows,), n, jnp.int32),
        jnp.zeros((rows,), jnp.int32),
    )
    # The first three probes: Gaussian quantiles from the moments of a strided column sample.
    sample = x[:, :: max(1, n // 1024)]
    mean = jnp.mean(sample, axis=1)
    std = jnp.sqrt(jnp.mean(jnp.square(sample - mean[:, None]), axis=1))
    z = ndtri(1.0 - (k.astype(jnp.float32) - 0.5) / n)
    dz = 1.0 / jnp.maximum(np.sqrt(n / (2 * np.pi)) * jnp.exp(-0.5 * z * z), 1.0)
    guesses = jnp.stack([_to_key(mean + std * (z + off)) for off in (-dz, 0.0, dz)])

    def done(lo, hi, clo):
        return (clo == k) | (lo + 1 >= hi)

    def cond(state):
        lo, hi, clo = state[:3]
        return jnp.any(~done(lo, hi, clo))

    def body(state):
        lo, hi, clo, chi, s_lo, s_hi, last, bisect, step = state
        v_lo, v_hi = _to_value(lo), _to_value(hi)
        f_lo = (clo - k).astype(jnp.float32) * s_lo
        f_hi = (chi - k).astype(jnp.float32) * s_hi
        t_val = v_lo + (v_hi - v_lo) * (f_lo / (f_lo - f_hi))
        mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)
        guessing = step < guesses.shape[0]
        use_mid = ~guessing & (bisect | ~jnp.isfinite(t_val) | (lo == _IMIN) | (hi == _IMAX))
        t = jnp.where(use_mid, mid, _to_key(t_val))
        t = jnp.where(guessing, guesses[jnp.minimum(step, guesses.shape[0] - 1)], t)
        t = jnp.clip(t, lo + 1, jnp.maximum(hi - 1, lo + 1))
        finished = done(lo, hi, clo)
        old = (lo, hi, clo, chi)
        n_lo, n_hi, n_clo, n_chi = lax.cond(
            jnp.any(use_mid & ~finished),
            lambda: counted(old, t, snap=True),
            lambda: counted(old, t, snap=False),
        )
        # rows already finished keep their state
        n_lo, n_hi = jnp.where(finished, lo, n_lo), jnp.where(finished, hi, n_hi)
        n_clo, n_chi = jnp.where(finished, clo, n_clo), jnp.where(finished, chi, n_chi)
        moved_lo, moved_hi = n_lo != lo, n_hi != hi
        # Illinois: an endpoint kept twice in a row has its residual halved.
        s_hi = jnp.where(moved_lo & (last == 1), s_hi * 0.5, jnp.where(moved_hi, 1.0, s_hi))
        s_lo = jnp.where(moved_hi & (last == 2), s_lo * 0.5, jnp.where(moved_lo, 1.0, s_lo))
        last = jnp.where(guessing, 0, jnp.where(moved_lo, 1, jnp.where(moved_hi, 2, last)))
        # Safeguard: a step that did not halve the count gap is followed by a bisection.
        bisect = ~guessing & ~use_mid & (2 * (n_clo - n_chi) > clo - chi)
        return n_lo, n_hi, n_clo, n_chi, s_lo, s_hi, last, bisect, step + 1

    ones = jnp.ones((rows,), jnp.float32)
    init = (
        *state,
        ones,
        ones,
        jnp.zeros((rows,), jnp.int32),
        jnp.zeros((rows,), bool),
        jnp.int32(0),
    )
    lo, hi, clo, chi = lax.while_loop(cond, body, init)[:4]
    # lo is still the -inf sentinel only where k = n: every entry wins
    t_lo = jnp.where(lo == _IMIN, -jnp.inf, _to_value(lo))[:, None]

    def exact(_):
        return _finish(x_in, x >= t_lo, mode)

    def with_ties(_):
        # clo > k only where lo and hi are adjacent floats: the band is the tie at lo, and
        # its first k - chi entries win. Rows with clo == k keep x >= lo.
        tied = (clo > k)[:, None]
        t_hi = _to_value(hi)[:, None]
        above = x >= t_lo
        band = tied & above & (x < t_hi)
        rank = jnp.cumsum(band, axis=1, dtype=jnp.int32)
        mask = jnp.where(tied, (x >= t_hi) | (band & (rank <= (k - chi)[:, None])), above)
        return _finish(x_in, mask, mode)

    return lax.cond(jnp.all(clo == k), exact, with_ties, None)


def _row_block(rows: int) -> int:
    """Largest divisor of `rows` not above _ROW_BLOCK."""
    return max(b for b in range(1, min(rows, _ROW_BLOCK) + 1) if rows % b == 0)


def _select_rows(x2: jax.Array, k: jax.Array, mode: str) -> jax.Array:
    """x2: (rows, n) -> (rows, n) output of `mode`; lax.map over row blocks kept in cache."""
    rows, n = x2.shape
    rb = _row_block(rows)
    if rb == rows:
        return _block_select(x2, k, mode)
    pad = 0
    if rb < 4:  # awkward row count: pad to whole blocks rather than run tiny blocks
        rb = _ROW_BLOCK
        pad = -rows % rb
        x2 = jnp.pad(x2, ((0, pad), (0, 0)))
    out = lax.map(lambda b: _block_select(b, k, mode), x2.reshape(-1, rb, n))
    return out.reshape(-1, n)[:rows]


def _check(x, k) -> int:
    if getattr(x, "ndim", 0) < 1:
        raise ValueError(f"x must have at least 1 dimension, got shape {getattr(x, 'shape', x)}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must be a floating-point array, got dtype {x.dtype}")
    if x.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty last axis, got shape {x.shape}")
    _checks.finite("x", x)
    return _checks.resolve_count("k", k, x.shape[-1])


@functools.partial(jax.jit, static_argnums=2)
def _select(x: jax.Array, k: jax.Array, mode: str) -> jax.Array:
    """x: (..., n), k: int32 scalar (traced: no recompilation per k)."""
    n = x.shape[-1]
    return _select_rows(x.reshape(-1, n), k, mode).reshape(x.shape)


def kwta_mask(x: jax.Array, k: int | float) -> jax.Array:
    """Boolean mask of the k largest entries of each row. x: (..., n) -> (..., n) bool.

    k: int in [1, n], or a float fraction in (0, 1] of n (max(1, round(k * n))). Exactly k
    True per row; ties at the k-th value go to the lowest indices (module docstring).
    """
    k = _check(x, k)
    return _select(jnp.asarray(x), jnp.int32(k), "mask")


def kwta(x: jax.Array, k: int | float) -> jax.Array:
    """Keep the k largest entries of each row, zero the rest. x: (..., n) -> same shape/dtype."""
    k = _check(x, k)
    return _select(jnp.asarray(x), jnp.int32(k), "values")


def kwta_binary(x: jax.Array, k: int | float) -> jax.Array:
    """Binary k-WTA code: 1 at the k winners of each row, 0 elsewhere, in x's dtype."""
    k = _check(x, k)
    return _select(jnp.asarray(x), jnp.int32(k), "binary")


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _kwta_st(x, k):
    return kwta(x, k)


def _kwta_st_fwd(x, k):
    mask = kwta_mask(x, k)
    return jnp.where(mask, x, jnp.zeros((), x.dtype)), mask


def _kwta_st_bwd(k, mask, g):
    return (jnp.where(mask, g, jnp.zeros((), g.dtype)),)


_kwta_st.defvjp(_kwta_st_fwd, _kwta_st_bwd)


def kwta_st(x: jax.Array, k: int | float) -> jax.Array:
    """k-WTA whose gradient flows through the winners only. x: (..., n) -> same shape.

    Forward: `kwta(x, k)`. Backward: g * mask (the winner set is treated as constant, the
    derivative of the piecewise-linear map almost everywhere). Used for k-WTA layers
    (Ahmad & Scheinkman 2019, "How can we be so dense?").
    """
    k = _check(x, k)
    return _kwta_st(x, k)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _kwta_binary_st(x, k):
    return kwta_binary(x, k)


def _kwta_binary_st_fwd(x, k):
    return kwta_binary(x, k), None


def _kwta_binary_st_bwd(k, _, g):
    return (g,)


_kwta_binary_st.defvjp(_kwta_binary_st_fwd, _kwta_binary_st_bwd)


def kwta_binary_st(x: jax.Array, k: int | float) -> jax.Array:
    """Binary k-WTA code with the straight-through estimator. x: (..., n) -> same shape.

    Forward: `kwta_binary(x, k)`. Backward: identity (g passes unchanged), as in Bengio et
    al. 2013, "Estimating or propagating gradients through stochastic neurons"; the top-k
    masks of edge-popup (Ramanujan et al. 2020) use the same estimator.
    """
    k = _check(x, k)
    return _kwta_binary_st(x, k)
