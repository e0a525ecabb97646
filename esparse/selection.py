"""Exact per-row selection of the k largest entries, by the method fastest on each backend.

Every method gives the same winners: the k largest values of each row, and among entries
equal to the k-th largest value the lowest indices (a stable sort by decreasing value);
-0.0 and +0.0 count as equal, and so do subnormals and zero (XLA:CPU flushes subnormals in
comparisons). Rows holding a NaN or an inf are poisoned: their output is all NaN ("values",
"binary") or all False ("mask"), never a plausible set of winners (esparse._checks).

Methods:
- "search" (`by_search`): per block of rows kept in a CPU cache, find a threshold t with
  exactly k entries >= t. Every probe of a threshold is one counting reduction over the
  block, and every phase keeps a bracket [lo, hi) per row with count(>= lo) >= k >
  count(>= hi):
  1. four probes around the Gaussian quantile mean + std * z(1 - k / width), from the moments
     of a strided column sample (a guess only: exactness never depends on it);
  2. three single-probe interpolation passes between the bracket ends (a side still open
     steps out by the fit's slope, doubling);
  3. extraction: a row with few entries left in its bracket pulls them out one per pass
     from the nearer end (maxima below hi or minima from lo), then one count confirms;
  4. rows not yet exact (ties, or data the guesses did not fit) continue with a safeguarded
     regula falsi that falls back to bisection on the order-preserving integer image of the
     float bits, snapping bracket ends to data values when bisecting; any input terminates
     within about 2 * (32 + log2(width)) passes. The search stops when count(>= lo) == k or
     lo and hi are adjacent floats (ties at lo: a cumsum over the tied entries picks the
     first). Phases 1-3 have fixed pass counts, so on Gaussian-like rows (random
     projections) a block costs about 10 passes with little loop control.
- "top_k" (`by_top_k`): the k-th value of `lax.top_k` as the threshold, then the same tie
  rule. XLA:CPU lowers top_k to a sort (5x slower than the search); XLA:GPU dispatches it to a
  radix select, near memory bandwidth, where the search would be hundreds of small
  sequential kernels (lax.map over blocks, data-dependent while loops).
- "auto": `AUTO[platform]` inside one jitted function (`lax.platform_dependent`), so the
  choice follows the backend a program is compiled for.

Reference: k-WTA as the sparsification step of expand-and-sparsify, Dasgupta et al.,
"A neural algorithm for a fundamental computing problem", Science 2017.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import ndtri

__all__ = [
    "AUTO",
    "METHODS",
    "Method",
    "Mode",
    "by_platform",
    "by_search",
    "by_top_k",
    "order_key",
    "select",
    "top_k_keys",
]

Method = Literal["auto", "search", "top_k"]  # how the winners are found (module docstring)
Mode = Literal["mask", "values", "binary"]  # what `select` returns
METHODS: tuple[str, ...] = get_args(Method)
# The method "auto" runs, by platform; "default" covers GPU (cuda, rocm) and TPU. TPU: top_k
# as well, since lax.approx_max_k is not exact and its fix-up would need the search's passes.
AUTO = {"cpu": "search", "default": "top_k"}

_IMIN = np.int32(np.iinfo(np.int32).min)
_IMAX = np.int32(np.iinfo(np.int32).max)
_ROW_BLOCK = 16  # 16 rows x 8192 float32 = 512 KiB: one block stays in L2 during the search


_TINY = np.float32(np.finfo(np.float32).tiny)
_TINY_KEY = np.int32(np.float32(_TINY).view(np.int32))
# keys of -inf and +inf: probes stay within them (keys outside are NaNs, which compare false)
_KEY_NEG_INF = np.int32(np.float32(-np.inf).view(np.int32) ^ np.int32(0x7FFFFFFF))
_KEY_POS_INF = np.int32(np.float32(np.inf).view(np.int32))


def order_key(v: jax.Array) -> jax.Array:
    """The order map of every exact selection: float -> int32 with the same order.

    v: any shape, floating (cast to float32) -> int32 of v's shape, with
    order_key(a) < order_key(b) iff a < b as float32 compares them. -0.0, +0.0 and subnormals
    all map to 0 (XLA's CPU backend flushes subnormals to zero in comparisons, so they tie with
    zero there). +inf and -inf map to the largest and smallest keys of a number; a NaN maps
    outside them (above +inf for a NaN with the sign bit clear). Integer keys make the k-th
    largest value a bisection on 32 bits (`top_k_keys`) and let a search step between
    adjacent floats (+1 on the key).
    """
    v = jnp.asarray(v).astype(jnp.float32)
    b = lax.bitcast_convert_type(v, jnp.int32)
    key = b ^ ((b >> 31) & jnp.int32(0x7FFFFFFF))
    return jnp.where(jnp.abs(v) < _TINY, jnp.int32(0), key)


@jax.jit
def top_k_keys(keys: jax.Array, k: int | jax.Array) -> jax.Array:
    """Bool mask of the k largest of a flat array of integer keys; ties to the lower index.

    keys: (n,) int32 (e.g. `order_key(x)`) or uint32 (e.g. random bits), compared as integers
    of their dtype; k: int in [0, n], may be traced (so pruning rounds can run in a
    `lax.scan`). Exactly k entries are True: the k-th largest key is found by a 32-step
    bisection on its bits (one counting pass per bit, no sort), entries above it win and the
    first of those equal to it fill the rest. Inputs are not validated here (the public mask
    functions do that).
    """
    if keys.dtype == jnp.int32:  # the order of int32 is that of uint32 with the sign bit flipped
        keys = lax.bitcast_convert_type(keys, jnp.uint32) ^ jnp.uint32(0x80000000)
    k = jnp.asarray(k, jnp.int32)

    def bit(i, t):
        candidate = t | (jnp.uint32(1) << (31 - i).astype(jnp.uint32))
        return jnp.where(jnp.sum(keys >= candidate) >= k, candidate, t)

    threshold = lax.fori_loop(0, 32, bit, jnp.uint32(0))  # the k-th largest key
    above = keys > threshold
    tie = keys == threshold
    return above | (tie & (jnp.cumsum(tie) <= k - jnp.sum(above)))


def _to_value(key: jax.Array) -> jax.Array:
    """A threshold for `key`: x >= _to_value(key) iff order_key(x) >= key (for finite x)."""
    v = lax.bitcast_convert_type(key ^ ((key >> 31) & jnp.int32(0x7FFFFFFF)), jnp.float32)
    v = jnp.where((key > 0) & (key < _TINY_KEY), _TINY, v)
    return jnp.where((key <= 0) & (key > -_TINY_KEY), jnp.float32(0.0), v)


def _finish(x: jax.Array, mask: jax.Array, mode: str, ok: jax.Array) -> jax.Array:
    """The output of `mode` ("mask", "values" or "binary") for x: (rows, n) and its mask;
    rows where ok: (rows,) is False are poisoned (all False, or all NaN)."""
    ok = ok[:, None]
    if mode == "mask":
        return mask & ok
    nan = jnp.full((), jnp.nan, x.dtype)
    if mode == "binary":
        return jnp.where(ok, mask.astype(x.dtype), nan)
    return jnp.where(ok, jnp.where(mask, x, jnp.zeros((), x.dtype)), nan)


def _sanitized(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x: (rows, n) as float32 with NaN and inf replaced by 0, and (rows,) all-finite flags."""
    finite = jnp.isfinite(x)
    return jnp.where(finite, x, 0).astype(jnp.float32), jnp.all(finite, axis=1)


