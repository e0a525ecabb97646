"""Similarity hashing: FlyHash and sign-random-projection LSH codes, packed into uint32 words,
exact Hamming k-nearest-neighbour search by popcount, and the mean average precision of a
Hamming ranking against true nearest neighbours.

References: Dasgupta, Stevens & Navlakha, *A neural algorithm for a fundamental computing
problem* (Science 2017); Charikar, *Similarity estimation techniques from rounding algorithms*
(STOC 2002).

Codes are packed (`esparse.codes`): a code of m bits is (..., ceil(m / 32)) uint32, bit j in
bit j % 32 of word j // 32; `pack_bits` / `unpack_bits` convert from / to 0/1 arrays. The
Hamming distance of two codes is the popcount of their XOR summed over words. Every function
is jit- and vmap-friendly (sizes are static Python ints).
"""

from __future__ import annotations

import functools
import operator
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from esparse import _checks, projection, sparsify
from esparse.codes import pack_bits, unpack_bits

__all__ = [
    "flyhash",
    "hamming",
    "hamming_knn",
    "lsh",
    "mean_average_precision",
    "pack_bits",
    "true_neighbors",
    "unpack_bits",
]

_BIG = np.int32(np.iinfo(np.int32).max)
_SUB = 32  # codes per sub-block of hamming_knn's extraction tournament


def _check_points(name: str, x) -> None:
    """x: (n, d) floating, d >= 1."""
    _checks.ndim(name, x, 2)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name} must be a floating-point array, got dtype {x.dtype}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column, got shape {x.shape}")


def _check_index(name: str, idx, shape: tuple[int, ...], high: int) -> None:
    """Integer indices of `shape`; on the host also in [0, high) (device values not read)."""
    if getattr(idx, "shape", None) != shape or not jnp.issubdtype(idx.dtype, jnp.integer):
        raise ValueError(
            f"{name} must be int indices of shape {shape}, got "
            f"{getattr(idx, 'dtype', type(idx).__name__)} {getattr(idx, 'shape', '')}"
        )
    host = _checks.host_value(idx)
    if host is not None and host.size and (host.min() < 0 or host.max() >= high):
        bad = host[(host < 0) | (host >= high)].ravel()[0].item()
        raise ValueError(f"{name} must hold indices in [0, {high}), got {bad!r}")


def flyhash(
    key: jax.Array,
    x: jax.Array,
    m: int,
    k: int | None = None,
    c: int | None = None,
    *,
    fraction: float | None = None,
) -> jax.Array:
    """FlyHash codes: m binary units each summing c distinct random inputs, top k set to 1.

    x: (n, d) float -> packed (n, ceil(m / 32)) uint32, exactly k bits set per row (Dasgupta
    et al. 2017). Exactly one of k (an int count in [1, m]) and fraction= (a share in (0, 1]
    of m, as `sparsify.kwta_mask`); c: int in [1, d], required. m, k, fraction and c are
    static Python numbers (under jax.jit: static_argnums / functools.partial). The units
    are `projection.fly(key, d, m, c)` applied by gather-and-sum; the winners are
    `sparsify.kwta_mask` (ties go to the lower unit index), packed by `pack_bits`.
    """
    _check_points("x", x)
    m = _checks.positive_int("m", m)
    k = _checks.count_or_fraction(k, fraction, m, stacklevel=3)
    if c is None:
        raise ValueError("c, the number of inputs summed per unit, is required, got None")
    c = _checks.int_in_range("c", c, 1, x.shape[1])
    indices = projection.fly(key, x.shape[1], m, c)
    return pack_bits(sparsify.kwta_mask(projection.apply_fly(x, indices), k))


def lsh(key: jax.Array, x: jax.Array, bits: int) -> jax.Array:
    """Sign-random-projection LSH: bit j = (x @ G)[:, j] > 0 with G ~ N(0, 1) (d, bits).

    x: (n, d) float -> packed (n, ceil(bits / 32)) uint32; bits: a positive int.
    """
    _check_points("x", x)
    bits = _checks.positive_int("bits", bits)
    g = jax.random.normal(key, (x.shape[1], bits), x.dtype)
    return pack_bits(jnp.matmul(x, g, precision=lax.Precision.HIGHEST) > 0)


