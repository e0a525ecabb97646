"""Similarity hashing: FlyHash and sign-random-projection LSH codes, and the mean average
precision of a Hamming ranking against true nearest neighbours.

References: Dasgupta, Stevens & Navlakha, *A neural algorithm for a fundamental computing
problem* (Science 2017); Charikar, *Similarity estimation techniques from rounding algorithms*
(STOC 2002).

Codes are {0, 1} float arrays (n, bits); every function is jit- and vmap-friendly (sizes are
static Python ints).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from esparse import projection, sparsify

__all__ = [
    "flyhash",
    "hamming",
    "lsh",
    "mean_average_precision",
    "true_neighbors",
]


def flyhash(key: jax.Array, x: jax.Array, m: int, k: int, c: int) -> jax.Array:
    """FlyHash codes: m binary units each summing c distinct random inputs, top k set to 1.

    x: (n, d) -> (n, m) in {0, 1}, exactly k ones per row (Dasgupta et al. 2017). The units are
    `projection.fly(key, d, m, c)` applied by gather-and-sum; the winners are
    `sparsify.kwta_binary` (ties go to the lower unit index).
    """
    indices = projection.fly(key, x.shape[1], m, c)
    return sparsify.kwta_binary(projection.apply_fly(x, indices), k).astype(jnp.float32)


def lsh(key: jax.Array, x: jax.Array, bits: int) -> jax.Array:
    """Sign-random-projection LSH: (x @ G > 0) with G ~ N(0, 1), x: (n, d) -> (n, bits)."""
    g = jax.random.normal(key, (x.shape[1], bits), x.dtype)
    return (x @ g > 0).astype(jnp.float32)


def hamming(a: jax.Array, b: jax.Array) -> jax.Array:
    """Hamming distances between binary codes a: (q, bits) and b: (n, bits) -> (q, n)."""
    return a @ (1.0 - b).T + (1.0 - a) @ b.T


def true_neighbors(
    x_query: jax.Array, x_db: jax.Array, n_neighbors: int, exclude: jax.Array | None = None
) -> jax.Array:
    """(q, n) bool: the n_neighbors nearest db rows (l2) of each query row.

    exclude: optional (q,) db index per query (the query itself) never counted as a neighbour.
    """
    d2 = jnp.sum(x_query**2, 1)[:, None] - 2 * x_query @ x_db.T + jnp.sum(x_db**2, 1)[None, :]
    if exclude is not None:
        d2 = d2.at[jnp.arange(d2.shape[0]), exclude].set(jnp.inf)
    _, idx = jax.lax.top_k(-d2, n_neighbors)
    return jnp.zeros(d2.shape, bool).at[jnp.arange(d2.shape[0])[:, None], idx].set(True)


def mean_average_precision(
    key: jax.Array,
    distances: jax.Array,
    relevant: jax.Array,
    exclude: jax.Array | None = None,
) -> jax.Array:
    """Mean over queries of the average precision of ranking db items by `distances`.

    distances: (q, n) (e.g. Hamming), relevant: (q, n) bool. Ties are broken at random (from
    `key`), so equal distances give the expected precision of a random order, not an
    optimistic one. exclude: optional (q,) db index per query (itself) dropped from the
    ranking. AP = mean, over the relevant items, of the precision at each one's rank.
    """
    q, n = distances.shape
    distances = distances.astype(jnp.float32)
    relevant = relevant.astype(bool)
    if exclude is not None:
        distances = distances.at[jnp.arange(q), exclude].set(jnp.inf)
        relevant = relevant.at[jnp.arange(q), exclude].set(False)
    # random tie-break: sort by (distance, uniform) lexicographically
    u = jax.random.uniform(key, (q, n))
    order = jnp.lexsort((u, distances), axis=-1)
    rel = jnp.take_along_axis(relevant, order, axis=1).astype(jnp.float32)
    precision = jnp.cumsum(rel, axis=1) / jnp.arange(1, n + 1, dtype=jnp.float32)
    ap = jnp.sum(precision * rel, axis=1) / jnp.maximum(jnp.sum(rel, axis=1), 1.0)
    return jnp.mean(ap)
