"""Tests for esparse.features against scikit-learn and numpy references."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from sklearn.kernel_approximation import RBFSampler
from sklearn.linear_model import Ridge

from esparse import features as F
from esparse import regression as R


def _data(n=120, d=5, k=None, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1] ** 2 + 0.1 * rng.standard_normal(n)
    if k is not None:
        y = np.stack([y * (i + 1) for i in range(k)], axis=1)
    return x, y.astype(np.float32)


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


# ----------------------------------------------------------------------------- features


def test_relu_weights_moments_and_nesting():
    key = jax.random.key(0)
    w, b = F.random_relu_weights(key, 50, 4000)
    assert w.shape == (50, 4000) and b.shape == (4000,)
    np.testing.assert_allclose(np.var(np.asarray(w)), 1 / 50, rtol=0.05)
    np.testing.assert_allclose(np.var(np.asarray(b)), 1.0, rtol=0.1)
    # nested in n_features: the first columns do not depend on the total width (nor on bias)
    w_small, b0 = F.random_relu_weights(key, 50, 100, bias=False)
    np.testing.assert_array_equal(np.asarray(w[:, :100]), np.asarray(w_small))
    assert np.all(np.asarray(b0) == 0)


def test_blocked_features_equal_unblocked():
    x, _ = _data(n=40, d=6)
    key = jax.random.key(3)
    full = F.random_relu_features(key, x, 90)
    blocked = F.random_relu_features(key, x, 90, block_size=7)  # 13 blocks, last one partial
    w, b = F.random_relu_weights(key, 6, 90)
    np.testing.assert_allclose(blocked, full, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(full, np.maximum(x @ np.asarray(w) + np.asarray(b), 0), atol=1e-5)


def test_fourier_features_match_rbf_sampler_and_kernel():
    x, _ = _data(n=30, d=4)
    sampler = RBFSampler(gamma=0.2, n_components=20000, random_state=0).fit(x)
    ours = F.fourier_features(
        jnp.asarray(x), jnp.asarray(sampler.random_weights_), jnp.asarray(sampler.random_offset_)
    )
    np.testing.assert_allclose(ours, sampler.transform(x), rtol=1e-4, atol=1e-5)
    # our own weights follow the same law: the kernel approximation converges to the RBF kernel
    phi = np.asarray(F.random_fourier_features(jax.random.key(1), x, 20000, 0.2))
    sq = np.sum((x[:, None] - x[None]) ** 2, axis=-1)
    np.testing.assert_allclose(phi @ phi.T, np.exp(-0.2 * sq), atol=0.03)


def test_features_vmap_over_keys():
    x, _ = _data(n=40, d=6)  # the shapes of test_blocked_features_equal_unblocked
    keys = jax.random.split(jax.random.key(0), 4)
    phis = jax.vmap(lambda k: F.random_relu_features(k, x, 90))(keys)
    assert phis.shape == (4, 40, 90)
    np.testing.assert_allclose(phis[2], F.random_relu_features(keys[2], x, 90), atol=1e-6)
    assert not np.allclose(phis[0], phis[1])


# ----------------------------------------------------------------------------- solvers


@pytest.mark.parametrize("n_features", [40, 300])
def test_ridge_matches_sklearn_on_rbf_features(n_features):
    x, y = _data(n=150, d=4, k=2)
    sampler = RBFSampler(gamma=0.5, n_components=n_features, random_state=1).fit(x)
    phi_np = sampler.transform(x)
    ref = Ridge(alpha=0.1, fit_intercept=False).fit(phi_np, y)
    phi = F.fourier_features(
        jnp.asarray(x), jnp.asarray(sampler.random_weights_), jnp.asarray(sampler.random_offset_)
    )
    w = R.ridge(phi, jnp.asarray(y), 0.1)
    assert w.shape == (n_features, 2)
    assert _rel(R.predict(phi, w), ref.predict(phi_np)) < 1e-4
    w1 = R.ridge(phi, jnp.asarray(y[:, 0]), 0.1)
    assert w1.shape == (n_features,)
    assert _rel(R.predict(phi, w1), ref.predict(phi_np)[:, 0]) < 1e-4


class DualEqualsPrimal(parameterized.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(("svd",), ("dual",), ("auto",))
    def test_solvers_agree(self, solver):
        x, y = _data(n=60, d=5)
        w = np.random.default_rng(1).standard_normal((5, 80)) / np.sqrt(5)
        phi = np.maximum(x @ w, 0).astype(np.float32)
        primal = R.ridge(jnp.asarray(phi), jnp.asarray(y), 0.5, solver="primal")
        other = self.variant(lambda p, t, lam: R.ridge(p, t, lam, solver=solver))(
            jnp.asarray(phi), jnp.asarray(y), 0.5
        )
        ref = np.linalg.solve(phi.T @ phi + 0.5 * np.eye(80), phi.T @ y)
        assert _rel(primal, ref) < 1e-4
        assert _rel(other, ref) < 1e-4


@pytest.mark.parametrize("shape", [(50, 20), (30, 30), (20, 60)])
def test_min_norm_equals_pinv(shape):
    rng = np.random.default_rng(0)
    phi = rng.standard_normal(shape).astype(np.float32)
    y = rng.standard_normal((shape[0], 3)).astype(np.float32)
    w = R.min_norm_lstsq(jnp.asarray(phi), jnp.asarray(y))
    ref = np.linalg.pinv(phi.astype(np.float64)) @ y
    assert _rel(w, ref) < 1e-3  # N = n is ill-conditioned; still close in float32
    if shape[1] > shape[0]:  # interpolates
        np.testing.assert_allclose(phi @ np.asarray(w), y, atol=1e-3)


def test_min_norm_stable_at_interpolation_threshold():
    # square features at N = n: finite weights, and a large cutoff drops small directions
    x, y = _data(n=100, d=5)
    phi = np.maximum(x @ np.random.default_rng(1).standard_normal((5, 100)), 0)
    w = R.min_norm_lstsq(jnp.asarray(phi, jnp.float32), y)
    assert np.all(np.isfinite(np.asarray(w)))
    w_cut = R.min_norm_lstsq(jnp.asarray(phi, jnp.float32), y, rcond=1e-2)
    assert float(R.weight_norm(w_cut)) < float(R.weight_norm(w))


def test_weight_norm():
    np.testing.assert_allclose(R.weight_norm(jnp.array([[3.0, 0.0], [0.0, 4.0]])), 5.0)


def test_float64_ridge_agrees_tightly():
    x, y = _data(n=80, d=4)
    sampler = RBFSampler(gamma=0.5, n_components=200, random_state=0).fit(x)
    phi_np = sampler.transform(x.astype(np.float64))
    ref = Ridge(alpha=1e-6, fit_intercept=False, solver="svd").fit(phi_np, y.astype(np.float64))
    with jax.enable_x64(True):
        phi = jnp.asarray(phi_np, dtype=jnp.float64)
        w = R.ridge(phi, jnp.asarray(y, dtype=jnp.float64), 1e-6)
        assert w.dtype == jnp.float64
        assert _rel(R.predict(phi, w), ref.predict(phi_np)) < 1e-8


# ----------------------------------------------------------------------------- lambda paths


@pytest.mark.parametrize(
    ("n_features", "method", "low"), [(30, "eigh", 0.0), (200, "eigh", 0.0), (200, "svd", -2.0)]
)
def test_ridge_path_matches_float64_solves(n_features, method, low):
    # eigh works on the Gram matrix: accurate for lam / s_max^2 >~ 1e-5 (s_max^2 ~ 1e4 here);
    # svd stays accurate down to lam / s_max^2 ~ 1e-6
    x, y = _data(n=150, d=4, k=3)
    phi = F.random_relu_features(jax.random.key(0), jnp.asarray(x), n_features)
    phi_tr, phi_va, y_tr, y_va = phi[:100], phi[100:], y[:100], y[100:]
    lams = jnp.logspace(low, 3, 6)
    losses = R.ridge_path(phi_tr, y_tr, phi_va, y_va, lams, method=method)
    p_tr, p_va = np.asarray(phi_tr, np.float64), np.asarray(phi_va, np.float64)
    ref = [
        np.mean(
            (p_va @ np.linalg.solve(p_tr.T @ p_tr + lam * np.eye(n_features), p_tr.T @ y_tr) - y_va)
            ** 2
        )
        for lam in np.asarray(lams, np.float64)
    ]
    np.testing.assert_allclose(losses, ref, rtol=1e-3)


def test_ridge_select_reports_edge_and_refits():
    x, y = _data(n=200, d=4)
    phi = F.random_relu_features(jax.random.key(0), jnp.asarray(x), 60)
    phi_tr, phi_va, y_tr, y_va = phi[:150], phi[150:], y[:150], y[150:]
    wide = jnp.logspace(-4, 4, 17)
    sel = R.ridge_select(phi_tr, y_tr, phi_va, y_va, wide, method="svd")
    assert not bool(sel.at_edge)
    assert int(sel.index) == int(np.argmin(np.asarray(sel.losses)))
    assert sel.weights.shape == (60,)
    refit = R.ridge(phi_tr, y_tr, float(sel.lam), solver="svd")
    assert _rel(R.predict(phi_va, sel.weights), R.predict(phi_va, refit)) < 1e-4
    # a grid far above the optimum picks its smallest value: reported as an edge
    high = jnp.logspace(5, 7, 3)
    assert bool(R.ridge_select(phi_tr, y_tr, phi_va, y_va, high).at_edge)


def test_ridge_select_error_metric_and_vmap_over_seeds():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((160, 5)).astype(np.float32)
    labels = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 0.5)
    y = np.eye(3, dtype=np.float32)[labels]
    lams = jnp.logspace(-3, 3, 7)

    def one_seed(key):
        phi = F.random_relu_features(key, jnp.asarray(x), 50)
        return R.ridge_select(phi[:120], y[:120], phi[120:], y[120:], lams, metric="error")

    sels = jax.vmap(one_seed)(jax.random.split(jax.random.key(0), 3))
    assert sels.losses.shape == (3, 7) and sels.weights.shape == (3, 50, 3)
    assert np.all(np.asarray(sels.losses) <= 0.5)  # far better than chance (2/3)


# ----------------------------------------------------------------------------- bad input


def test_bad_input_raises():
    x, y = _data(n=20, d=3)
    phi = jnp.asarray(x)
    with pytest.raises(ValueError, match="lam"):
        R.ridge(phi, y, -1.0)
    with pytest.raises(ValueError, match="solver"):
        R.ridge(phi, y, 1.0, solver="qr")
    with pytest.raises(ValueError, match="same number of rows"):
        R.ridge(phi, y[:10], 1.0)
    with pytest.raises(ValueError, match="phi"):
        R.min_norm_lstsq(phi.at[0, 0].set(jnp.nan), y, check_finite=True)
    assert np.all(np.isnan(np.asarray(R.min_norm_lstsq(phi.at[0, 0].set(jnp.nan), y))))
    assert np.all(np.isnan(np.asarray(R.ridge(phi, y, jnp.float32(-1.0)))))
    with pytest.raises(ValueError, match="n_features"):
        F.random_relu_features(jax.random.key(0), x, 0)
    with pytest.raises(ValueError, match="gamma"):
        F.random_fourier_features(jax.random.key(0), x, 4, -1.0)
    with pytest.raises(ValueError, match="x must be 2-D"):
        F.random_relu_features(jax.random.key(0), x[:, 0], 4)
    with pytest.raises(ValueError, match="lams"):
        R.ridge_path(phi, y, phi, y, np.array([1.0, 0.1]))
    # a device array is not read back: a bad grid gives NaN losses, weights and lambda
    assert np.all(np.isnan(np.asarray(R.ridge_path(phi, y, phi, y, jnp.array([1.0, 0.1])))))
    sel = R.ridge_select(phi, y, phi, y, jnp.array([-1.0, 1.0]))
    assert np.isnan(sel.lam) and np.all(np.isnan(np.asarray(sel.weights)))
    with pytest.raises(ValueError, match="metric"):
        R.ridge_path(phi, y, phi, y, jnp.array([1.0]), metric="error")