# Bracket state per row, keys as in order_key: (lo, hi, clo, chi) with
# clo = count(x >= lo) >= k > chi = count(x >= hi). Sentinels _IMIN / _IMAX stand for -inf / +inf.
_GUESS_OFFSETS = (-2.0, -0.7, 0.7, 2.0)  # first probes: Gaussian quantile +- multiples of sqrt(n)
_INTERPOLATIONS = 3  # single-probe interpolation passes after the guesses
_MAX_EXTRACTIONS = 6  # rows needing more band extractions go to the general search


def _clip_probe(t: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
    """Probe keys strictly inside (lo, hi) where there is room, and never a NaN's key."""
    t = jnp.clip(t, lo + 1, jnp.maximum(hi - 1, lo + 1))
    return jnp.clip(t, _KEY_NEG_INF, _KEY_POS_INF)


def _mid(lo: jax.Array, hi: jax.Array) -> jax.Array:
    """Midpoint of two int32 keys without overflow."""
    return (lo >> 1) + (hi >> 1) + (lo & hi & 1)


def _value_probes(probes: jax.Array, state: tuple) -> jax.Array:
    """Keys of probe values (P, rows); one that is not finite becomes the bracket's midpoint."""
    return jnp.where(jnp.isfinite(probes), order_key(probes), _mid(state[0], state[1]))


def _probe(x: jax.Array, k: jax.Array, state: tuple, ts: jax.Array) -> tuple:
    """Count x >= each probe key, ts: (P, rows), one reduction each; tighten the bracket."""
    lo, hi, clo, chi = state
    ts = _clip_probe(ts, lo, hi)
    c = jnp.sum(jnp.where(x[None] >= _to_value(ts)[:, :, None], 1.0, 0.0), axis=2)
    c = c.astype(jnp.int32)
    ok = c >= k
    return (
        jnp.maximum(lo, jnp.max(jnp.where(ok, ts, _IMIN), axis=0)),
        jnp.minimum(hi, jnp.min(jnp.where(ok, _IMAX, ts), axis=0)),
        jnp.minimum(clo, jnp.min(jnp.where(ok, c, _IMAX), axis=0)),
        jnp.maximum(chi, jnp.max(jnp.where(ok, -1, c), axis=0)),
    )


def _done(state: tuple, k: jax.Array) -> jax.Array:
    """(rows,) bool: the bracket is final (exactly k at lo, or lo and hi adjacent: a tie)."""
    lo, hi, clo, _ = state
    return (clo == k) | (lo + 1 >= hi)


def _guess_and_interpolate(x: jax.Array, k: jax.Array, state: tuple) -> tuple:
    """Probes at Gaussian quantiles of a strided column sample's moments, then interpolation
    in value space between the bracket ends; a row whose bracket is still open on one side
    steps out from its finite end by the Gaussian fit's slope, doubling each pass. A fixed
    number of passes: no loop control per pass."""
    n = x.shape[1]
    sample = x[:, :: max(1, n // 1024)]
    mean = jnp.mean(sample, axis=1)
    std = jnp.sqrt(jnp.mean(jnp.square(sample - mean[:, None]), axis=1))
    z = ndtri(1.0 - (k.astype(jnp.float32) - 0.5) / n)
    density = np.sqrt(n / (2 * np.pi)) * jnp.exp(-0.5 * z * z)  # counts per unit z / sqrt(n)
    dz = 1.0 / jnp.maximum(density, 1.0)
    guesses = jnp.stack([mean + std * (z + o * dz) for o in _GUESS_OFFSETS])
    state = _probe(x, k, state, _value_probes(guesses, state))
    per_value = np.sqrt(n) * density / std  # counts per unit value, from the fit

    def interpolate(i, state):
        lo, hi, clo, chi = state
        v_lo, v_hi = _to_value(lo), _to_value(hi)
        frac = (clo - k).astype(jnp.float32) / jnp.maximum(clo - chi, 1).astype(jnp.float32)
        t = v_lo + (v_hi - v_lo) * frac
        gallop = jnp.exp2((i + 1).astype(jnp.float32)) / per_value
        t = jnp.where(hi == _IMAX, v_lo + gallop * (clo - k).astype(jnp.float32), t)
        t = jnp.where(lo == _IMIN, v_hi - gallop * (k - chi).astype(jnp.float32), t)
        return _probe(x, k, state, _value_probes(t[None], state))

    return lax.fori_loop(0, _INTERPOLATIONS, interpolate, state)


def _extract(x: jax.Array, k: jax.Array, state: tuple) -> tuple:
    """Finish rows whose bracket holds few entries by pulling them out one per pass.

    Of the clo - chi entries in [lo, hi), the top k - chi win and the bottom clo - k lose;
    a row takes the shorter way: repeated maxima below hi, or minima from lo up. One
    reduction per pass, then one count at the threshold found (ties make it inexact; such
    rows keep a valid bracket for the general search).
    """
    lo, hi, clo, chi = state
    r_top, r_bot = k - chi, clo - k
    need = jnp.where(_done(state, k), 0, jnp.minimum(r_top, r_bot))
    need = jnp.where(need > _MAX_EXTRACTIONS, 0, need)
    top = (r_top <= r_bot)[:, None]
    signed = jnp.where(top, x, -x)

    def extract(i, bounds):
        cap, floor = bounds  # top rows: entries < cap; bottom rows: entries >= floor
        inside = jnp.where(top, x < _to_value(cap)[:, None], x >= _to_value(floor)[:, None])
        v = jnp.max(jnp.where(inside, signed, -jnp.inf), axis=1)
        active = i < need
        cap = jnp.where(active & top[:, 0], order_key(v), cap)
        floor = jnp.where(active & ~top[:, 0], order_key(-v) + 1, floor)
        return cap, floor

    cap, floor = lax.fori_loop(0, jnp.max(need), extract, (hi, lo))
    t = jnp.where(need > 0, jnp.where(top[:, 0], cap, floor), _mid(lo, hi))
    return _probe(x, k, state, t[None])


def _search(x: jax.Array, k: jax.Array, state: tuple) -> tuple:
    """From a valid bracket, probe until every row is exact (clo == k) or its ends are
    adjacent keys (a tie at lo): safeguarded regula falsi (Illinois), with a bisection on the
    keys after a step that fails to halve the count gap. Bisection passes also snap the
    bracket ends to the data values on either side, so a run of ties is isolated at once.
    Any input terminates within about 2 * (32 + log2(n)) passes."""
    rows = x.shape[0]

    def counted(state, t, snap):
        lo, hi, clo, chi = state
        above = x >= _to_value(t)[:, None]
        c = jnp.sum(jnp.where(above, 1.0, 0.0), axis=1).astype(jnp.int32)
        new_lo, new_hi = t, t
        if snap:
            new_lo = order_key(jnp.min(jnp.where(above, x, jnp.inf), axis=1))
            new_hi = order_key(jnp.max(jnp.where(above, -jnp.inf, x), axis=1)) + 1
        ok = c >= k
        better_lo = ok & (t > lo)
        better_hi = ~ok & (t < hi)
        return (
            jnp.where(better_lo, new_lo, lo),
            jnp.where(better_hi, new_hi, hi),
            jnp.where(better_lo, c, clo),
            jnp.where(better_hi, c, chi),
        )

    def cond(carry):
        return jnp.any(~_done(carry[:4], k))

    def body(carry):
        lo, hi, clo, chi, s_lo, s_hi, last, bisect = carry
        v_lo, v_hi = _to_value(lo), _to_value(hi)
        f_lo = (clo - k).astype(jnp.float32) * s_lo
        f_hi = (chi - k).astype(jnp.float32) * s_hi
        t_val = v_lo + (v_hi - v_lo) * (f_lo / (f_lo - f_hi))
        use_mid = bisect | ~jnp.isfinite(t_val) | (lo == _IMIN) | (hi == _IMAX)
        t = _clip_probe(jnp.where(use_mid, _mid(lo, hi), order_key(t_val)), lo, hi)
        old = (lo, hi, clo, chi)
        finished = _done(old, k)
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
        last = jnp.where(moved_lo, 1, jnp.where(moved_hi, 2, last))
        # Safeguard: a step that did not halve the count gap is followed by a bisection.
        bisect = ~use_mid & (2 * (n_clo - n_chi) > clo - chi)
        return n_lo, n_hi, n_clo, n_chi, s_lo, s_hi, last, bisect

    ones = jnp.ones((rows,), jnp.float32)
    init = (*state, ones, ones, jnp.zeros((rows,), jnp.int32), jnp.zeros((rows,), bool))
    return lax.while_loop(cond, body, init)[:4]


def _block_select(x: jax.Array, k: int, mode: str) -> jax.Array:
    """x: (rows, n) -> (rows, n) k-WTA output of `mode`, exactly k winners per finite row."""
    rows, n = x.shape
    x_in, (x, ok) = x, _sanitized(x)
    kk = jnp.int32(k)
    state = (
        jnp.full((rows,), _IMIN, jnp.int32),
        jnp.full((rows,), _IMAX, jnp.int32),
        jnp.full((rows,), n, jnp.int32),
        jnp.zeros((rows,), jnp.int32),
    )
    state = _extract(x, kk, _guess_and_interpolate(x, kk, state))
    lo, hi, clo, chi = _search(x, kk, state)
    # lo is still the -inf sentinel only where k = n: every entry wins
    t_lo = jnp.where(lo == _IMIN, -jnp.inf, _to_value(lo))[:, None]

    def exact(_):
        return _finish(x_in, x >= t_lo, mode, ok)

    def with_ties(_):
        # clo > k only where lo and hi are adjacent floats: the band is the tie at lo, and
        # its first k - chi entries win. Rows with clo == k keep x >= lo.
        tied = (clo > kk)[:, None]
        t_hi = _to_value(hi)[:, None]
        above = x >= t_lo
        band = tied & above & (x < t_hi)
        rank = jnp.cumsum(band, axis=1, dtype=jnp.int32)
        mask = jnp.where(tied, (x >= t_hi) | (band & (rank <= (kk - chi)[:, None])), above)
        return _finish(x_in, mask, mode, ok)

    return lax.cond(jnp.all(clo == kk), exact, with_ties, None)


def _row_block(rows: int) -> int:
    """Largest divisor of `rows` not above _ROW_BLOCK."""
    return max(b for b in range(1, min(rows, _ROW_BLOCK) + 1) if rows % b == 0)


def by_search(x2: jax.Array, k: int, mode: str) -> jax.Array:
    """The threshold search (module docstring): x2: (rows, n) -> (rows, n) output of `mode`.

    lax.map over blocks of _ROW_BLOCK rows, each kept in a CPU cache during its search."""
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


def by_top_k(x2: jax.Array, k: int, mode: str) -> jax.Array:
    """The k-th largest value of each row from `lax.top_k` as the threshold, then the search's
    tie rule: entries above it win, and the first of those equal to it fill the rest.

    x2: (rows, n) -> (rows, n) output of `mode`; k: int in [1, n].
    """
    x, ok = _sanitized(x2)
    # the minimum of the top k, not its last column: XLA:CPU rewrites top_k followed by a
    # slice of one column into a full sort (measured 9x slower at (512, 2048), k = 102)
    kth = jnp.min(lax.top_k(x, k)[0], axis=1, keepdims=True)
    above = x > kth
    tied = x == kth
    need = k - jnp.sum(above, axis=1, keepdims=True, dtype=jnp.int32)
    rank = jnp.cumsum(tied, axis=1, dtype=jnp.int32)
    return _finish(x2, above | (tied & (rank <= need)), mode, ok)


_IMPLS = {"search": by_search, "top_k": by_top_k}


def by_platform(make: Callable[[str], Callable], *args: jax.Array) -> jax.Array:
    """`lax.platform_dependent` over the platforms of AUTO: make(platform) -> fn(*args).

    Each branch runs in `jax.named_scope("esparse_auto:<platform>")`, so a lowered module
    says which branch it holds (`esparse.exporting` checks it is not the CPU one on GPU/TPU).
    """

    def scoped(platform: str) -> Callable:
        fn = make(platform)

        def branch(*a):
            with jax.named_scope(f"esparse_auto:{platform}"):
                return fn(*a)

        return branch

    return lax.platform_dependent(*args, **{p: scoped(p) for p in AUTO})


def select(x2: jax.Array, k: int, mode: Mode, method: Method = "auto") -> jax.Array:
    """Exactly k winners per row (module docstring). x2: (rows, n) -> (rows, n).

    k: static int in [1, n]. mode: "mask" (bool), "values" (x at the winners, 0 elsewhere) or
    "binary" (1 at the winners, in x's dtype). method: one of METHODS. Traceable; inputs are
    not validated here (the public kwta functions do that).
    """
    if method != "auto":
        return _IMPLS[method](x2, k, mode)

    def make(platform):
        return lambda x: _IMPLS[AUTO[platform]](x, k, mode)

    return by_platform(make, x2)
