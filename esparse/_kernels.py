"""Helpers shared by the projection kernels (`esparse.projection`, `esparse.srht`): block
keys, the float32-accumulating matmul, flattening of leading axes, input checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from esparse import _checks


def block_keys(key: jax.Array, first: int | jax.Array, count: int) -> jax.Array:
    """Keys fold_in(key, b) for b = first, ..., first + count - 1."""
    return jax.vmap(lambda b: jax.random.fold_in(key, b))(first + jnp.arange(count))


def check_sizes(d_in, m) -> tuple[int, int]:
    """d_in and m as positive Python ints (ValueError naming the bad one)."""
    return _checks.positive_int("d_in", d_in), _checks.positive_int("m", m)


def accumulator(dtype) -> jnp.dtype:
    """The dtype sums of `dtype` values accumulate in: at least float32."""
    return jnp.promote_types(dtype, jnp.float32)


def matmul(x: jax.Array, w: jax.Array) -> jax.Array:
    """x @ w accumulated in at least float32, returned in the promoted input dtype."""
    out = jnp.result_type(x, w)
    return jnp.matmul(x, w, preferred_element_type=accumulator(out)).astype(out)


def flat(x: jax.Array) -> jax.Array:
    """x: (..., d) -> (rows, d); a 2-D x is returned as is."""
    return x if x.ndim == 2 else jnp.reshape(x, (-1, x.shape[-1]))


def check_x(x, check_finite: bool, d_in: int | None = None) -> None:
    """x must be a floating (..., d_in) array; check_finite=True also rejects NaN and inf."""
    if getattr(x, "ndim", 0) < 1:
        raise ValueError(f"x must be (..., d_in), at least 1-D, got {getattr(x, 'shape', x)!r}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must be a floating-point array, got dtype {x.dtype}")
    if d_in is not None and x.shape[-1] != d_in:
        raise ValueError(f"x has d_in={x.shape[-1]} columns but the projection expects {d_in}")
    if check_finite:
        _checks.finite("x", x)
