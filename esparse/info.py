"""Mutual information estimators: Kraskov k-nearest-neighbour (KSG), Gaussian, plug-in discrete.

References: Kraskov, Stoegbauer & Grassberger, *Estimating mutual information*, Phys. Rev. E 69
(2004) (algorithm 1); Hodas & Stinis, *Doing the impossible: Why neural networks can be trained
at all* (2018), who relate trainability to the mutual information between successive layers.
All estimates are in nats.

Precision: covariances and PCA projections run their matmuls at `lax.Precision.HIGHEST`.
Bad values (esparse._checks): NaN in x or y gives a NaN estimate; check_finite=True raises a
ValueError naming the argument instead (a host sync).
"""

from __future__ import annotations

import functools
from typing import Literal, get_args

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import digamma

from esparse import _checks, selection

__all__ = ["MIMethod", "mutual_information", "pca_scores"]

MIMethod = Literal["ksg", "gaussian", "discrete"]  # the estimators of mutual_information
_METHODS: tuple[str, ...] = get_args(MIMethod)


def _as_2d(name: str, v):
    v = jnp.asarray(v)
    if v.ndim == 1:
        return v[:, None]
    return _checks.ndim(name, v, 2)


def kth_smallest(d: jax.Array, k: int) -> jax.Array:
    """(rows, n) -> (rows,) k-th smallest value of each row, counting repeats.

    Per backend (`selection.by_platform`): on CPU `kth_smallest_by_min_passes`, since
    `lax.top_k` sorts there; on GPU and TPU `kth_smallest_by_top_k` (one selection kernel
    instead of k dependent reductions).
    """
    impls = {"cpu": kth_smallest_by_min_passes, "default": kth_smallest_by_top_k}
    return selection.by_platform(lambda p: lambda d: impls[p](d, k), d)


def kth_smallest_by_top_k(d: jax.Array, k: int) -> jax.Array:
    """`kth_smallest` as the least of the `lax.top_k` of -d (its minimum, not its last
    column, which XLA:CPU turns into a full sort)."""
    return -jnp.min(lax.top_k(-d, k)[0], axis=1)


def kth_smallest_by_min_passes(d: jax.Array, k: int) -> jax.Array:
    """`kth_smallest` by k passes of a row minimum over the values above the last one found:
    for the small k of KSG a few memory passes, where `lax.top_k` sorts on CPU.
    """
    found = jnp.full(d.shape[:1], -jnp.inf, d.dtype)
    seen = jnp.zeros(d.shape[:1], jnp.int32)
    for _ in range(k):
        nxt = jnp.min(jnp.where(d > found[:, None], d, jnp.inf), axis=1)
        take = seen < k
        found = jnp.where(take, nxt, found)
        seen = seen + jnp.where(take, jnp.sum(d == nxt[:, None], axis=1, dtype=jnp.int32), 0)
    return found


