"""k-winners-take-all (kWTA) sparsification per row, with straight-through gradients.

Tie policy: every row keeps exactly k entries. The winners are the k largest values; among
entries equal to the k-th largest value, the lowest indices win (the order of a stable sort
by decreasing value). -0.0 and +0.0 count as equal.

How many win: exactly one of `k` (an int count in [1, n]) and `fraction=` (a share in
(0, 1] of n, giving max(1, round(fraction * n))). Both are static Python numbers: they set
output shapes and compiled programs, so under `jax.jit` or `jax.vmap` keep them out of the
traced arguments (static: use static_argnums / functools.partial, e.g.
`jax.jit(kwta, static_argnums=1)` or `jax.jit(functools.partial(kwta, k=5))`); a traced k is
a ValueError saying so. Deprecated: a float k in (0, 1] read as a share (a
DeprecationWarning; pass fraction= instead).

Dtypes: the output has x's dtype (float32, bfloat16, float16, ...); the selection compares
in float32, exactly.

Bad values (the policy of esparse._checks): a row holding a NaN or an inf comes out poisoned,
all NaN for `kwta` and `kwta_binary`, all False for `kwta_mask` (no winners, so its count is
0, not k); other rows are unaffected. check_finite=True raises a ValueError naming x instead,
at the cost of a host sync.

Selection: `method` picks how the winners are found (esparse.selection): "search" (a
threshold search over row blocks, the fastest on CPU), "top_k" (the k-th value of lax.top_k
as the threshold, fastest on GPU) or "auto" (the default: the backend's best, chosen inside
the compiled program). All methods give identical outputs. Each k compiles once.

Reference: k-WTA as the sparsification step of expand-and-sparsify, Dasgupta et al.,
"A neural algorithm for a fundamental computing problem", Science 2017.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from esparse import _checks, codes, selection
from esparse.selection import Method

__all__ = ["kwta", "kwta_binary", "kwta_binary_st", "kwta_indices", "kwta_mask", "kwta_st"]


def _check(x, k, fraction, method: str, check_finite: bool) -> int:
    if getattr(x, "ndim", 0) < 1:
        raise ValueError(f"x must have at least 1 dimension, got shape {getattr(x, 'shape', x)}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must be a floating-point array, got dtype {x.dtype}")
    if x.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty last axis, got shape {x.shape}")
    _checks.one_of("method", method, selection.METHODS)
    if check_finite:
        _checks.finite("x", x)
    return _checks.count_or_fraction(k, fraction, x.shape[-1], stacklevel=4)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _select(x: jax.Array, k: int, mode: selection.Mode, method: Method) -> jax.Array:
    """x: (..., n) -> (..., n), rows flattened for the selection."""
    n = x.shape[-1]
    return selection.select(x.reshape(-1, n), k, mode, method).reshape(x.shape)


def kwta_mask(
    x: jax.Array,
    k: int | None = None,
    *,
    fraction: float | None = None,
    method: Method = "auto",
    check_finite: bool = False,
) -> jax.Array:
    """Boolean mask of the k largest entries of each row. x: (..., n) -> (..., n) bool.

    k: static int count in [1, n], or fraction=: a static share in (0, 1] of n (exactly one;
    module docstring). Exactly k True per row; ties at the k-th value go to the lowest
    indices; a row holding a NaN or an inf is all False. method ("auto", "search",
    "top_k") and check_finite: module docstring.
    """
    k = _check(x, k, fraction, method, check_finite)
    return _select(jnp.asarray(x), k, "mask", method)


def kwta(
    x: jax.Array,
    k: int | None = None,
    *,
    fraction: float | None = None,
    method: Method = "auto",
    check_finite: bool = False,
) -> jax.Array:
    """Keep the k largest entries of each row, zero the rest. x: (..., n) -> same shape/dtype.

    A row holding a NaN or an inf comes out all NaN. Arguments as `kwta_mask`.
    """
    k = _check(x, k, fraction, method, check_finite)
    return _select(jnp.asarray(x), k, "values", method)


def kwta_binary(
    x: jax.Array,
    k: int | None = None,
    *,
    fraction: float | None = None,
    method: Method = "auto",
    check_finite: bool = False,
    packed: bool = False,
) -> jax.Array:
    """Binary k-WTA code: 1 at the k winners of each row, 0 elsewhere, in x's dtype.

    A row holding a NaN or an inf comes out all NaN. Arguments as `kwta_mask`.
    packed=True: (..., ceil(n / 32)) uint32 words instead, bit j of a row (winner j) in bit
    j % 32 of word j // 32 (`esparse.codes.pack_bits`); a NaN/inf row has no bits set.
    """
    k = _check(x, k, fraction, method, check_finite)
    if packed:
        return codes.pack_bits(_select(jnp.asarray(x), k, "mask", method))
    return _select(jnp.asarray(x), k, "binary", method)


def kwta_indices(
    x: jax.Array,
    k: int | None = None,
    *,
    fraction: float | None = None,
    method: Method = "auto",
    check_finite: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """The k winners of each row in indices form: x: (..., n) -> (values, indices), each
    (..., k), indices int32 ascending within a row, values x at them (x's dtype).

    The same winners and tie policy as `kwta` (`codes.indices_to_dense(values, indices, n)`
    equals `kwta(x, k)`). A row holding a NaN or an inf gets index n and value NaN in every
    slot. No sort: the selection's winner mask, packed to words, then per slot a binary
    search over the words' running bit counts and a bit select (`codes.mask_to_indices`).
    Arguments as `kwta_mask`.
    """
    k = _check(x, k, fraction, method, check_finite)
    return _indices(jnp.asarray(x), k, method)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _indices(x: jax.Array, k: int, method: str) -> tuple[jax.Array, jax.Array]:
    indices = codes.mask_to_indices(_select(x, k, "mask", method), k)
    return jnp.take_along_axis(x, indices, axis=-1, mode="fill", fill_value=jnp.nan), indices


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _kwta_st(x, k, method):
    return _select(x, k, "values", method)


def _kwta_st_fwd(x, k, method):
    mask = _select(x, k, "mask", method)
    values = jnp.where(mask, x, jnp.zeros((), x.dtype))
    return jnp.where(jnp.any(mask, axis=-1, keepdims=True), values, jnp.nan), mask


def _kwta_st_bwd(k, method, mask, g):
    return (jnp.where(mask, g, jnp.zeros((), g.dtype)),)


_kwta_st.defvjp(_kwta_st_fwd, _kwta_st_bwd)


def kwta_st(
    x: jax.Array,
    k: int | None = None,
    *,
    fraction: float | None = None,
    method: Method = "auto",
    check_finite: bool = False,
) -> jax.Array:
    """k-WTA whose gradient flows through the winners only. x: (..., n) -> same shape.

    Forward: `kwta(x, k)`. Backward: g * mask (the winner set is treated as constant, the
    derivative of the piecewise-linear map almost everywhere). Used for k-WTA layers
    (Ahmad & Scheinkman 2019, "How can we be so dense?").
    """
    k = _check(x, k, fraction, method, check_finite)
    return _kwta_st(jnp.asarray(x), k, method)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _kwta_binary_st(x, k, method):
    return _select(x, k, "binary", method)


def _kwta_binary_st_fwd(x, k, method):
    return _select(x, k, "binary", method), None


def _kwta_binary_st_bwd(k, method, _, g):
    return (g,)


_kwta_binary_st.defvjp(_kwta_binary_st_fwd, _kwta_binary_st_bwd)


def kwta_binary_st(
    x: jax.Array,
    k: int | None = None,
    *,
    fraction: float | None = None,
    method: Method = "auto",
    check_finite: bool = False,
) -> jax.Array:
    """Binary k-WTA code with the straight-through estimator. x: (..., n) -> same shape.

    Forward: `kwta_binary(x, k)`. Backward: identity (g passes unchanged), as in Bengio et
    al. 2013, "Estimating or propagating gradients through stochastic neurons"; the top-k
    masks of edge-popup (Ramanujan et al. 2020) use the same estimator.
    """
    k = _check(x, k, fraction, method, check_finite)
    return _kwta_binary_st(jnp.asarray(x), k, method)
