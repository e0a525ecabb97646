"""Random projections: distributions, norm preservation, blocked == materialized, e&s."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import hadamard

from esparse import expansion, projection, sparsify
from esparse import hadamard as srht_module

KEY = jax.random.key(0)


def _x(batch=6, d_in=40, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal((batch, d_in)), jnp.float32)


def _norm_ratios(kind, m, d_in=40, n_keys=16, **kw):
    """||project(x)||^2 / ||x||^2 over keys and rows."""
    x = _x(6, d_in)
    keys = jax.random.split(KEY, n_keys)
    y = jnp.stack([projection.project(k, x, m, kind, **kw) for k in keys])
    return np.asarray(jnp.sum(y**2, -1) / jnp.sum(x**2, -1))


@pytest.mark.parametrize(
    ("kind", "kw"),
    [("gaussian", {}), ("sparse_sign", {"density": 1 / 3}), ("srht", {})],
)
def test_squared_norm_preserved_in_expectation(kind, kw):
    # each ratio has variance ~2/m (gaussian); the mean of 128 ratios is within a few 1e-3
    ratios = _norm_ratios(kind, 300, **kw)
    assert abs(ratios.mean() - 1.0) < 0.03
    assert ratios.std() < 4 * np.sqrt(2 / 300) + 0.02


def test_srht_full_block_is_an_isometry_up_to_scale():
    # m = padded size: every coordinate of x D H is kept, ||.||^2 = m ||x||^2 / m exactly
    ratios = _norm_ratios("srht", 64, n_keys=2)
    np.testing.assert_allclose(ratios, 1.0, rtol=1e-5)


def test_gaussian_entries():
    w = np.asarray(projection.gaussian(KEY, 50, 4000))
    assert w.shape == (50, 4000) and w.dtype == np.float32
    assert abs(w.mean()) < 3 * np.sqrt(1 / 4000) / np.sqrt(w.size)
    np.testing.assert_allclose(w.var(), 1 / 4000, rtol=0.02)
    assert projection.gaussian(KEY, 5, 7, jnp.bfloat16).dtype == jnp.bfloat16


@pytest.mark.parametrize("density", [None, 1.0])
def test_sparse_sign_entries(density):
    d_in, m = 64, 3000
    w = np.asarray(projection.sparse_sign(KEY, d_in, m, density))
    s = 1 / np.sqrt(d_in) if density is None else density
    scale = 1 / np.sqrt(m * s)
    np.testing.assert_allclose(np.unique(np.abs(w[w != 0])), scale, rtol=1e-6)
    frac = np.count_nonzero(w) / w.size
    assert abs(frac - s) < 4 * np.sqrt(s * (1 - s) / w.size) + 1e-9
    if density != 1.0:
        assert abs((w > 0).sum() - (w < 0).sum()) < 4 * np.sqrt(np.count_nonzero(w))


def test_fly_indices():
    idx = np.asarray(projection.fly(KEY, 30, 1000, 6))
    assert idx.shape == (1000, 6) and idx.dtype == np.int32
    assert idx.min() >= 0 and idx.max() < 30
    assert all(len(set(r)) == 6 for r in idx.tolist())
    counts = np.bincount(idx.ravel(), minlength=30)  # each input used ~200 times
    assert counts.min() > 120 and counts.max() < 290
    full = np.asarray(projection.fly(KEY, 5, 300, 5))  # c = d_in: every input once
    np.testing.assert_array_equal(np.sort(full, axis=1), np.tile(np.arange(5), (300, 1)))


def test_apply_fly_equals_dense_binary_matrix():
    x = _x(5, 30)
    idx = projection.fly(KEY, 30, 700, 4)
    dense = np.zeros((30, 700), np.float32)
    for j, r in enumerate(np.asarray(idx)):
        dense[r, j] = 1.0
    np.testing.assert_allclose(
        np.asarray(projection.apply_fly(x, idx)), np.asarray(x) @ dense, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(
        np.asarray(projection.project(KEY, x, 700, "fly", c=4)),
        np.asarray(projection.apply_fly(x, idx)),
    )


@pytest.mark.parametrize(("d_in", "m"), [(40, 50), (64, 64), (20, 100)])
def test_srht_matches_explicit_formula(d_in, m):
    x = _x(3, d_in)
    p = projection.srht(KEY, d_in, m)
    d_pad = p.padded
    assert d_pad == 1 << (d_in - 1).bit_length() and p.d_in == d_in and p.m == m
    signs, rows = np.asarray(p.signs), np.asarray(p.rows)
    assert signs.shape == (-(-m // d_pad), d_in) and set(np.unique(signs)) <= {-1.0, 1.0}
    h = hadamard(d_pad)
    xpad = np.zeros((3, d_pad))
    expected = np.zeros((3, m))
    for j in range(m):
        b = j // d_pad
        xpad[:, :d_in] = np.asarray(x) * signs[b]
        expected[:, j] = (xpad @ h)[:, rows[j]] / np.sqrt(m)
    # within a block the sampled coordinates are distinct
    for b in range(signs.shape[0]):
        blk = rows[b * d_pad : (b + 1) * d_pad]
        assert len(set(blk.tolist())) == len(blk)
    np.testing.assert_allclose(np.asarray(projection.apply_srht(x, p)), expected, atol=1e-4)


def test_fwht_equals_hadamard():
    for n in (1, 64, 2048):
        e = jnp.eye(n)[: min(n, 8)]
        np.testing.assert_array_equal(np.asarray(srht_module.fwht(e)), hadamard(n)[: min(n, 8)])


@pytest.mark.parametrize(
    ("kind", "kw", "block_size", "exact"),
    [
        ("gaussian", {}, 768, False),
        ("sparse_sign", {"density": 0.2}, 512, False),
        ("fly", {"c": 4}, 256, True),
        ("srht", {}, 128, True),
    ],
)
def test_blocked_equals_materialized(kind, kw, block_size, exact):
    x = _x()
    m = 300
    blocked = np.asarray(projection.project(KEY, x, m, kind, block_size=block_size, **kw))
    unblocked = np.asarray(projection.project(KEY, x, m, kind, **kw))
    if kind == "gaussian":
        materialized = np.asarray(x) @ np.asarray(projection.gaussian(KEY, 40, m))
    elif kind == "sparse_sign":
        materialized = np.asarray(x) @ np.asarray(projection.sparse_sign(KEY, 40, m, **kw))
    elif kind == "fly":
        materialized = np.asarray(projection.apply_fly(x, projection.fly(KEY, 40, m, **kw)))
    else:
        materialized = np.asarray(projection.apply_srht(x, projection.srht(KEY, 40, m)))
    assert blocked.shape == (6, m)
    if exact:
        np.testing.assert_array_equal(blocked, materialized)
        np.testing.assert_array_equal(unblocked, materialized)
    else:
        np.testing.assert_allclose(blocked, materialized, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(unblocked, materialized, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", projection.KINDS)
def test_same_key_identical_different_keys_differ(kind):
    x = _x()
    kw = {"c": 4} if kind == "fly" else {}
    a = np.asarray(projection.project(KEY, x, 300, kind, **kw))
    b = np.asarray(projection.project(KEY, x, 300, kind, **kw))
    c = np.asarray(projection.project(jax.random.key(1), x, 300, kind, **kw))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


class TestJit(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_project_and_expand_jit_and_nojit_agree(self):
        x = _x()
        proj = self.variant(lambda k, a: projection.project(k, a, 300, "sparse_sign"))
        ref = projection.project(KEY, x, 300, "sparse_sign")
        np.testing.assert_allclose(np.asarray(proj(KEY, x)), np.asarray(ref), rtol=1e-6)
        es = self.variant(lambda k, a: expansion.expand_and_sparsify(k, a, 300, 12, "fly", c=4))
        ref = expansion.expand_and_sparsify(KEY, x, 300, 12, "fly", c=4)
        np.testing.assert_array_equal(np.asarray(es(KEY, x)), np.asarray(ref))


def test_vmap_over_keys_equals_loop():
    x = _x(6, 40)
    keys = jax.random.split(KEY, 8)

    def f(key):
        return expansion.expand_and_sparsify(key, x, 300, 12, "fly", c=4)

    batched = np.asarray(jax.vmap(f)(keys))
    for i in range(8):
        np.testing.assert_array_equal(batched[i], np.asarray(f(keys[i])))
    assert len({batched[i].tobytes() for i in range(8)}) == 8


@pytest.mark.parametrize(
    ("kind", "kw", "binary"),
    [("gaussian", {}, False), ("fly", {"c": 4}, True), ("srht", {}, False)],
)
def test_expand_and_sparsify_is_kwta_of_projection(kind, kw, binary):
    x = _x()
    out = np.asarray(expansion.expand_and_sparsify(KEY, x, 300, 12, kind, binary, **kw))
    y = projection.project(KEY, x, 300, kind, **kw)
    expected = sparsify.kwta_binary(y, 12) if binary else sparsify.kwta(y, 12)
    assert out.shape == (6, 300)
    np.testing.assert_array_equal(np.count_nonzero(out, axis=1), 12)
    np.testing.assert_allclose(out, np.asarray(expected), rtol=1e-5, atol=1e-6)
    if kind == "fly":  # the blocked path of project itself is tested above, for every kind
        blocked = expansion.expand_and_sparsify(KEY, x, 300, 12, kind, binary, 256, **kw)
        np.testing.assert_array_equal(np.asarray(blocked), out)


def test_fused_row_blocks_match_unfused():
    # 1024 rows: the fused path runs lax.map over row blocks of x
    x = _x(1024, 16)
    out = expansion.expand_and_sparsify(KEY, x, 256, 13, "fly", c=3)
    expected = sparsify.kwta(projection.project(KEY, x, 256, "fly", c=3), 13)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(expected))


def test_bfloat16_input():
    x = _x(4, 40).astype(jnp.bfloat16)
    for kind, kw in [("fly", {"c": 3}), ("srht", {})]:
        y = projection.project(KEY, x, 100, kind, **kw)
        assert y.shape == (4, 100) and np.all(np.isfinite(np.asarray(y, np.float32)))
    out = expansion.expand_and_sparsify(KEY, x, 100, 5, dtype=jnp.bfloat16)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.count_nonzero(np.asarray(out, np.float32), axis=1), 5)


BAD = [
    (lambda: projection.project(KEY, jnp.ones(()), 10), "x"),
    (lambda: projection.project(KEY, jnp.array([[1.0, jnp.nan]]), 10, check_finite=True), "x"),
    (lambda: projection.project(KEY, jnp.ones((2, 4), jnp.int32), 10), "x"),
    (lambda: projection.project(KEY, _x(), 0), "m"),
    (lambda: projection.project(KEY, _x(), 10, "dense"), "kind"),
    (lambda: projection.project(KEY, _x(), 10, "fly"), "c"),
    (lambda: projection.project(KEY, _x(), 10, "fly", c=41), "c"),
    (lambda: projection.project(KEY, _x(), 10, "fly", c=0), "c"),
    (lambda: projection.project(KEY, _x(), 10, "gaussian", c=3), "kind_args"),
    (lambda: projection.project(KEY, _x(), 10, "sparse_sign", density=0.0), "density"),
    (lambda: projection.project(KEY, _x(), 10, "sparse_sign", density=1.5), "density"),
    (lambda: projection.project(KEY, _x(), 10, block_size=100), "block_size"),
    (lambda: projection.project(KEY, _x(), 10, "srht", block_size=32), "block_size"),
    (lambda: projection.project(KEY, _x(), 10, block_size=0), "block_size"),
    (lambda: expansion.expand_and_sparsify(KEY, _x(), 10, 0), "k"),
    (lambda: expansion.expand_and_sparsify(KEY, _x(), 10, 11), "k"),
    (lambda: expansion.expand_and_sparsify(KEY, _x(), 10, 1.2), "k"),
    (lambda: expansion.expand_and_sparsify(KEY, jnp.ones(()), 10, 2), "x"),
    (lambda: projection.gaussian(KEY, 0, 10), "d_in"),
    (lambda: projection.gaussian(KEY, 10, -1), "m"),
    (lambda: projection.fly(KEY, 10, 20, 11), "c"),
    (lambda: projection.apply_srht(_x(2, 30), projection.srht(KEY, 40, 10)), "d_in"),
    (
        lambda: projection.apply_fly(_x(2, 10), projection.fly(KEY, 40, 10, 3), check_finite=True),
        "indices",
    ),
    (lambda: projection.apply_fly(_x(2, 10), jnp.ones((4, 2))), "indices"),
    (lambda: expansion.expand_and_sparsify(KEY, _x(), 10, 2, method="sort"), "method"),
]


@pytest.mark.parametrize(("call", "match"), BAD)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_values_are_poisoned_on_the_device():
    """Default path (no host check): out-of-range fly indices give NaN columns; NaN in x
    propagates through the projection."""
    idx = jnp.asarray([[0, 1], [2, 12], [3, -1]], jnp.int32)
    out = np.asarray(projection.apply_fly(_x(2, 10), idx))
    assert np.all(np.isfinite(out[:, 0])) and np.all(np.isnan(out[:, 1:]))
    y = np.asarray(projection.project(KEY, jnp.array([[1.0, jnp.nan], [1.0, 2.0]]), 10))
    assert np.all(np.isnan(y[0])) and np.all(np.isfinite(y[1]))


def test_srht_lives_in_hadamard_and_stays_reachable_from_projection():
    import esparse

    for name in ("srht", "apply_srht", "SRHTParams"):
        assert getattr(projection, name) is getattr(srht_module, name) is getattr(esparse, name)
    assert callable(esparse.srht) and esparse.hadamard is srht_module  # the function, the module
