"""Selection methods: every method against the numpy stable-sort reference, the per-platform
branches run directly on CPU, "auto" lowering to the search on CPU, and poisoned rows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esparse import expansion, projection, selection, sparsify


def reference_mask(x: np.ndarray, k: int) -> np.ndarray:
    """k largest per row, ties to the lowest index: the first k of a stable descending sort."""
    x = np.asarray(x, np.float64)
    order = np.argsort(-x, axis=1, kind="stable")[:, :k]
    mask = np.zeros(x.shape, bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


def _cases() -> dict[str, np.ndarray]:
    g = np.random.default_rng(0).standard_normal((20, 64))
    return {
        "gauss": g.astype(np.float32),
        "ties": (np.round(g * 2) / 2).astype(np.float32),
        "all_equal": np.full((20, 64), -0.75, np.float32),
        "signed_zeros": np.where(g > 0, 0.0, -0.0).astype(np.float32),
        "two_values": (g > 0.5).astype(np.float32),
    }


IMPLS = {"search": selection.by_search, "top_k": selection.by_top_k}


@pytest.mark.parametrize("k", [1, 5, 64])  # k = 1, a tie-breaking middle, k = n
def test_every_method_matches_reference(k):
    for case, x in _cases().items():
        _check_case(case, x, k)


def _check_case(case, x, k):
    ref = reference_mask(x, k)
    for method in selection.METHODS:
        mask = np.asarray(sparsify.kwta_mask(jnp.asarray(x), k, method=method))
        np.testing.assert_array_equal(mask, ref, err_msg=f"{case} {method}")
    values = np.asarray(sparsify.kwta(jnp.asarray(x), k))
    np.testing.assert_array_equal(values, np.where(ref, x, 0.0), err_msg=case)
    for name, impl in IMPLS.items():  # each platform branch, called directly
        binary = np.asarray(jax.jit(impl, static_argnums=(1, 2))(jnp.asarray(x), k, "binary"))
        np.testing.assert_array_equal(binary, ref.astype(np.float32), err_msg=f"{case} {name}")


@pytest.mark.parametrize("method", selection.METHODS)
def test_bfloat16_every_method(method):
    x = jnp.asarray(np.random.default_rng(1).standard_normal((8, 96)), jnp.bfloat16)
    ref = reference_mask(np.asarray(x.astype(jnp.float32)), 9)  # bf16 rounding makes ties
    out = sparsify.kwta(x, 9, method=method)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(out != 0), ref)
    np.testing.assert_array_equal(np.asarray(sparsify.kwta_binary(x, 9, method=method)), ref)


@pytest.mark.parametrize("method", selection.METHODS)
def test_expand_and_sparsify_methods_agree(method):
    x = jnp.asarray(np.round(np.random.default_rng(2).standard_normal((64, 12))), jnp.float32)
    key = jax.random.key(3)
    y = np.asarray(projection.project(key, x, 256))
    out = expansion.expand_and_sparsify(key, x, 256, 13, method=method)
    np.testing.assert_array_equal(np.asarray(out), np.where(reference_mask(y, 13), y, 0.0))


def test_auto_lowers_to_the_search_on_cpu():
    x = jnp.ones((32, 128))
    auto = jax.jit(lambda a: sparsify.kwta(a, 5)).lower(x).as_text()
    top_k = jax.jit(lambda a: sparsify.kwta(a, 5, method="top_k")).lower(x).as_text()
    assert "top_k" not in auto and "stablehlo.while" in auto
    assert "top_k" in top_k and "stablehlo.while" not in top_k
    es = jax.jit(lambda a: expansion.expand_and_sparsify(jax.random.key(0), a, 256, 5))
    assert "top_k" not in es.lower(jnp.ones((1024, 8))).as_text()
    assert selection.AUTO["cpu"] == "search"


@pytest.mark.parametrize("method", selection.METHODS)
def test_rows_with_nan_or_inf_are_poisoned(method):
    x = np.random.default_rng(4).standard_normal((5, 40)).astype(np.float32)
    x[1, 3], x[3, 0], x[4, 39] = np.nan, np.inf, -np.inf
    bad = np.array([False, True, False, True, True])
    ref = reference_mask(np.where(np.isfinite(x), x, 0.0), 4)
    mask = np.asarray(sparsify.kwta_mask(jnp.asarray(x), 4, method=method))
    np.testing.assert_array_equal(mask, ref & ~bad[:, None])  # no winners in a bad row
    for fn in (sparsify.kwta, sparsify.kwta_binary, sparsify.kwta_st):
        out = np.asarray(fn(jnp.asarray(x), 4, method=method))
        assert np.all(np.isnan(out[bad])) and np.all(np.isfinite(out[~bad]))
    out = np.asarray(expansion.expand_and_sparsify(jax.random.key(0), x, 64, 4, method=method))
    assert np.all(np.isnan(out[bad])) and np.all(np.isfinite(out[~bad]))
