"""Tests for esparse.meanfield: Langevin dynamics and particle distances."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esparse import meanfield as M


def _teacher(n=200, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = np.maximum(x[:, 0], 0) + np.maximum(x[:, 1] + 0.5, 0)
    return x, y.astype(np.float32)


def test_init_and_forward():
    params = M.init_particles(jax.random.key(0), 4000, 10, a_scale=2.0)
    assert params["a"].shape == (4000,) and params["w"].shape == (4000, 10)
    np.testing.assert_allclose(np.std(np.asarray(params["a"])), 2.0, rtol=0.05)
    np.testing.assert_allclose(np.var(np.asarray(params["w"])), 0.1, rtol=0.05)
    small = {"a": jnp.array([2.0, -1.0]), "w": jnp.array([[1.0, 0.0], [0.0, 1.0]])}
    x = jnp.array([[1.0, 3.0], [-1.0, 2.0]])
    # (1/2) (2 relu(x0) - relu(x1))
    np.testing.assert_allclose(M.meanfield_forward(small, x), [(2 - 3) / 2, (0 - 2) / 2])


def test_learns_teacher_and_control_does_not():
    x, y = _teacher()
    params = M.init_particles(jax.random.key(0), 64, 5)
    kw = dict(steps=300, lr=0.05, temperature=1e-5, l2=1e-3, log_every=100)
    _, hist = M.noisy_gd(jax.random.key(1), params, x, y, **kw)
    _, control = M.noisy_gd(jax.random.key(1), params, x, y, data_term=False, **kw)
    start = float(M.meanfield_loss(params, x, y))
    assert hist["loss"].shape == (3,)
    np.testing.assert_array_equal(hist["step"], [100, 200, 300])
    assert float(hist["loss"][-1]) < 0.2 * start
    assert float(control["loss"][-1]) > 0.5 * start


def test_control_dynamics_is_ornstein_uhlenbeck():
    # without the data term each coordinate follows theta <- (1 - lr l2) theta + sqrt(2 lr T) z:
    # stationary variance 2 lr T / (1 - (1 - lr l2)^2) ~ T / l2
    x, y = _teacher(n=10, d=2)
    params = {"a": jnp.zeros(2000), "w": jnp.zeros((2000, 2))}
    out, _ = M.noisy_gd(
        jax.random.key(0),
        params,
        x,
        y,
        steps=400,
        lr=0.1,
        temperature=0.02,
        l2=1.0,
        data_term=False,
        log_every=400,
    )
    stationary = 2 * 0.1 * 0.02 / (1 - 0.9**2)
    pooled = np.concatenate([np.asarray(out["a"]), np.asarray(out["w"]).ravel()])
    np.testing.assert_allclose(np.mean(pooled**2), stationary, rtol=0.08)  # 6000 draws
    # zero temperature, zero L2, no data: nothing moves
    same, _ = M.noisy_gd(
        jax.random.key(0),
        params,
        x,
        y,
        steps=10,
        lr=0.1,
        temperature=0.0,
        data_term=False,
        log_every=10,
    )
    np.testing.assert_array_equal(np.asarray(same["w"]), 0.0)


def test_noisy_gd_vmaps_over_keys():
    x, y = _teacher()  # the shapes of test_learns_teacher_and_control_does_not
    params = M.init_particles(jax.random.key(0), 64, 5)
    kw = dict(steps=300, lr=0.05, temperature=1e-5, l2=1e-3, log_every=100)
    keys = jax.random.split(jax.random.key(0), 3)
    out, hist = jax.vmap(lambda k: M.noisy_gd(k, params, x, y, **kw))(keys)
    assert out["w"].shape == (3, 64, 5) and hist["loss"].shape == (3, 3)
    single, _ = M.noisy_gd(keys[1], params, x, y, **kw)
    np.testing.assert_allclose(out["w"][1], single["w"], rtol=1e-4, atol=1e-5)
    assert not np.allclose(out["w"][0], out["w"][1])


def test_noisy_gd_bad_input():
    x, y = _teacher(n=20, d=3)
    p = M.init_particles(jax.random.key(0), 8, 3)
    kw = dict(steps=10, lr=0.1, log_every=5)
    with pytest.raises(ValueError, match="temperature"):
        M.noisy_gd(jax.random.key(0), p, x, y, temperature=-1.0, **kw)
    with pytest.raises(ValueError, match="log_every"):
        M.noisy_gd(jax.random.key(0), p, x, y, temperature=0.1, steps=10, lr=0.1, log_every=3)
    with pytest.raises(ValueError, match="params"):
        M.noisy_gd(
            jax.random.key(0),
            M.init_particles(jax.random.key(0), 8, 4),
            x,
            y,
            temperature=0.1,
            **kw,
        )
    with pytest.raises(ValueError, match="same number of rows"):
        M.noisy_gd(jax.random.key(0), p, x, y[:5], temperature=0.1, **kw)


# ----------------------------------------------------------------------------- distances


def test_distance_to_itself_is_zero():
    x = np.random.default_rng(0).standard_normal((300, 4)).astype(np.float32)
    assert float(M.mmd(x, x)) < 1e-3
    assert float(M.sliced_wasserstein(jax.random.key(0), x, x)) < 1e-6


def test_same_distribution_distance_shrinks_with_n():
    rng = np.random.default_rng(1)
    mmds, sws = [], []
    for n in (100, 1600):
        a = rng.standard_normal((n, 3)).astype(np.float32)
        b = rng.standard_normal((n, 3)).astype(np.float32)
        mmds.append(float(M.mmd(a, b, bandwidth=1.0)))
        sws.append(float(M.sliced_wasserstein(jax.random.key(0), a, b, 64)))
    # n x16: MMD ~ n^-1/2 (x1/4); SW2 converges too
    assert mmds[1] < 0.4 * mmds[0]
    assert sws[1] < 0.5 * sws[0]


def test_known_values_for_shifted_gaussians():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3000, 1)).astype(np.float32)
    y = rng.standard_normal((2000, 1)).astype(np.float32) + 1.5
    # 1-D: SW2 = W2 between the empirical measures (numpy quantiles as reference), and
    # W2 = |mu1 - mu2| for equal-variance populations (up to sampling of the means)
    sw = float(M.sliced_wasserstein(jax.random.key(0), x, y, 8))
    levels = (np.arange(60000) + 0.5) / 60000
    qx = np.quantile(x[:, 0], levels, method="inverted_cdf")
    qy = np.quantile(y[:, 0], levels, method="inverted_cdf")
    np.testing.assert_allclose(sw, np.sqrt(np.mean((qx - qy) ** 2)), rtol=1e-4)
    assert abs(sw - 1.5) < 0.1
    # population MMD^2 for N(0,1) vs N(1.5,1), bandwidth h: 2c (1 - exp(-D^2 / (2(h^2 + 2))))
    h, c = 1.0, 1.0 / np.sqrt(3.0)
    expected = np.sqrt(2 * c * (1 - np.exp(-(1.5**2) / (2 * (h**2 + 2)))))
    np.testing.assert_allclose(M.mmd(x, y, bandwidth=h), expected, rtol=0.03)
    # shift in p dimensions: SW2^2 = |delta|^2 / p exactly per direction average
    z = rng.standard_normal((500, 4)).astype(np.float32)
    delta = np.array([1.0, -2.0, 0.5, 0.0], np.float32)
    sw = M.sliced_wasserstein(jax.random.key(3), z, z + delta, 2000)
    np.testing.assert_allclose(sw**2, np.sum(delta**2) / 4, rtol=0.1)


def test_w2_exact_for_unequal_sizes():
    # {0, 1} vs {0, 0.5, 1}: quantile functions differ on (1/3, 1/2) by 0.5 and (1/2, 2/3)
    # by 0.5 -> W2^2 = 2 * (1/6) * 0.25
    x = jnp.array([[0.0], [1.0]])
    y = jnp.array([[0.0], [0.5], [1.0]])
    np.testing.assert_allclose(
        M.sliced_wasserstein(jax.random.key(0), x, y, 4) ** 2, 2 / 6 * 0.25, rtol=1e-5
    )


def test_distances_bad_input():
    x = np.zeros((5, 2), np.float32)
    with pytest.raises(ValueError, match="same dimension"):
        M.mmd(x, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="bandwidth"):
        M.mmd(x, x, bandwidth=0.0)
    with pytest.raises(ValueError, match="n_projections"):
        M.sliced_wasserstein(jax.random.key(0), x, x, 0)
