"""Linear regression on fixed features: ridge, minimum-norm least squares, lambda by validation.

References: Belkin, Hsu, Ma & Mandal, *Reconciling modern machine learning practice and the
bias-variance trade-off* (PNAS 2019) for the minimum-norm interpolant; Hastie, Tibshirani &
Friedman, *The Elements of Statistical Learning* (3.4.1) for ridge and its spectral form.

Precision: every solver, Gram matrix and prediction runs its matmuls at
`lax.Precision.HIGHEST` (full float32 on GPUs, whose default is TF32, and on TPUs, whose
default is bf16 passes). Every solver runs in the dtype of its inputs. Pass float64 arrays
inside `with jax.enable_x64(True):` for float64. In float32, the Cholesky and
eigendecomposition solvers work on a Gram matrix, whose condition number is the square of
phi's: they are accurate while `lam / s_max(phi)**2` stays above ~1e-5. Below that, use
`solver="svd"` / `method="svd"` (SVD of phi itself, slower) or float64.

Bad values (esparse._checks): NaN and inf in phi or y propagate to the weights and losses;
check_finite=True raises a ValueError naming the argument instead (a host sync).
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from esparse import _checks

__all__ = [
    "Metric",
    "RidgeSelection",
    "SolveMethod",
    "Solver",
    "holdout_rows",
    "min_norm_lstsq",
    "predict",
    "ridge",
    "ridge_holdout",
    "ridge_path",
    "ridge_select",
    "weight_norm",
]


Solver = Literal["auto", "primal", "dual", "svd"]  # how `ridge` solves
Metric = Literal["mse", "error"]  # the validation loss of `ridge_select`
SolveMethod = Literal["eigh", "svd"]  # how a lambda path factorizes the features

# ----------------------------------------------------------------------------- linear solvers


def _check_design(phi, y, check_finite: bool, phi_name: str = "phi", y_name: str = "y") -> None:
    _checks.ndim(phi_name, phi, 2)
    if getattr(y, "ndim", None) not in (1, 2):
        raise ValueError(f"{y_name} must be 1-D or 2-D, got shape {getattr(y, 'shape', y)}")
    _checks.same_length(phi_name, phi, y_name, y)
    if check_finite:
        _checks.finite(phi_name, phi)
        _checks.finite(y_name, y)


def _check_lam(lam) -> None:
    if jnp.ndim(lam) != 0:
        raise ValueError(f"lam must be a scalar, got shape {jnp.shape(lam)}")
    value = _checks.host_value(lam)
    if value is not None:
        _checks.float_in_range("lam", float(value), 0.0, np.inf, low_open=True)


def ridge(
    phi: jax.Array,
    y: jax.Array,
    lam: float | jax.Array,
    *,
    solver: Solver = "auto",
    check_finite: bool = False,
) -> jax.Array:
    """Ridge weights argmin_w |phi w - y|^2 + lam |w|^2 (no intercept; sklearn's `alpha` = lam).

    phi: (n, N), y: (n,) or (n, k) -> weights (N,) or (N, k). solver "auto" picks the primal
    form (phi^T phi + lam I)^-1 phi^T y when N <= n and the dual form
    phi^T (phi phi^T + lam I)^-1 y when N > n, both by Cholesky; "primal" / "dual" force one;
    "svd" uses the SVD of phi (stable for tiny lam in float32, slower). A lam <= 0 given as
    a device array gives NaN weights. check_finite: raise if phi or y hold NaN or inf (syncs).
    """
    _check_design(phi, y, check_finite)
    _check_lam(lam)
    _checks.one_of("solver", solver, {"auto", "primal", "dual", "svd"})
    n, n_features = phi.shape
    if solver == "auto":
        solver = "primal" if n_features <= n else "dual"
    w = _ridge(phi, jnp.asarray(y, phi.dtype).reshape(n, -1), jnp.asarray(lam, phi.dtype), solver)
    return w[:, 0] if y.ndim == 1 else w


@functools.partial(jax.jit, static_argnames="solver")
def _ridge(phi, y2, lam, solver: str):
    with jax.default_matmul_precision("highest"):
        w = _ridge_solve(phi, y2, lam, solver)
    return jnp.where(lam > 0, w, jnp.nan)


def _ridge_solve(phi, y2, lam, solver: str):
    n, n_features = phi.shape
    if solver == "primal":
        gram = phi.T @ phi + lam * jnp.eye(n_features, dtype=phi.dtype)
        w = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(gram), phi.T @ y2)
    elif solver == "dual":
        gram = phi @ phi.T + lam * jnp.eye(n, dtype=phi.dtype)
        w = phi.T @ jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(gram), y2)
    else:
        u, s, vt = jnp.linalg.svd(phi, full_matrices=False)
        w = vt.T @ ((s / (s * s + lam))[:, None] * (u.T @ y2))
    return w


def min_norm_lstsq(
    phi: jax.Array, y: jax.Array, rcond: float | None = None, *, check_finite: bool = False
) -> jax.Array:
    """Minimum-norm least-squares weights pinv(phi) y via the SVD of phi.

    phi: (n, N), y: (n,) or (n, k) -> (N,) or (N, k). Singular values below rcond * s_max are
    dropped; rcond defaults to max(n, N) * eps(dtype) (numpy.linalg.lstsq's default). For
    N > n this is the interpolating solution of smallest norm (Belkin et al. 2019); it stays
    finite at the interpolation threshold N = n. check_finite as `ridge`.
    """
    _check_design(phi, y, check_finite)
    n, n_features = phi.shape
    if rcond is None:
        rcond = max(n, n_features) * float(jnp.finfo(phi.dtype).eps)
    else:
        rcond = _checks.float_in_range("rcond", rcond, 0.0, 1.0)
    w = _min_norm(phi, jnp.asarray(y, phi.dtype).reshape(n, -1), rcond)
    return w[:, 0] if y.ndim == 1 else w


@jax.jit
@jax.default_matmul_precision("highest")
def _min_norm(phi, y2, rcond):
    u, s, vt = jnp.linalg.svd(phi, full_matrices=False)
    keep = s > rcond * s[0]
    inv = jnp.where(keep, 1.0 / jnp.where(keep, s, 1.0), 0.0)
    return vt.T @ (inv[:, None] * (u.T @ y2))


def predict(phi: jax.Array, weights: jax.Array) -> jax.Array:
    """phi @ weights at full float32 precision. phi: (n, N), weights: (N,) or (N, k) -> (n,)
    or (n, k)."""
    return jnp.matmul(phi, weights, precision=lax.Precision.HIGHEST)


def weight_norm(weights: jax.Array) -> jax.Array:
    """Euclidean (Frobenius for (N, k)) norm of the readout weights."""
    return jnp.sqrt(jnp.sum(jnp.square(weights)))


# ----------------------------------------------------------------------------- lambda paths


class RidgeSelection(NamedTuple):
    """Result of `ridge_select`. All fields are arrays (vmappable over seeds)."""

    lam: jax.Array  # () the chosen lambda
    index: jax.Array  # type: ignore[assignment]  # () its index in the grid (shadows tuple.index)
    losses: jax.Array  # (n_lams,) validation loss per lambda
    at_edge: jax.Array  # () bool: the chosen lambda is the first or last of the grid
    weights: jax.Array  # (N,) or (N, k) ridge weights refit on the training split at lam


def _spectral(phi, y2, phi_val, method: str):
    """Factors with weights(lam) = basis @ (filt(lam) * proj), val preds = a_val @ (...)."""
    n, n_features = phi.shape
    if method == "svd":
        u, s, vt = jnp.linalg.svd(phi, full_matrices=False)
        basis, proj = vt.T, u.T @ y2
        return basis, phi_val @ basis, proj, lambda lam: s / (s * s + lam)
    if n_features <= n:
        e, v = jnp.linalg.eigh(phi.T @ phi)
        basis, proj = v, v.T @ (phi.T @ y2)
    else:
        e, u = jnp.linalg.eigh(phi @ phi.T)
        basis, proj = phi.T @ u, u.T @ y2
    e = jnp.maximum(e, 0.0)
    return basis, phi_val @ basis, proj, lambda lam: 1.0 / (e + lam)


def _loss(pred, y_val, metric: str):
    if metric == "mse":
        return jnp.mean(jnp.square(pred - y_val))
    return jnp.mean(jnp.argmax(pred, axis=-1) != jnp.argmax(y_val, axis=-1))


def _check_path(phi_train, y_train, phi_val, y_val, lams, metric, method, check_finite):
    _check_design(phi_train, y_train, check_finite, "phi_train", "y_train")
    _check_design(phi_val, y_val, check_finite, "phi_val", "y_val")
    if phi_val.shape[1] != phi_train.shape[1]:
        raise ValueError(
            f"phi_val must have {phi_train.shape[1]} columns like phi_train, "
            f"got shape {phi_val.shape}"
        )
    if y_val.shape[1:] != y_train.shape[1:]:
        raise ValueError(
            f"y_val must have trailing shape {y_train.shape[1:]} like y_train, got {y_val.shape}"
        )
    _checks.one_of("metric", metric, {"mse", "error"})
    _checks.one_of("method", method, {"eigh", "svd"})
    if metric == "error" and (y_train.ndim != 2 or y_train.shape[1] < 2):
        raise ValueError(f"metric 'error' needs one-hot y (n, k >= 2), got {y_train.shape}")
    _checks.ndim("lams", lams, 1)
    if lams.shape[0] < 1:
        raise ValueError("lams must hold at least one value, got an empty array")
    arr = _checks.host_value(lams)
    if arr is not None:
        if not (np.all(np.isfinite(arr)) and np.all(arr > 0) and np.all(np.diff(arr) > 0)):
            raise ValueError(f"lams must be positive, finite and increasing, got {arr}")


@functools.partial(jax.jit, static_argnames=("metric", "method"))
@jax.default_matmul_precision("highest")
def _path(phi_train, y_train, phi_val, y_val, lams, metric, method):
    """(losses (n_lams,), index of the first minimum, weights (N, k) refit at that lambda).

    A grid that is not positive, finite and increasing gives NaN losses and weights."""
    dtype = phi_train.dtype
    y2 = jnp.asarray(y_train, dtype).reshape(y_train.shape[0], -1)
    yv2 = jnp.asarray(y_val, dtype).reshape(y_val.shape[0], -1)
    basis, a_val, proj, filt = _spectral(phi_train, y2, phi_val.astype(dtype), method)
    lams = jnp.asarray(lams, dtype)
    losses = jax.vmap(lambda lam: _loss(a_val @ (filt(lam)[:, None] * proj), yv2, metric))(lams)
    valid = jnp.all(jnp.isfinite(lams) & (lams > 0)) & jnp.all(jnp.diff(lams) > 0)
    losses = jnp.where(valid, losses, jnp.nan)
    index = jnp.argmin(losses)
    weights = basis @ (filt(lams[index])[:, None] * proj)
    return losses, index, jnp.where(valid, weights, jnp.nan)


def ridge_path(
    phi_train: jax.Array,
    y_train: jax.Array,
    phi_val: jax.Array,
    y_val: jax.Array,
    lams: jax.Array,
    *,
    metric: Metric = "mse",
    method: SolveMethod = "eigh",
    check_finite: bool = False,
) -> jax.Array:
    """Validation loss of ridge at every lambda of a grid, from one decomposition.

    phi_train: (n, N), y_train: (n,) or (n, k), phi_val: (n_val, N), y_val like y_train,
    lams: (n_lams,) positive and increasing -> (n_lams,). metric "mse" is the mean squared error
    over samples and outputs; "error" the 0-1 error of argmax predictions (one-hot y). method
    "eigh" eigendecomposes the smaller Gram matrix (phi^T phi or phi phi^T); "svd" uses the SVD
    of phi (see the module note on precision). A grid given as a device array that is not
    positive and increasing gives NaN losses. check_finite: raise if phi_* or y_* hold NaN or
    inf (syncs).
    """
    _check_path(phi_train, y_train, phi_val, y_val, lams, metric, method, check_finite)
    return _path(phi_train, y_train, phi_val, y_val, lams, metric, method)[0]


def ridge_select(
    phi_train: jax.Array,
    y_train: jax.Array,
    phi_val: jax.Array,
    y_val: jax.Array,
    lams: jax.Array | np.ndarray,
    *,
    metric: Metric = "mse",
    method: SolveMethod = "eigh",
    check_finite: bool = False,
) -> RidgeSelection:
    """Choose lambda by validation loss (first minimum) and refit; report whether it is at an edge.

    Arguments as `ridge_path`. A choice at the first or last lambda (`at_edge`) means the grid
    did not bracket the optimum: widen it before trusting the result.
    """
    _check_path(phi_train, y_train, phi_val, y_val, lams, metric, method, check_finite)
    losses, index, weights = _path(phi_train, y_train, phi_val, y_val, lams, metric, method)
    lam = jnp.where(jnp.isnan(losses[index]), jnp.nan, jnp.asarray(lams, phi_train.dtype)[index])
    at_edge = (index == 0) | (index == losses.shape[0] - 1)
    return RidgeSelection(
        lam, index, losses, at_edge, weights[:, 0] if y_train.ndim == 1 else weights
    )


def holdout_rows(key: jax.Array, n: int, val_fraction: float = 0.2) -> tuple[jax.Array, jax.Array]:
    """A random validation split of n rows: (fit_rows, val_rows), val_rows holding
    max(1, round(val_fraction * n)) rows, both drawn from one permutation of `key`."""
    n = _checks.positive_int("n", n)
    _checks.float_in_range("val_fraction", val_fraction, 0.0, 1.0, low_open=True, high_open=True)
    n_val = max(1, int(round(val_fraction * n)))
    if n_val >= n:
        raise ValueError(f"val_fraction={val_fraction} leaves no row to fit of n={n}")
    order = jax.random.permutation(key, n)
    return order[n_val:], order[:n_val]


def ridge_holdout(
    key: jax.Array,
    phi: jax.Array,
    y: jax.Array,
    lams: jax.Array | np.ndarray,
    *,
    val_fraction: float = 0.2,
    metric: Metric = "mse",
    method: SolveMethod = "eigh",
) -> tuple[RidgeSelection, jax.Array]:
    """`ridge_select` on a random validation split of the rows of phi: (n, N), y: (n,) or
    (n, k). The split comes from `holdout_rows(key, n, val_fraction)`; the weights are refit
    on the fit rows at the chosen lambda. Returns (selection, fit_rows)."""
    _check_design(phi, y, False)
    fit_rows, val_rows = holdout_rows(key, phi.shape[0], val_fraction)
    selection = ridge_select(
        phi[fit_rows], y[fit_rows], phi[val_rows], y[val_rows], lams, metric=metric, method=method
    )
    return selection, fit_rows