@functools.partial(jax.jit, static_argnames=("k", "block"))
def _ksg(x, y, k: int, block: int):
    """KSG algorithm 1 with the max-norm; query rows `block` at a time ((block, n) distances)."""
    n = x.shape[0]
    n_blocks = -(-n // block)
    rows = jnp.arange(n_blocks * block)
    pad = ((0, n_blocks * block - n), (0, 0))
    xq = jnp.pad(x, pad).reshape(n_blocks, block, -1)
    yq = jnp.pad(y, pad).reshape(n_blocks, block, -1)

    def max_norm(q, ref):  # (block, d), (n, d) -> (block, n)
        return jnp.max(jnp.abs(q[:, None, :] - ref[None, :, :]), axis=-1)

    def one(args):
        xb, yb, idx = args
        self_mask = idx[:, None] == jnp.arange(n)[None, :]
        dx = jnp.where(self_mask, jnp.inf, max_norm(xb, x))
        dy = jnp.where(self_mask, jnp.inf, max_norm(yb, y))
        eps = kth_smallest(jnp.maximum(dx, dy), k)
        nx = jnp.sum(dx < eps[:, None], axis=1)
        ny = jnp.sum(dy < eps[:, None], axis=1)
        return digamma(nx + 1.0) + digamma(ny + 1.0)

    terms = jax.lax.map(one, (xq, yq, rows.reshape(n_blocks, block))).reshape(-1)[:n]
    finite = jnp.all(jnp.isfinite(x)) & jnp.all(jnp.isfinite(y))
    return jnp.where(finite, digamma(float(k)) + digamma(float(n)) - jnp.mean(terms), jnp.nan)


@jax.jit
@jax.default_matmul_precision("highest")
def _gaussian(x, y):
    """0.5 log(det S_x det S_y / det S_xy) from the sample covariance."""
    dx = x.shape[1]
    cov = jnp.atleast_2d(jnp.cov(jnp.concatenate([x, y], axis=1), rowvar=False))
    logdet = lambda c: jnp.linalg.slogdet(c)[1]  # noqa: E731
    return 0.5 * (logdet(cov[:dx, :dx]) + logdet(cov[dx:, dx:]) - logdet(cov))


def _entropy_of_rows(z):
    """Plug-in entropy (nats) of the rows of z: (n, d) taken as symbols."""
    n = z.shape[0]
    order = jnp.lexsort(z.T[::-1])
    zs = z[order]
    new = jnp.concatenate([jnp.array([True]), jnp.any(zs[1:] != zs[:-1], axis=1)])
    ids = jnp.cumsum(new) - 1
    counts = jax.ops.segment_sum(jnp.ones(n), ids, num_segments=n)
    p = counts / n
    return -jnp.sum(jnp.where(counts > 0, p * jnp.log(jnp.where(counts > 0, p, 1.0)), 0.0))


@jax.jit
def _discrete(x, y):
    """Plug-in MI; NaN unless every code is a finite integer (the device-side check)."""
    mi = (
        _entropy_of_rows(x)
        + _entropy_of_rows(y)
        - _entropy_of_rows(jnp.concatenate([x, y], axis=1))
    )
    codes = jnp.all(jnp.round(x) == x) & jnp.all(jnp.round(y) == y)
    return jnp.where(codes, mi, jnp.nan)


def mutual_information(
    x: jax.Array,
    y: jax.Array,
    method: MIMethod = "ksg",
    k: int = 3,
    *,
    block_size: int = 256,
    check_finite: bool = False,
) -> jax.Array:
    """Mutual information I(X; Y) in nats from paired samples.

    x: (n, dx), y: (n, dy); 1-D inputs are taken as (n, 1). Returns a scalar.
    - "ksg": Kraskov et al. (2004) algorithm 1, max-norm, k neighbours:
      psi(k) + psi(n) - < psi(n_x + 1) + psi(n_y + 1) >. Not clipped at 0 (may be slightly
      negative near independence). Not scale invariant across variables: standardise
      coordinates first (scikit-learn's `mutual_info_regression` does). Continuous data only
      (ties bias it). Query rows are processed `block_size` at a time, so memory is
      O(block_size * n * max(dx, dy)), never O(n^2).
    - "gaussian": 0.5 log(det S_x det S_y / det S_xy), exact for jointly Gaussian data.
    - "discrete": plug-in H(X) + H(Y) - H(X, Y) with each row a symbol (integer or binary
      codes); biased upward for few samples per symbol. Codes that are not integers give
      NaN.
    check_finite=True raises a ValueError naming x or y when they hold NaN or inf, or
    non-integer codes for "discrete" (this reads them on the host: a sync).
    """
    _checks.one_of("method", method, set(_METHODS))
    x = _as_2d("x", x)
    y = _as_2d("y", y)
    _checks.same_length("x", x, "y", y)
    n = x.shape[0]
    if check_finite:
        for name, v in (("x", x), ("y", y)):
            _checks.finite(name, v)
            if method == "discrete" and not _checks.is_traced(v):
                if not np.all(np.asarray(v) == np.round(np.asarray(v))):
                    raise ValueError(f"{name} must hold integer codes for method 'discrete'")
    if method == "discrete":
        return _discrete(x, y)
    x = x.astype(jnp.result_type(x.dtype, jnp.float32))
    y = y.astype(x.dtype)
    if method == "gaussian":
        if n < x.shape[1] + y.shape[1] + 1:
            raise ValueError(f"x needs more than dx + dy = {x.shape[1] + y.shape[1]} rows, got {n}")
        return _gaussian(x, y)
    k = _checks.positive_int("k", k)
    if n < k + 1:
        raise ValueError(f"x needs at least k + 1 = {k + 1} rows for KSG, got n={n}")
    block_size = _checks.positive_int("block_size", block_size)
    return _ksg(x, y, k, min(block_size, n))


@functools.partial(jax.jit, static_argnames="n_components")
@jax.default_matmul_precision("highest")
def _pca_scores(x, n_components: int):
    xc = x - jnp.mean(x, axis=0)
    _, s, vt = jnp.linalg.svd(xc, full_matrices=False)
    scores = xc @ vt[:n_components].T
    return scores / (jnp.std(scores, axis=0) + 1e-6 * (s[0] / jnp.sqrt(x.shape[0]) + 1e-12))


def pca_scores(x: jax.Array, n_components: int) -> jax.Array:
    """Standardised principal-component scores: x (n, d) -> (n, n_components).

    The centred rows of x are projected on their top `n_components` principal directions (SVD)
    and each score is divided by its standard deviation (plus 1e-6 of the top component's, so a
    zero-variance direction stays finite), the preprocessing KSG needs on wide layers (it is not
    scale invariant and suffers in high dimension). n_components must not exceed min(n, d).
    Traceable (usable inside jit / vmap).
    """
    x = _checks.ndim("x", jnp.asarray(x), 2)
    n_components = _checks.positive_int("n_components", n_components)
    if n_components > min(x.shape):
        raise ValueError(f"n_components must be <= min(n, d) = {min(x.shape)}, got {n_components}")
    return _pca_scores(x.astype(jnp.result_type(x.dtype, jnp.float32)), n_components)
