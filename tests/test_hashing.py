import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esparse import hashing, projection

RNG = np.random.default_rng(0)


def _np_pack(code01: np.ndarray) -> np.ndarray:
    """numpy reference of the bit order: bit j -> bit j % 32 of word j // 32."""
    m = code01.shape[-1]
    words = np.zeros((*code01.shape[:-1], -(-m // 32)), np.uint32)
    for j in range(m):
        words[..., j // 32] |= (code01[..., j] != 0).astype(np.uint32) << np.uint32(j % 32)
    return words


def _np_hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(a[:, None, :] ^ b[None]).sum(-1).astype(np.int32)


def _np_map(key, distances, relevant_idx, exclude=None):
    """The lexsort protocol: rank by (distance, uniform from key), stable; AP per query."""
    d = np.asarray(distances, np.float64).copy()
    q, n = d.shape
    rel = np.zeros((q, n), bool)
    np.put_along_axis(rel, np.asarray(relevant_idx), True, axis=1)
    if exclude is not None:
        d[np.arange(q), exclude] = np.inf
        rel[np.arange(q), exclude] = False
    u = np.asarray(jax.random.uniform(key, (q, n)))
    aps = []
    for i in range(q):
        order = np.lexsort((u[i], d[i]))
        r = rel[i, order].astype(np.float64)
        precision = np.cumsum(r) / np.arange(1, n + 1)
        aps.append((precision * r).sum() / max(r.sum(), 1))
    return np.mean(aps)


def test_map_hand_checked():
    # ranking by distance: items 0 (irrelevant), 1 (relevant), 3 (relevant), 2
    d = jnp.array([[0, 1, 3, 2]])
    ap = hashing.mean_average_precision(jax.random.key(0), d, jnp.array([[1, 3]]))
    np.testing.assert_allclose(ap, (1 / 2 + 2 / 3) / 2, rtol=1e-6)


def test_map_random_tie_break_and_exclude():
    d = jnp.array([[1, 1, 0]])
    keys = jax.random.split(jax.random.key(0), 4000)
    aps = jax.vmap(
        lambda k: hashing.mean_average_precision(k, d, jnp.array([[0, 2]]), jnp.array([2]))
    )(keys)
    # item 2 excluded; a tie between relevant and irrelevant: AP 1 or 1/2 with equal odds
    assert set(np.unique(np.round(np.asarray(aps), 6))) == {0.5, 1.0}
    np.testing.assert_allclose(aps.mean(), 0.75, atol=0.02)


@pytest.mark.parametrize("use_exclude", [False, True])
def test_map_equals_the_lexsort_protocol(use_exclude):
    q, n, r = 7, 60, 6
    d = RNG.integers(0, 5, (q, n)).astype(np.int32)  # many ties
    rel = np.stack([RNG.choice(n, r, replace=False) for _ in range(q)]).astype(np.int32)
    exclude = RNG.integers(0, n, q).astype(np.int32) if use_exclude else None
    rel[0, 0] = exclude[0] if use_exclude else rel[0, 0]  # an excluded relevant item
    key = jax.random.key(3)
    ours = hashing.mean_average_precision(
        key, jnp.asarray(d), jnp.asarray(rel), None if exclude is None else jnp.asarray(exclude)
    )
    np.testing.assert_allclose(float(ours), _np_map(key, d, rel, exclude), rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 100), st.integers(0, 2**31))
def test_pack_unpack_round_trip(rows, m, seed):
    code = np.random.default_rng(seed).integers(0, 2, (rows, m)).astype(np.uint8)
    words = hashing.pack_bits(jnp.asarray(code))
    assert words.dtype == jnp.uint32 and words.shape == (rows, -(-m // 32))
    np.testing.assert_array_equal(np.asarray(words), _np_pack(code))
    np.testing.assert_array_equal(np.asarray(hashing.unpack_bits(words, m)), code)
    assert np.array_equal(np.asarray(hashing.pack_bits(hashing.unpack_bits(words, m))), words)


def test_pack_bit_order_and_bool_input():
    code = np.zeros((2, 40), bool)
    code[0, 0] = code[0, 33] = code[1, 31] = True
    words = np.asarray(hashing.pack_bits(jnp.asarray(code)))
    np.testing.assert_array_equal(words, [[1, 2], [2**31, 0]])


def test_flyhash_packed_matches_numpy_reference():
    x = jax.random.normal(jax.random.key(1), (12, 8))
    fly = hashing.flyhash(jax.random.key(2), x, 40, 5, 3)
    assert fly.shape == (12, 2) and fly.dtype == jnp.uint32
    # the k largest sums of c chosen inputs, ties to the lower unit: a numpy reference
    idx = np.asarray(projection.fly(jax.random.key(2), 8, 40, 3))
    sums = np.asarray(x)[:, idx].sum(-1)
    winners = np.argsort(-sums, axis=1, kind="stable")[:, :5]
    expected = np.zeros((12, 40), np.uint8)
    np.put_along_axis(expected, winners, 1, axis=1)
    np.testing.assert_array_equal(np.asarray(fly), _np_pack(expected))
    np.testing.assert_array_equal(np.asarray(hashing.unpack_bits(fly, 40)), expected)


def test_lsh_packed_and_neighbors():
    x = jax.random.normal(jax.random.key(1), (12, 8))
    code = hashing.lsh(jax.random.key(3), x, 37)
    g = np.asarray(jax.random.normal(jax.random.key(3), (8, 37)))
    np.testing.assert_array_equal(np.asarray(code), _np_pack(np.asarray(x) @ g > 0))
    nn = np.asarray(hashing.true_neighbors(x, x, 3, jnp.arange(12)))
    d2 = ((np.asarray(x)[:, None] - np.asarray(x)[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    np.testing.assert_array_equal(nn, np.argsort(d2, 1)[:, :3])


def test_hamming_equals_numpy():
    a = RNG.integers(0, 2**32, (5, 3), dtype=np.uint32)
    b = RNG.integers(0, 2**32, (9, 3), dtype=np.uint32)
    got = hashing.hamming(jnp.asarray(a), jnp.asarray(b))
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(got), _np_hamming(a, b))


def _sparse_codes(n, words, p=0.05):
    """Codes with few set bits: many equal distances (ties)."""
    bits = RNG.random((n, 32 * words)) < p
    return _np_pack(bits)


@pytest.mark.parametrize(("n", "k", "block"), [(300, 10, 64), (257, 1, 512), (50, 50, 16)])
def test_knn_equals_stable_argsort(n, k, block):
    db, qs = _sparse_codes(n, 2), _sparse_codes(23, 2)
    dist, idx = hashing.hamming_knn(
        queries=jnp.asarray(qs), database=jnp.asarray(db), k=k, block_size=block
    )
    full = _np_hamming(qs, db)
    order = np.argsort(full, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(np.asarray(idx), order)
    np.testing.assert_array_equal(np.asarray(dist), np.take_along_axis(full, order, 1))


def test_knn_vmaps_over_seeds():
    db = jnp.asarray(np.stack([_sparse_codes(100, 1, 0.3) for _ in range(3)]))
    qs = jnp.asarray(np.stack([_sparse_codes(4, 1, 0.3) for _ in range(3)]))
    dist, idx = jax.vmap(
        lambda a, b: hashing.hamming_knn(queries=b, database=a, k=5, block_size=32)
    )(db, qs)
    for s in range(3):
        d1, i1 = hashing.hamming_knn(queries=qs[s], database=db[s], k=5, block_size=32)
        np.testing.assert_array_equal(idx[s], i1)
        np.testing.assert_array_equal(dist[s], d1)


def test_knn_agrees_with_faiss():
    faiss = pytest.importorskip("faiss", reason="faiss-cpu not installed (the bench extra)")
    db = RNG.integers(0, 2**32, (2000, 8), dtype=np.uint32)
    qs = RNG.integers(0, 2**32, (30, 8), dtype=np.uint32)
    index = faiss.IndexBinaryFlat(256)
    index.add(db.view(np.uint8))
    f_dist, f_idx = index.search(qs.view(np.uint8), 10)
    dist, idx = hashing.hamming_knn(queries=jnp.asarray(qs), database=jnp.asarray(db), k=10)
    np.testing.assert_array_equal(np.asarray(dist), f_dist)
    # the same neighbours up to ties: equal sets below the k-th distance
    for row in range(30):
        inner = f_dist[row] < f_dist[row, -1]
        assert set(f_idx[row, inner]) == set(np.asarray(idx)[row, inner])


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: hashing.unpack_bits(jnp.zeros((2, 3), jnp.uint32), 100), "words"),
        (lambda: hashing.unpack_bits(jnp.zeros((2, 4), jnp.int32), 100), "words"),
        (lambda: hashing.unpack_bits(jnp.zeros((2, 4), jnp.uint32), 0), "m"),
        (lambda: hashing.pack_bits(jnp.zeros((2, 0))), "code"),
        (
            lambda: hashing.hamming(jnp.zeros((2, 3), jnp.uint32), jnp.zeros((2, 4), jnp.uint32)),
            "a and b",
        ),
        (
            lambda: hashing.hamming_knn(
                database=jnp.zeros((5, 2), jnp.uint32), queries=jnp.zeros((2, 3), jnp.uint32), k=1
            ),
            "database and queries",
        ),
        (
            lambda: hashing.hamming_knn(
                database=jnp.zeros((5, 2), jnp.uint32), queries=jnp.zeros((2, 2), jnp.uint32), k=6
            ),
            "k",
        ),
        (
            lambda: hashing.hamming_knn(
                database=jnp.zeros((5, 2), jnp.uint32), queries=jnp.zeros((2, 2), jnp.uint32), k=0
            ),
            "k",
        ),
        (
            lambda: hashing.hamming_knn(
                database=jnp.zeros((5, 2), jnp.float32), queries=jnp.zeros((2, 2), jnp.uint32), k=1
            ),
            "database",
        ),
        (
            lambda: hashing.mean_average_precision(
                jax.random.key(0), jnp.zeros((2, 5)), jnp.zeros((2, 5), bool)
            ),
            "relevant",
        ),
    ],
)
def test_bad_input_names_the_argument(call, needle):
    with pytest.raises(ValueError, match=needle):
        call()
