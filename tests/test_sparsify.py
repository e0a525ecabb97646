"""k-WTA: exact masks against a numpy stable-sort reference, ties, gradients, transforms."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from esparse import sparsify


def reference_mask(x: np.ndarray, k: int) -> np.ndarray:
    """k largest per row, ties to the lowest index: the first k of a stable descending sort."""
    x = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
    order = np.argsort(-x, axis=1, kind="stable")[:, :k]
    mask = np.zeros(x.shape, bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


def _rows(rng, kind: str, shape) -> np.ndarray:
    g = rng.standard_normal(shape)
    return {
        "gauss": g,
        "ties": np.round(g * 3) / 3,
        "relu_ties": np.maximum(np.round(g * 2), 0.0),
        "heavy": np.exp(4 * g),
        "huge_range": g * 10.0 ** rng.integers(-30, 30, size=shape),
        "negative": -np.abs(g),
        "constant": np.full(shape, 1.5),
        "signed_zeros": np.where(g > 0, 0.0, -0.0) + np.where(g > 1.5, g, 0.0),
        "two_values": (g > 0).astype(float),
    }[kind].astype(np.float32)


@pytest.mark.parametrize(
    "kind",
    [
        "gauss",
        "ties",
        "relu_ties",
        "heavy",
        "huge_range",
        "negative",
        "constant",
        "signed_zeros",
        "two_values",
    ],
)
@pytest.mark.parametrize("k", [1, 50, 199, 200])
def test_mask_matches_reference(kind, k):
    x = _rows(np.random.default_rng(k), kind, (24, 200))
    mask = np.asarray(sparsify.kwta_mask(jnp.asarray(x), k))
    np.testing.assert_array_equal(mask, reference_mask(x, k))
    np.testing.assert_array_equal(mask.sum(axis=1), k)


# shapes and k are static under jit: a few fixed values keep the compilations few
@settings(max_examples=20, deadline=None)
@given(
    x=hnp.arrays(
        np.float32,
        (5, 24),
        elements=st.sampled_from([-2.0, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0]),
    ),
    k=st.sampled_from([1, 3, 7]),
)
def test_mask_matches_reference_with_ties_hypothesis(x, k):
    mask = np.asarray(sparsify.kwta_mask(jnp.asarray(x), k))
    np.testing.assert_array_equal(mask, reference_mask(x, k))


@settings(max_examples=20, deadline=None)
@given(
    x=hnp.arrays(
        np.float32,
        (3, 300),
        elements=st.floats(-1e6, 1e6, width=32, allow_subnormal=False),
    ),
    frac=st.sampled_from([0.01, 0.3, 1.0]),
)
def test_mask_matches_reference_floats_hypothesis(x, frac):
    k = max(1, min(x.shape[1], round(frac * x.shape[1])))
    np.testing.assert_array_equal(
        np.asarray(sparsify.kwta_mask(jnp.asarray(x), fraction=frac)), reference_mask(x, k)
    )


def test_large_rows_many_blocks_and_padding():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 4096)).astype(np.float32)  # 37 rows: padded row blocks
    x[5] = np.round(x[5])
    mask = np.asarray(sparsify.kwta_mask(jnp.asarray(x), 205))
    np.testing.assert_array_equal(mask, reference_mask(x, 205))


@pytest.mark.parametrize("shape", ["gauss", "relu", "uniform", "shifted", "skewed"])
@pytest.mark.parametrize("k", [3, 205, 2048, 4093])
def test_wide_rows_every_search_phase(shape, k):
    """Wide rows where the Gaussian guesses fit (interpolation then extraction from the top or
    the bottom) and where they do not (open brackets, galloping, the general search)."""
    g = np.random.default_rng(k).standard_normal((32, 4096))
    x = {
        "gauss": g,
        "relu": np.maximum(g, 0.0),
        "uniform": np.random.default_rng(1).uniform(size=g.shape),
        "shifted": g * 1e-3 + 1e4,
        "skewed": np.exp(2 * g),
    }[shape].astype(np.float32)
    mask = np.asarray(sparsify.kwta_mask(jnp.asarray(x), k))
    np.testing.assert_array_equal(mask, reference_mask(x, k))


def test_values_binary_and_leading_dims():
    x = np.random.default_rng(1).standard_normal((2, 3, 50)).astype(np.float32)
    ref = reference_mask(x, 5).reshape(x.shape)
    out = sparsify.kwta(jnp.asarray(x), 5)
    assert out.shape == x.shape and out.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(out), np.where(ref, x, 0.0))
    binary = sparsify.kwta_binary(jnp.asarray(x), fraction=0.1)
    assert binary.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(binary), ref.astype(np.float32))


def test_fraction_resolves_to_rounded_count():
    x = jnp.asarray(np.random.default_rng(2).standard_normal((4, 100)), jnp.float32)
    assert np.all(np.asarray(sparsify.kwta_mask(x, fraction=0.05)).sum(1) == 5)
    assert np.all(np.asarray(sparsify.kwta_mask(x, fraction=0.001)).sum(1) == 1)
    assert np.all(np.asarray(sparsify.kwta_mask(x, fraction=1.0)).sum(1) == 100)
    assert np.all(np.asarray(sparsify.kwta_mask(x, 1)).sum(1) == 1)


def test_float_k_is_deprecated_and_float_counts_refused():
    x = jnp.asarray(np.random.default_rng(2).standard_normal((4, 100)), jnp.float32)
    with pytest.warns(DeprecationWarning, match=r"k=0.05.*pass fraction=0.05"):
        old = sparsify.kwta_mask(x, 0.05)
    np.testing.assert_array_equal(old, sparsify.kwta_mask(x, fraction=0.05))
    with pytest.raises(
        ValueError, match=r"k must be an int count in \[1, 100\], got 5.0 \(pass an int, e.g. k=5"
    ):
        sparsify.kwta(x, 0.05 * 100)
    with pytest.raises(ValueError, match="exactly one of k= .* got both k=5 and fraction=0.1"):
        sparsify.kwta(x, 5, fraction=0.1)
    with pytest.raises(ValueError, match="exactly one of k= .* got neither"):
        sparsify.kwta_binary(x)
    with pytest.raises(ValueError, match=r"fraction must be in \(0.0, 1.0\], got 1.5"):
        sparsify.kwta_st(x, fraction=1.5)


def test_bfloat16():
    x = np.random.default_rng(3).standard_normal((6, 128)).astype(np.float32)
    xb = jnp.asarray(x, jnp.bfloat16)
    out = sparsify.kwta(xb, 10)
    assert out.dtype == jnp.bfloat16
    ref = reference_mask(np.asarray(xb.astype(jnp.float32)), 10)
    np.testing.assert_array_equal(np.asarray(out != 0), ref)
    assert sparsify.kwta_binary(xb, 10).dtype == jnp.bfloat16


class TestJit(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_jit_and_nojit_agree(self):
        x = jnp.asarray(np.random.default_rng(4).standard_normal((8, 64)), jnp.float32)
        fn = self.variant(lambda a: sparsify.kwta(a, 6))
        np.testing.assert_array_equal(np.asarray(fn(x)), np.where(reference_mask(x, 6), x, 0))


def test_vmap_over_keys_equals_loop():
    keys = jax.random.split(jax.random.key(0), 8)

    def f(key):
        return sparsify.kwta(jax.random.normal(key, (4, 64)), 5)

    batched = jax.vmap(f)(keys)
    for i in range(8):
        np.testing.assert_array_equal(np.asarray(batched[i]), np.asarray(f(keys[i])))


def test_straight_through_gradients():
    x = jnp.asarray(np.random.default_rng(5).standard_normal((3, 20)), jnp.float32)
    c = jnp.arange(60.0).reshape(3, 20)
    mask = reference_mask(np.asarray(x), 4)
    g = jax.jit(jax.grad(lambda a: jnp.sum(sparsify.kwta_st(a, 4) * c)))(x)
    np.testing.assert_array_equal(np.asarray(g), np.where(mask, c, 0.0))
    np.testing.assert_array_equal(np.asarray(sparsify.kwta_st(x, 4)), np.where(mask, x, 0))
    gb = jax.grad(lambda a: jnp.sum(sparsify.kwta_binary_st(a, 4) * c))(x)
    np.testing.assert_array_equal(np.asarray(gb), np.asarray(c))
    np.testing.assert_array_equal(np.asarray(sparsify.kwta_binary_st(x, 4)), mask.astype(float))


@pytest.mark.parametrize(
    "fn",
    [
        sparsify.kwta,
        sparsify.kwta_mask,
        sparsify.kwta_binary,
        sparsify.kwta_st,
        sparsify.kwta_binary_st,
    ],
)
@pytest.mark.parametrize(
    ("x", "k", "match"),
    [
        (np.ones((2, 5), np.float32), 0, "k"),
        (np.ones((2, 5), np.float32), 6, "k"),
        (np.ones((2, 5), np.float32), -1, "k"),
        (np.ones((2, 5), np.float32), 0.0, "k"),
        (np.ones((2, 5), np.float32), 1.5, "k"),
        (np.ones((2, 5), np.float32), True, "k"),
        (np.ones((2, 5), np.float32), "3", "k"),
        (np.float32(1.0), 1, "x"),
        (np.ones((2, 5), np.int32), 2, "x"),
    ],
)
def test_bad_input_raises(fn, x, k, match):
    with pytest.raises(ValueError, match=match):
        fn(jnp.asarray(x), k)
    with pytest.raises(ValueError, match="method"):
        fn(jnp.ones((2, 5)), 2, method="sort")


@pytest.mark.parametrize("fn", [sparsify.kwta, sparsify.kwta_mask, sparsify.kwta_st])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_finite_raises_naming_x(fn, bad):
    x = jnp.asarray([[1.0, bad, 2.0]], jnp.float32)
    with pytest.raises(ValueError, match="x holds 1 NaN or inf"):
        fn(x, 1, check_finite=True)