def _check_codes(name_a: str, a, name_b: str, b) -> None:
    for name, v in ((name_a, a), (name_b, b)):
        _checks.ndim(name, v, 2)
        if v.dtype != jnp.uint32:
            raise ValueError(f"{name} must be packed uint32 codes, got dtype {v.dtype}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same number of words per code, got "
            f"{a.shape[1]} and {b.shape[1]}"
        )


def _popcount_sum(a: jax.Array, b: jax.Array) -> jax.Array:
    """a, b: (W, ...) uint32, broadcastable after the word axis -> (...) int32, the sum over
    words of popcount(a ^ b). Unrolled over the words: elementwise, so XLA fuses it into its
    consumer and no distance array is written."""
    terms = (lax.population_count(a[w] ^ b[w]).astype(jnp.int32) for w in range(a.shape[0]))
    return functools.reduce(operator.add, terms)


@jax.jit
def _distances(a: jax.Array, b: jax.Array) -> jax.Array:
    """(q, W), (n, W) uint32 -> (q, n) int32."""
    return _popcount_sum(a.T[:, :, None], b.T[:, None, :])


def hamming(a: jax.Array, b: jax.Array) -> jax.Array:
    """Hamming distances between packed codes a: (q, W) and b: (n, W) uint32 -> (q, n) int32."""
    _check_codes("a", a, "b", b)
    return _distances(a, b)


def _merge(best_d, best_i, new_d, new_i):
    """Two lists (q, k) sorted by (distance, index), every new index above every best index
    -> the k first of their union, sorted the same way (ranks by counting, no sort)."""
    k = best_d.shape[1]
    slot = jnp.arange(k, dtype=jnp.int32)
    rank_best = slot + jnp.sum(new_d[:, None, :] < best_d[:, :, None], axis=2, dtype=jnp.int32)
    rank_new = slot + jnp.sum(best_d[:, None, :] <= new_d[:, :, None], axis=2, dtype=jnp.int32)
    rank = jnp.concatenate([rank_best, rank_new], axis=1)
    hit = rank[:, None, :] == slot[None, :, None]  # (q, k slots, 2k entries): one hit per slot
    pick = lambda v: jnp.sum(jnp.where(hit, v[:, None, :], 0), axis=2)  # noqa: E731
    return pick(jnp.concatenate([best_d, new_d], 1)), pick(jnp.concatenate([best_i, new_i], 1))


