"""Tests for esparse.info against analytic values and scikit-learn."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.feature_selection import mutual_info_regression

from esparse import info
from esparse.info import mutual_information, pca_scores


def _gaussian_pair(rho, d, n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal((n, d))
    return x.astype(np.float32), y.astype(np.float32), -0.5 * d * np.log(1 - rho**2)


@pytest.mark.parametrize(
    ("rho", "d"), [(0.1, 1), (0.5, 1), (0.9, 1), (0.99, 1), (0.5, 2), (0.99, 2)]
)
def test_correlated_gaussians_analytic(rho, d):
    x, y, true = _gaussian_pair(rho, d, 2000, seed=int(100 * rho) + d)
    ksg = float(mutual_information(x, y, method="ksg"))
    gauss = float(mutual_information(x, y, method="gaussian"))
    # KSG at n = 2000: sampling sd ~0.02 and a downward bias growing with MI and dimension
    assert abs(ksg - true) < 0.06 + 0.05 * true
    assert abs(gauss - true) < 0.02 + 0.03 * true


def test_ksg_matches_sklearn_on_1d_pairs():
    rng = np.random.default_rng(1)
    for noise in (0.3, 1.0, 3.0):
        x = rng.standard_normal(800)
        y = np.tanh(x) + noise * rng.standard_normal(800)
        ref = mutual_info_regression(x[:, None], y, n_neighbors=3, random_state=0)[0]
        ours = float(mutual_information(x / x.std(), y / y.std(), k=3))  # sklearn standardises
        assert abs(ours - ref) < 1e-3


class KsgJit(parameterized.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_blocking_and_jit_do_not_change_the_estimate(self):
        x, y, _ = _gaussian_pair(0.7, 1, 300)
        est = self.variant(lambda a, b: mutual_information(a, b, k=4, block_size=64))(x, y)
        one_block = mutual_information(x, y, k=4, block_size=300)
        np.testing.assert_allclose(est, one_block, rtol=1e-6)


def test_ksg_independent_is_near_zero_and_n5000_fits():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5000, 3)).astype(np.float32)
    y = rng.standard_normal((5000, 2)).astype(np.float32)
    assert abs(float(mutual_information(x, y, block_size=512))) < 0.05


def test_discrete_hand_computed():
    # X uniform on {0,1}; Y = X with one flip in four per class:
    # joint p = [[3/8, 1/8], [1/8, 3/8]] -> I = log 2 + (3/4) log(3/4) + (1/4) log(1/4)
    x = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    y = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    expected = np.log(2) + 0.75 * np.log(0.75) + 0.25 * np.log(0.25)
    np.testing.assert_allclose(mutual_information(x, y, method="discrete"), expected, rtol=1e-6)
    # binary codes, rows as symbols: y is a bijection of 2-bit x codes -> I = H(X) = log 4
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 3)
    np.testing.assert_allclose(
        mutual_information(codes, codes[:, ::-1], method="discrete"), np.log(4), rtol=1e-6
    )
    # jittable
    jitted = jax.jit(lambda a, b: mutual_information(a, b, method="discrete"))
    np.testing.assert_allclose(jitted(jnp.asarray(x), jnp.asarray(y)), expected, rtol=1e-6)


def test_bad_input_raises():
    x, y, _ = _gaussian_pair(0.5, 1, 10)
    with pytest.raises(ValueError, match="k \\+ 1"):
        mutual_information(x[:3], y[:3], k=3)
    with pytest.raises(ValueError, match="same number of rows"):
        mutual_information(x, y[:5])
    x_nan = np.where(np.arange(10)[:, None] == 2, np.nan, x)
    with pytest.raises(ValueError, match="x holds 1 NaN"):
        mutual_information(x_nan, y, check_finite=True)
    for method in ("ksg", "gaussian", "discrete"):  # default: poisoned on the device
        assert np.isnan(mutual_information(x_nan, y, method=method))
    assert np.isnan(mutual_information(x, y, method="discrete"))
    with pytest.raises(ValueError, match="method"):
        mutual_information(x, y, method="binned")
    with pytest.raises(ValueError, match="integer codes"):
        mutual_information(x, y, method="discrete", check_finite=True)
    with pytest.raises(ValueError, match="x must be 2-D"):
        mutual_information(np.zeros((4, 2, 2)), np.zeros(4))


def test_pca_scores_standardised_and_match_sklearn():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(3)
    x = (rng.standard_normal((500, 6)) @ rng.standard_normal((6, 6))).astype(np.float32)
    z = np.asarray(pca_scores(x, 3))
    assert z.shape == (500, 3)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-4)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)
    ref = PCA(3).fit_transform(x)
    ref = ref / ref.std(axis=0)
    np.testing.assert_allclose(np.abs(np.sum(z * ref, axis=0)) / 500, 1.0, atol=1e-3)
    with pytest.raises(ValueError, match="n_components"):
        pca_scores(x, 7)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6),
    hnp.arrays(
        np.int8, st.tuples(st.integers(1, 4), st.integers(6, 30)), elements=st.integers(0, 5)
    ),
)
def test_kth_smallest_counts_repeats_like_a_sort(k, d):
    # KSG's k-th neighbour distance: ties (repeated distances) count once each, as in a sort
    # every backend's implementation (each platform branch), and the dispatching one
    ref = np.sort(d.astype(np.float32), axis=1)[:, k - 1]
    for fn in (info.kth_smallest, info.kth_smallest_by_min_passes, info.kth_smallest_by_top_k):
        np.testing.assert_array_equal(np.asarray(fn(jnp.asarray(d, jnp.float32), k)), ref)


def test_kth_smallest_lowers_to_min_passes_on_cpu():
    text = jax.jit(lambda d: info.kth_smallest(d, 3)).lower(jnp.ones((8, 32))).as_text()
    assert "top_k" not in text
    assert (
        "top_k"
        in jax.jit(lambda d: info.kth_smallest_by_top_k(d, 3)).lower(jnp.ones((8, 32))).as_text()
    )
