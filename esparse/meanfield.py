"""Mean-field two-layer networks: noisy gradient descent on particles, and particle distances.

The network f(x) = (1/m) sum_j a_j relu(w_j . x) is a sum over m particles theta_j = (a_j, w_j);
as m grows, training moves the empirical particle distribution along a Wasserstein gradient
flow (Mei, Montanari & Nguyen, *A mean field view of the landscape of two-layer neural
networks*, PNAS 2018). Fang, Dong & Zhang (arXiv 1910.11508) call the limiting distribution
the learned feature distribution ("neural feature repopulation"). The distances here compare
two such particle clouds (two seeds, two widths, learned vs control).

Precision: the distances (MMD's kernel matrices, the sliced projections) run their matmuls at
`lax.Precision.HIGHEST`; training steps keep the backend's default. Bad values
(esparse._checks): NaN in the data or particles propagates to the losses and distances;
check_finite=True raises a ValueError naming the argument instead (a host sync).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from esparse import _checks

__all__ = [
    "init_particles",
    "meanfield_forward",
    "meanfield_loss",
    "mmd",
    "noisy_gd",
    "sliced_wasserstein",
]

Params = dict[str, jax.Array]


def _nonneg(name: str, value, *, positive: bool = False) -> None:
    """A scalar >= 0 (> 0 if positive), checked when on the host (a Python number)."""
    if jnp.ndim(value) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {jnp.shape(value)}")
    arr = _checks.host_value(value)
    if arr is not None:
        _checks.float_in_range(name, float(arr), 0.0, np.inf, low_open=positive)


def init_particles(key: jax.Array, m: int, d: int, a_scale: float = 1.0) -> Params:
    """m particles: a ~ N(0, a_scale^2), w ~ N(0, I_d / d) (so w.x ~ N(0, 1) for x ~ N(0, I)).

    Returns {"a": (m,), "w": (m, d)}.
    """
    m = _checks.positive_int("m", m)
    d = _checks.positive_int("d", d)
    _nonneg("a_scale", a_scale)
    ka, kw = jax.random.split(key)
    return {
        "a": a_scale * jax.random.normal(ka, (m,)),
        "w": jax.random.normal(kw, (m, d)) / np.sqrt(d).astype(np.float32),
    }


def meanfield_forward(
    params: Params, x: jax.Array, activation: Callable[[jax.Array], jax.Array] = jax.nn.relu
) -> jax.Array:
    """f(x) = (1/m) sum_j a_j act(w_j . x), act = relu by default (Mei, Montanari & Nguyen
    2018). params: a (m,), w (m, d). x: (n, d) -> (n,). `esparse.nn.meanfield_two_layer` is
    the same model as a Flax module."""
    return activation(x @ params["w"].T) @ params["a"] / params["a"].shape[0]


def meanfield_loss(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    """Half mean squared error L = (1 / 2n) sum_i (f(x_i) - y_i)^2. x: (n, d), y: (n,)."""
    return 0.5 * jnp.mean(jnp.square(meanfield_forward(params, x) - y))


@functools.partial(jax.jit, static_argnames=("steps", "log_every", "data_term"))
def _noisy_gd(key, params, x, y, lr, temperature, l2, steps, log_every, data_term):
    m, d = params["w"].shape
    noise_scale = jnp.sqrt(2.0 * lr * temperature)

    def step(theta, k):
        if data_term:
            grads = jax.grad(meanfield_loss)(theta, x, y)
        else:
            grads = jax.tree.map(jnp.zeros_like, theta)
        z = jax.random.normal(k, (m, d + 1), theta["w"].dtype)
        noise = {"a": z[:, 0], "w": z[:, 1:]}
        theta = jax.tree.map(
            lambda p, g, z: p - lr * m * g - lr * l2 * p + noise_scale * z, theta, grads, noise
        )
        return theta, None

    def block(theta, k):
        theta, _ = jax.lax.scan(step, theta, jax.random.split(k, log_every))
        return theta, meanfield_loss(theta, x, y)

    n_logs = steps // log_every
    params, losses = jax.lax.scan(block, params, jax.random.split(key, n_logs))
    return params, {"step": log_every * jnp.arange(1, n_logs + 1), "loss": losses}


def noisy_gd(
    key: jax.Array,
    params: Params,
    x: jax.Array,
    y: jax.Array,
    *,
    steps: int,
    lr: float,
    temperature: float,
    l2: float = 0.0,
    data_term: bool = True,
    log_every: int = 100,
    check_finite: bool = False,
) -> tuple[Params, dict[str, jax.Array]]:
    """Full-batch noisy gradient descent (discretised Langevin dynamics) on the particles.

    Each step, for every parameter theta (a and w alike):
        theta <- theta - lr * m * grad L(theta) - lr * l2 * theta + sqrt(2 lr temperature) * z,
    z ~ N(0, 1), L = `meanfield_loss`. The gradient of L with respect to one particle is O(1/m)
    (the 1/m in f), so scaling it by the width m makes every particle move O(lr) per step,
    independently of m: the mean-field time scale (Mei et al. 2018). The dynamics samples, as
    m -> inf and lr -> 0, the minimiser of L(rho) + (l2 / 2) E|theta|^2 + temperature * E log rho.
    `data_term=False` drops the gradient of L (noise and L2 only): the control dynamics.

    x: (n, d), y: (n,); steps must be a multiple of log_every. Returns the final params and a
    history {"step": (steps // log_every,), "loss": (steps // log_every,)} of L after each block
    of log_every steps. Vmappable over keys. check_finite: raise if x or y hold NaN or inf.
    """
    steps = _checks.positive_int("steps", steps)
    log_every = _checks.positive_int("log_every", log_every)
    if steps % log_every:
        raise ValueError(f"steps must be a multiple of log_every={log_every}, got {steps}")
    _nonneg("lr", lr, positive=True)
    _nonneg("temperature", temperature)
    _nonneg("l2", l2)
    _checks.ndim("x", x, 2)
    _checks.ndim("y", y, 1)
    _checks.same_length("x", x, "y", y)
    if check_finite:
        _checks.finite("x", x)
        _checks.finite("y", y)
    if set(params) != {"a", "w"} or params["w"].shape != (params["a"].shape[0], x.shape[1]):
        shapes = {k: getattr(v, "shape", None) for k, v in params.items()}
        raise ValueError(f"params must be {{'a': (m,), 'w': (m, {x.shape[1]})}}, got {shapes}")
    return _noisy_gd(key, params, x, y, lr, temperature, l2, steps, log_every, bool(data_term))


# ----------------------------------------------------------------------------- distances


def _check_samples(x, y, check_finite: bool) -> None:
    _checks.ndim("x", x, 2)
    _checks.ndim("y", y, 2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape} and {y.shape}")
    if check_finite:
        _checks.finite("x", x)
        _checks.finite("y", y)


def _sq_dists(a, b):
    """Squared distances (na, nb), the cross term at full float32 precision."""
    cross = jnp.matmul(a, b.T, precision=lax.Precision.HIGHEST)
    return jnp.maximum(jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :] - 2.0 * cross, 0.0)


def _kernel_mean(a, b, bandwidth, block: int):
    """Mean of exp(-|a_i - b_j|^2 / (2 h^2)) over all pairs, a few rows of a at a time."""
    n = a.shape[0]
    n_blocks = -(-n // block)
    a_pad = jnp.pad(a, ((0, n_blocks * block - n), (0, 0))).reshape(n_blocks, block, -1)
    valid = (jnp.arange(n_blocks * block) < n).reshape(n_blocks, block)

    def one(args):
        rows, ok = args
        k = jnp.exp(-_sq_dists(rows, b) / (2.0 * bandwidth**2))
        return jnp.sum(jnp.where(ok[:, None], k, 0.0))

    return jnp.sum(jax.lax.map(one, (a_pad, valid))) / (n * b.shape[0])


_MEDIAN_POINTS = 512


@functools.partial(jax.jit, static_argnames="block")
def _mmd(x, y, bandwidth, block: int):
    if bandwidth is None:
        pooled = jnp.concatenate([x[:_MEDIAN_POINTS], y[:_MEDIAN_POINTS]])
        d2 = _sq_dists(pooled, pooled)
        iu = jnp.triu_indices(pooled.shape[0], 1)
        bandwidth = jnp.sqrt(jnp.median(d2[iu]))
    mmd2 = (
        _kernel_mean(x, x, bandwidth, block)
        + _kernel_mean(y, y, bandwidth, block)
        - 2.0 * _kernel_mean(x, y, bandwidth, block)
    )
    return jnp.sqrt(jnp.maximum(mmd2, 0.0))


def mmd(
    x: jax.Array, y: jax.Array, bandwidth: float | None = None, *, check_finite: bool = False
) -> jax.Array:
    """Maximum mean discrepancy (not squared) with the Gaussian kernel exp(-|u-v|^2 / (2 h^2)).

    x: (n1, p), y: (n2, p) -> (). The biased (V-statistic) estimate of MMD^2, which includes
    the i = j terms, is always >= 0 and is 0 for identical samples; for two samples of the same
    distribution it shrinks like 1/n, so the returned MMD shrinks like n^-1/2 (Gretton et al.,
    JMLR 2012). bandwidth None: the median heuristic, h = median pairwise distance among the
    first 512 points of each sample, pooled. Memory: (1024, n) kernel blocks. NaN in x or y
    gives NaN; check_finite: raise instead (syncs).
    """
    _check_samples(x, y, check_finite)
    if bandwidth is not None:
        _nonneg("bandwidth", bandwidth, positive=True)
    return _mmd(x, y, bandwidth, 1024)


def _w2_squared_1d(u, v):
    """Exact W2^2 between the empirical measures of u: (n1,) and v: (n2,) (sorted)."""
    n1, n2 = u.shape[0], v.shape[0]
    levels = jnp.sort(jnp.concatenate([jnp.arange(1, n1 + 1) / n1, jnp.arange(1, n2 + 1) / n2]))
    widths = jnp.diff(levels, prepend=0.0)
    mid = levels - widths / 2
    qu = u[jnp.clip(jnp.floor(mid * n1).astype(jnp.int32), 0, n1 - 1)]
    qv = v[jnp.clip(jnp.floor(mid * n2).astype(jnp.int32), 0, n2 - 1)]
    return jnp.sum(widths * jnp.square(qu - qv))


@functools.partial(jax.jit, static_argnames="n_projections")
def _sliced(key, x, y, n_projections: int):
    dirs = jax.random.normal(key, (n_projections, x.shape[1]), x.dtype)
    dirs = dirs / jnp.linalg.norm(dirs, axis=1, keepdims=True)
    px = jnp.sort(jnp.matmul(x, dirs.T, precision=lax.Precision.HIGHEST), axis=0)
    py = jnp.sort(jnp.matmul(y, dirs.T, precision=lax.Precision.HIGHEST), axis=0)
    w2 = jax.vmap(_w2_squared_1d, in_axes=(1, 1))(px, py)
    return jnp.sqrt(jnp.mean(w2))


def sliced_wasserstein(
    key: jax.Array,
    x: jax.Array,
    y: jax.Array,
    n_projections: int = 256,
    *,
    check_finite: bool = False,
) -> jax.Array:
    """Sliced 2-Wasserstein distance (not squared) between two samples.

    x: (n1, p), y: (n2, p) -> sqrt(mean over directions theta of W2^2(theta.x, theta.y)), with
    n_projections directions uniform on the sphere drawn from key. Each 1-D W2 is exact between
    the two empirical measures (quantile functions on the merged grid of levels i/n1, j/n2), so
    unequal sample sizes are handled exactly. For y = x + delta, SW2^2 = E(theta.delta)^2
    = |delta|^2 / p. Bonneel et al., *Sliced and Radon Wasserstein barycenters* (2015).
    check_finite as `mmd`.
    """
    _check_samples(x, y, check_finite)
    n_projections = _checks.positive_int("n_projections", n_projections)
    return _sliced(key, x, y, n_projections)