@functools.partial(jax.jit, static_argnums=(2, 3))
def _knn(database, queries, k: int, block: int):
    """block: a multiple of _SUB codes per scan step."""
    n, words = database.shape
    q, sentinel = queries.shape[0], 32 * words + 1
    n_blocks, subs = -(-n // block), block // _SUB
    blocks = jnp.pad(database, ((0, n_blocks * block - n), (0, 0)))
    # (n_blocks, W, subs, _SUB): a block's codes word-major, in sub-blocks of _SUB
    blocks = blocks.reshape(n_blocks, subs, _SUB, words).transpose(0, 3, 1, 2)
    query_words = queries.T  # (W, q)
    sub_ids = jnp.arange(subs, dtype=jnp.int32)
    lane = jnp.arange(_SUB, dtype=jnp.int32)
    local = sub_ids[:, None] * _SUB + lane  # (subs, _SUB): positions within a block

    def step(best, xs):
        best_d, best_i = best
        codes, b = xs

        def keys(d, local):
            # entries that can enter: closer than the current k-th best (an equal distance
            # loses to it, which has a lower index); key orders them by (distance, index)
            kth = best_d[:, -1].reshape((q,) + (1,) * (d.ndim - 1))
            enter = (d < kth) & (b * block + local < n)
            return jnp.where(enter, d * block + local, _BIG)

        # heads (q, subs): each sub-block's least key; distances, test and key fuse into
        # this one reduction
        d = _popcount_sum(query_words[:, :, None, None], codes[:, None])
        heads = jnp.min(keys(d, local[None]), axis=2)

        def extract(state):  # a tournament: take the least head, refill its sub-block
            t, heads, found = state
            top = jnp.min(heads, axis=1)
            s = jnp.min(jnp.where(heads == top[:, None], sub_ids[None], subs - 1), axis=1)
            sub_d = _popcount_sum(query_words[:, :, None], jnp.take(codes, s, axis=1))
            sub = keys(sub_d, s[:, None] * _SUB + lane)  # (q, _SUB): the keys recomputed
            refill = jnp.min(jnp.where(sub > top[:, None], sub, _BIG), axis=1)
            heads = jnp.where(sub_ids[None] == s[:, None], refill[:, None], heads)
            return t + 1, heads, lax.dynamic_update_index_in_dim(found, top, t, 1)

        _, _, found = lax.while_loop(  # until k taken or no row has an entry left
            lambda s: (s[0] < k) & jnp.any(s[1] < _BIG),
            extract,
            (jnp.int32(0), heads, jnp.full((q, k), _BIG, jnp.int32)),
        )
        ok = found < _BIG
        new_d = jnp.where(ok, found // block, sentinel)
        new_i = jnp.where(ok, b * block + found % block, n)
        return _merge(best_d, best_i, new_d, new_i), None

    init = (jnp.full((q, k), sentinel, jnp.int32), jnp.full((q, k), n, jnp.int32))
    return lax.scan(step, init, (blocks, jnp.arange(n_blocks, dtype=jnp.int32)))[0]


def hamming_knn(
    *args: Any,
    queries: jax.Array | None = None,
    database: jax.Array | None = None,
    k: int | None = None,
    block_size: int = 4096,
) -> tuple[jax.Array, jax.Array]:
    """Exact k nearest neighbours in Hamming distance of packed codes:
    `hamming_knn(queries=q, database=db, k=5)`, keyword-only.

    queries: (q, W) uint32, database: (n, W) uint32 -> (distances, indices), each (q, k)
    int32, sorted by (distance, database index): among codes at equal distance the lower
    database index comes first (the order of a stable argsort of the distances). k and
    block_size are static Python ints. Deprecated: the positional form
    `hamming_knn(database, queries, k)` (database first, unlike FAISS's
    `index.search(queries, k)` and scikit-learn's `kneighbors(X)`) still works, with a
    DeprecationWarning.

    Distances are XOR + popcount summed over words. The database is scanned in blocks of
    `block_size` codes (`lax.scan`), keeping a running k-best per query, so memory is
    O(q * block_size / 32) whatever n is. No sort: an entry of a block can enter only if it
    is closer than the current k-th best; those are pulled out in (distance, index) order by
    a tournament over sub-blocks of 32 codes (the least sub-block minimum, then a refill of
    that sub-block, its 32 distances recomputed: O(block / 32 + 32) per entry, and few enter
    once the running k-th best is tight), and merged with the k-best by counting ranks. The
    distances of a block are never written out: popcounts, the entry test and the keys fuse
    into the one reduction that gives the sub-block minima. block_size is rounded up to a
    multiple of 32 (and capped so that distance * block fits int32). vmap over a leading
    seed axis of both inputs.
    """
    if args:
        if len(args) > 4 or queries is not None or database is not None or k is not None:
            raise ValueError(
                "hamming_knn takes queries=, database=, k= by keyword, got "
                f"{len(args)} positional arguments with keywords"
            )
        warnings.warn(
            "[esparse] hamming_knn(database, queries, k) with positional arguments is "
            "deprecated: pass hamming_knn(queries=..., database=..., k=...) by keyword",
            DeprecationWarning,
            stacklevel=2,
        )
        database, queries, k = (*args, None, None, None)[:3]
        block_size = args[3] if len(args) == 4 else block_size
    if queries is None or database is None or k is None:
        raise ValueError(
            "hamming_knn needs queries=, database= and k=, got "
            f"queries={type(queries).__name__}, database={type(database).__name__}, k={k!r}"
        )
    _check_codes("database", database, "queries", queries)
    k = _checks.int_in_range("k", k, 1, database.shape[0])
    block_size = _checks.positive_int("block_size", block_size)
    block = -(-min(block_size, database.shape[0]) // _SUB) * _SUB
    # keys distance * block + position stay below 2^31
    block = min(block, (2**31 // (32 * database.shape[1] + 2)) // _SUB * _SUB)
    return _knn(database, queries, k, block)


def true_neighbors(
    x_query: jax.Array, x_db: jax.Array, n_neighbors: int, exclude: jax.Array | None = None
) -> jax.Array:
    """(q, n_neighbors) int32: the indices of the n_neighbors nearest db rows (l2) of each
    query row, nearest first.

    exclude: optional (q,) db index per query (the query itself) never counted as a neighbour.
    n_neighbors: int in [1, n_db] (in [1, n_db - 1] with exclude).
    """
    _check_points("x_query", x_query)
    _check_points("x_db", x_db)
    if x_query.shape[1] != x_db.shape[1]:
        raise ValueError(
            f"x_query must have {x_db.shape[1]} columns like x_db, got shape {x_query.shape}"
        )
    n_db = x_db.shape[0] - (exclude is not None)
    n_neighbors = _checks.int_in_range("n_neighbors", n_neighbors, 1, n_db)
    if exclude is not None:
        _check_index("exclude", exclude, (x_query.shape[0],), x_db.shape[0])
    cross = jnp.matmul(x_query, x_db.T, precision=lax.Precision.HIGHEST)
    d2 = jnp.sum(x_query**2, 1)[:, None] - 2 * cross + jnp.sum(x_db**2, 1)[None, :]
    if exclude is not None:
        d2 = d2.at[jnp.arange(d2.shape[0]), exclude].set(jnp.inf)
    return lax.top_k(-d2, n_neighbors)[1].astype(jnp.int32)


def _before(d_a, u_a, i_a, d_b, u_b, i_b):
    """a ranks before b in the order by (distance, tie-break u, index)."""
    return (d_a < d_b) | ((d_a == d_b) & ((u_a < u_b) | ((u_a == u_b) & (i_a < i_b))))


def mean_average_precision(
    key: jax.Array,
    distances: jax.Array,
    relevant: jax.Array,
    exclude: jax.Array | None = None,
) -> jax.Array:
    """Mean over queries of the average precision of ranking db items by `distances`.

    distances: (q, n) (e.g. `hamming` of packed codes), relevant: (q, r) int indices of the
    relevant db items of each query (distinct; e.g. `true_neighbors`). Ties are broken at
    random (from `key`), so equal distances give the expected precision of a random order,
    not an optimistic one: items are ranked by (distance, u, index) with u =
    `jax.random.uniform(key, (q, n))`. exclude: optional (q,) db index per query (itself)
    dropped from the ranking (and from the relevant items). AP = mean, over the relevant
    items, of the precision at each one's rank.

    No sort: the rank of a relevant item is the number of items ranked before it, counted,
    which is O(q r n) comparisons (r << n); Hamming distances are small integers, so ties
    are common and the tie-break matters.
    """
    _checks.ndim("distances", distances, 2)
    q, n = distances.shape
    _checks.ndim("relevant", relevant, 2)
    _check_index("relevant", relevant, (q, relevant.shape[1]), n)
    if exclude is not None:
        _check_index("exclude", exclude, (q,), n)
    u = jax.random.uniform(key, (q, n))
    out = jnp.full((q,), n, jnp.int32) if exclude is None else exclude.astype(jnp.int32)
    return _map(distances, u, relevant.astype(jnp.int32), out)


_MAP_ROWS = 8  # queries per step of the mAP's lax.map: (8, r, n) comparisons in flight


def _average_precision(distances, u, relevant, out):
    """AP of one query: distances, u (n,); relevant (r,) indices; out () excluded index."""
    idx = jnp.arange(distances.shape[0], dtype=jnp.int32)
    d_r, u_r = distances[relevant], u[relevant]
    weight = relevant != out  # a relevant item that is not excluded
    ahead = _before(
        distances[None], u[None], idx[None], d_r[:, None], u_r[:, None], relevant[:, None]
    )
    rank = 1 + jnp.sum(ahead & (idx != out)[None], axis=1, dtype=jnp.int32)  # (r,)
    ahead_r = _before(
        d_r[None], u_r[None], relevant[None], d_r[:, None], u_r[:, None], relevant[:, None]
    )
    hits = 1 + jnp.sum(ahead_r & weight[None], axis=1, dtype=jnp.int32)
    precision = jnp.where(weight, hits.astype(jnp.float32) / rank.astype(jnp.float32), 0.0)
    return jnp.sum(precision) / jnp.maximum(jnp.sum(weight, dtype=jnp.int32), 1)


@jax.jit
def _map(distances, u, relevant, out):
    """mAP from counts, a few queries at a time (memory O(rows * r * n)); `out` (q,) is the
    excluded index of each query (n for none)."""
    ap = lax.map(
        lambda a: _average_precision(*a), (distances, u, relevant, out), batch_size=_MAP_ROWS
    )
    return jnp.mean(ap)
