"""Random features: random ReLU and Fourier features, generated column by column from a key.

References: Rahimi & Recht, *Random Features for Large-Scale Kernel Machines* (NeurIPS 2007);
Belkin, Hsu, Ma & Mandal, *Reconciling modern machine learning practice and the bias-variance
trade-off* (PNAS 2019); Yehudai & Shamir, *On the Power and Limitations of Random Features for
Understanding Neural Networks* (NeurIPS 2019).

Random weights are generated column by column: column j of W and entry j of b depend only on
`(key, j)` (through `jax.random.fold_in(key, j)`). The features are therefore the same for any
`block_size`, and nested in `n_features`: the first N columns of a wider expansion are the
features of the narrower one (useful for a double-descent sweep over N).

The features keep the backend's default matmul precision; the solvers that fit readouts on
them (`esparse.regression`) run at full float32 precision. Bad values (esparse._checks): NaN
and inf in x propagate to the features; check_finite=True raises a ValueError instead.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from esparse import _checks

__all__ = [
    "fourier_features",
    "random_fourier_features",
    "random_fourier_weights",
    "random_relu_features",
    "random_relu_weights",
    "relu_features",
]


# ----------------------------------------------------------------------------- random weights


def _float_dtype(x) -> jnp.dtype:
    dtype = jnp.asarray(x).dtype
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.dtype(jnp.float32)


def _column(key, kind: str, d_in: int, bias: bool, gamma, dtype):
    """Column j of W: (d_in,) and b[j]: () from the column's own key fold_in(key, j).

    One draw z ~ N(0, I_{d_in + 1}) per column: W[:, j] from z[:d_in]; b[j] from z[d_in]
    (relu: b = z; Fourier: b = 2 pi Phi(z), uniform on [0, 2 pi) since Phi(z) ~ U(0, 1)).
    """
    z = jax.random.normal(key, (d_in + 1,), dtype)
    if kind == "relu":
        b = z[d_in] if bias else jnp.zeros((), dtype)
        return z[:d_in] / np.sqrt(d_in).astype(dtype), b
    b = (2.0 * np.pi) * jax.scipy.special.ndtr(z[d_in])
    return jnp.sqrt(2.0 * gamma).astype(dtype) * z[:d_in], b


def _columns(key, start, count: int, kind: str, d_in: int, bias: bool, gamma, dtype):
    """W: (d_in, count), b: (count,) for columns start .. start + count - 1."""
    cols = start + jnp.arange(count)
    column = functools.partial(_column, kind=kind, d_in=d_in, bias=bias, gamma=gamma, dtype=dtype)
    w, b = jax.vmap(lambda j: column(jax.random.fold_in(key, j)))(cols)
    return w.T, b


_STATIC = ("kind", "d_in", "bias", "dtype")


@functools.partial(jax.jit, static_argnames=("n_features", *_STATIC))
def _weights(key, gamma, n_features: int, kind: str, d_in: int, bias: bool, dtype):
    return _columns(key, 0, n_features, kind, d_in, bias, gamma, dtype)


def _apply(x, w, b, kind: str, n_features: int):
    if kind == "relu":
        return jax.nn.relu(x @ w + b)
    return jnp.cos(x @ w + b) * jnp.sqrt(2.0 / n_features).astype(w.dtype)


@functools.partial(jax.jit, static_argnames=("n_features", "block_size", *_STATIC))
def _features(key, x, gamma, n_features: int, block_size, kind: str, d_in: int, bias, dtype):
    if block_size is None:
        w, b = _columns(key, 0, n_features, kind, d_in, bias, gamma, dtype)
        return _apply(x, w, b, kind, n_features)
    n_blocks = -(-n_features // block_size)

    def one_block(i):
        w, b = _columns(key, i * block_size, block_size, kind, d_in, bias, gamma, dtype)
        return _apply(x, w, b, kind, n_features)

    blocks = jax.lax.map(one_block, jnp.arange(n_blocks))  # (n_blocks, n, block_size)
    phi = jnp.moveaxis(blocks, 0, 1).reshape(x.shape[0], n_blocks * block_size)
    return phi[:, :n_features]


def _check_gamma(gamma) -> None:
    value = _checks.host_value(gamma)
    if value is not None:
        _checks.float_in_range("gamma", float(value), 0.0, np.inf, low_open=True)


def random_relu_weights(
    key: jax.Array,
    d_in: int,
    n_features: int,
    bias: bool = True,
    dtype: jax.typing.DTypeLike = jnp.float32,
) -> tuple[jax.Array, jax.Array]:
    """Random first layer for ReLU features: W ~ N(0, 1/d_in), b ~ N(0, 1) (zeros if not bias).

    With x ~ N(0, I) the pre-activation w.x is ~N(0, 1), so N(0, 1) biases put the kinks in the
    bulk of the data. Returns W: (d_in, n_features), b: (n_features,).
    """
    d_in = _checks.positive_int("d_in", d_in)
    n_features = _checks.positive_int("n_features", n_features)
    return _weights(key, 0.0, n_features, "relu", d_in, bool(bias), jnp.dtype(dtype))


def random_fourier_weights(
    key: jax.Array,
    d_in: int,
    n_features: int,
    gamma: float = 1.0,
    dtype: jax.typing.DTypeLike = jnp.float32,
) -> tuple[jax.Array, jax.Array]:
    """Random Fourier weights for the RBF kernel exp(-gamma |x - x'|^2) (Rahimi & Recht 2007).

    W ~ N(0, 2 gamma) entrywise, b ~ U[0, 2 pi): scikit-learn RBFSampler's `random_weights_`
    and `random_offset_` convention. Returns W: (d_in, n_features), b: (n_features,).
    """
    d_in = _checks.positive_int("d_in", d_in)
    n_features = _checks.positive_int("n_features", n_features)
    _check_gamma(gamma)
    return _weights(key, gamma, n_features, "fourier", d_in, True, jnp.dtype(dtype))


def _check_weights(x, w, b) -> None:
    """x: (n, d_in), w: (d_in, N), b: (N,)."""
    _checks.ndim("x", x, 2)
    _checks.ndim("w", w, 2)
    if w.shape[0] != x.shape[1]:
        raise ValueError(f"w must have {x.shape[1]} rows (x's columns), got shape {w.shape}")
    if getattr(b, "shape", None) != (w.shape[1],):
        raise ValueError(f"b must have shape ({w.shape[1]},) (w's columns), got {jnp.shape(b)}")


def relu_features(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """phi = relu(x W + b). x: (n, d_in), W: (d_in, N), b: (N,) -> (n, N)."""
    _check_weights(x, w, b)
    return _apply(x, w, b, "relu", w.shape[1])


def fourier_features(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """phi = sqrt(2 / N) cos(x W + b), as RBFSampler.transform. x: (n, d_in) -> (n, N)."""
    _check_weights(x, w, b)
    return _apply(x, w, b, "fourier", w.shape[1])


def _check_features(x, n_features, block_size, check_finite) -> tuple[int, int | None]:
    _checks.ndim("x", x, 2)
    if check_finite:
        _checks.finite("x", x)
    n_features = _checks.positive_int("n_features", n_features)
    if block_size is not None:
        block_size = _checks.positive_int("block_size", block_size)
    return n_features, block_size


def random_relu_features(
    key: jax.Array,
    x: jax.Array,
    n_features: int,
    *,
    bias: bool = True,
    block_size: int | None = None,
    check_finite: bool = False,
) -> jax.Array:
    """Random ReLU features relu(x W + b) with the weights of `random_relu_weights`.

    x: (n, d_in) -> (n, n_features). With `block_size`, W is generated and applied
    `block_size` columns at a time (memory for one block of W); the result is the same.
    check_finite: raise a ValueError if x holds NaN or inf (syncs).
    """
    n_features, block_size = _check_features(x, n_features, block_size, check_finite)
    dtype = _float_dtype(x)
    return _features(
        key, x.astype(dtype), 0.0, n_features, block_size, "relu", x.shape[1], bool(bias), dtype
    )


def random_fourier_features(
    key: jax.Array,
    x: jax.Array,
    n_features: int,
    gamma: float = 1.0,
    *,
    block_size: int | None = None,
    check_finite: bool = False,
) -> jax.Array:
    """Random Fourier features sqrt(2/N) cos(x W + b) approximating exp(-gamma |x - x'|^2).

    x: (n, d_in) -> (n, n_features); weights as `random_fourier_weights`. check_finite as
    `random_relu_features`.
    """
    n_features, block_size = _check_features(x, n_features, block_size, check_finite)
    _check_gamma(gamma)
    dtype = _float_dtype(x)
    return _features(
        key, x.astype(dtype), gamma, n_features, block_size, "fourier", x.shape[1], True, dtype
    )
