"""The indices and packed forms of k-WTA codes agree with the dense kwta."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esparse import codes, expansion, sparsify

RNG = np.random.default_rng(0)
KEY = jax.random.key(0)


def _cases():
    ties = np.array([[1.0, 3.0, 3.0, 3.0, 0.0, 3.0], [2.0, 2.0, 2.0, 2.0, 2.0, 2.0]], np.float32)
    gauss = RNG.standard_normal((37, 50)).astype(np.float32)
    ints = RNG.integers(0, 4, (20, 33)).astype(np.float32)  # all ties
    return [(ties, 2), (ties, 1), (ties, 6), (gauss, 1), (gauss, 7), (gauss, 50), (ints, 9)]


@pytest.mark.parametrize(("x", "k"), _cases())
def test_indices_and_packed_agree_with_dense_kwta(x, k):
    dense = np.asarray(sparsify.kwta(jnp.asarray(x), k))
    values, indices = sparsify.kwta_indices(jnp.asarray(x), k)
    assert values.shape == indices.shape == (*x.shape[:-1], k) and indices.dtype == jnp.int32
    idx = np.asarray(indices)
    assert np.all(np.diff(idx, axis=-1) > 0)  # ascending, distinct
    np.testing.assert_array_equal(np.asarray(values), np.take_along_axis(x, idx, -1))
    np.testing.assert_array_equal(
        np.asarray(codes.indices_to_dense(values, indices, x.shape[-1])), dense
    )
    # the winners of a stable sort by decreasing value (ties to the lower index)
    ref = np.sort(np.argsort(-x, axis=-1, kind="stable")[..., :k], axis=-1)
    np.testing.assert_array_equal(idx, ref)
    packed = sparsify.kwta_binary(jnp.asarray(x), k, packed=True)
    assert packed.dtype == jnp.uint32 and packed.shape == (*x.shape[:-1], -(-x.shape[-1] // 32))
    mask = np.asarray(sparsify.kwta_mask(jnp.asarray(x), k))
    np.testing.assert_array_equal(np.asarray(codes.unpack_bits(packed, x.shape[-1])), mask)


def test_bfloat16_and_leading_axes():
    x = jnp.asarray(RNG.standard_normal((3, 4, 40)), jnp.bfloat16)
    values, indices = sparsify.kwta_indices(x, 5)
    assert values.dtype == jnp.bfloat16 and values.shape == (3, 4, 5)
    dense = codes.indices_to_dense(values, indices, 40)
    np.testing.assert_array_equal(np.asarray(dense), np.asarray(sparsify.kwta(x, 5)))


def test_nan_row_is_poisoned_in_indices_form():
    x = jnp.asarray(RNG.standard_normal((3, 10)), jnp.float32).at[1, 4].set(jnp.nan)
    values, indices = sparsify.kwta_indices(x, 3)
    assert np.all(np.asarray(indices[1]) == 10) and np.all(np.isnan(np.asarray(values[1])))
    assert np.all(np.isfinite(np.asarray(values)[[0, 2]]))


def test_bcoo_and_readout_equal_the_dense_forms():
    x = jnp.asarray(RNG.standard_normal((6, 2, 30)), jnp.float32)
    values, indices = sparsify.kwta_indices(x, 4)
    dense = sparsify.kwta(x, 4)
    bcoo = codes.indices_to_bcoo(values, indices, 30)
    assert bcoo.shape == (6, 2, 30) and bcoo.nse == 4
    np.testing.assert_array_equal(np.asarray(bcoo.todense()), np.asarray(dense))
    w = jnp.asarray(RNG.standard_normal((30, 5)), jnp.float32)
    expected = np.asarray(dense, np.float64) @ np.asarray(w, np.float64)
    np.testing.assert_allclose(
        np.asarray(codes.indices_readout(values, indices, w)), expected, rtol=1e-5, atol=1e-5
    )


def test_mask_and_words_to_indices_match_flatnonzero():
    mask = RNG.random((9, 70)) < 0.2
    k = int(mask.sum(1).max())  # rows with fewer winners pad with m = 70
    got = np.asarray(codes.mask_to_indices(jnp.asarray(mask), k))
    from_words = codes.words_to_indices(codes.pack_bits(jnp.asarray(mask)), 70, k)
    np.testing.assert_array_equal(np.asarray(from_words), got)
    for row, m in zip(got, mask, strict=True):
        hits = np.flatnonzero(m)
        np.testing.assert_array_equal(row, np.concatenate([hits, np.full(k - len(hits), 70)]))


@pytest.mark.parametrize(("kind", "kw", "block"), [("gaussian", {}, None), ("fly", {"c": 4}, None),
                                                   ("sparse_sign", {}, 256)])  # fmt: skip
def test_expand_and_sparsify_outputs_agree(kind, kw, block):
    x = jax.random.normal(jax.random.key(1), (1024, 30))  # two fused row blocks
    args = (KEY, x, 300, 12, kind)
    dense = expansion.expand_and_sparsify(*args, block_size=block, **kw)
    values, indices = expansion.expand_and_sparsify(*args, block_size=block, output="indices", **kw)
    packed = expansion.expand_and_sparsify(*args, block_size=block, output="packed", **kw)
    np.testing.assert_array_equal(np.asarray(codes.indices_to_dense(values, indices, 300)), dense)
    np.testing.assert_array_equal(np.asarray(codes.unpack_bits(packed, 300)), dense != 0)


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: sparsify.kwta_indices(jnp.ones((2, 5)), 0), "k"),
        (lambda: sparsify.kwta_indices(jnp.ones((2, 5)), 6), "k"),
        (lambda: sparsify.kwta_binary(jnp.ones((2, 5)), 6, packed=True), "k"),
        (
            lambda: expansion.expand_and_sparsify(KEY, jnp.ones((2, 3)), 10, 2, output="csr"),
            "output",
        ),
        (
            lambda: codes.indices_to_dense(jnp.ones((2, 3)), jnp.ones((2, 4), jnp.int32), 9),
            "values and indices",
        ),
        (lambda: codes.indices_to_dense(jnp.ones((2, 3)), jnp.ones((2, 3)), 9), "indices"),
        (lambda: codes.indices_to_bcoo(jnp.ones((2, 3)), jnp.ones((2, 3), jnp.int32), 2), "m"),
        (
            lambda: codes.indices_readout(
                jnp.ones((2, 3)), jnp.ones((2, 3), jnp.int32), jnp.ones(4)
            ),
            "weights",
        ),
        (lambda: codes.mask_to_indices(jnp.ones((2, 3), bool), 4), "k"),
        (lambda: codes.mask_to_indices(jnp.ones((2, 3)), 1), "mask"),
        (lambda: codes.words_to_indices(jnp.ones((2, 3), jnp.uint32), 40, 2), "words"),
    ],
)
def test_bad_input_names_the_argument(call, needle):
    with pytest.raises(ValueError, match=needle):
        call()
