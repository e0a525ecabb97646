import jax
import jax.numpy as jnp
import numpy as np

from esparse import hashing, projection


def test_map_hand_checked():
    # ranking by distance: items 0 (irrelevant), 1 (relevant), 3 (relevant), 2
    d = jnp.array([[0.0, 1.0, 3.0, 2.0]])
    rel = jnp.array([[False, True, False, True]])
    ap = hashing.mean_average_precision(jax.random.key(0), d, rel)
    np.testing.assert_allclose(ap, (1 / 2 + 2 / 3) / 2, rtol=1e-6)


def test_map_random_tie_break_and_exclude():
    d = jnp.array([[1.0, 1.0, 0.0]])
    rel = jnp.array([[True, False, True]])
    keys = jax.random.split(jax.random.key(0), 4000)
    aps = jax.vmap(lambda k: hashing.mean_average_precision(k, d, rel, jnp.array([2])))(keys)
    # item 2 excluded; a tie between relevant and irrelevant: AP 1 or 1/2 with equal odds
    assert set(np.unique(np.round(np.asarray(aps), 6))) == {0.5, 1.0}
    np.testing.assert_allclose(aps.mean(), 0.75, atol=0.02)


def test_codes_and_neighbors():
    x = jax.random.normal(jax.random.key(1), (12, 8))
    fly = hashing.flyhash(jax.random.key(2), x, 40, 5, 3)
    assert fly.shape == (12, 40) and np.all(np.asarray(fly.sum(1)) == 5)
    # the k largest sums of c chosen inputs, ties to the lower unit: a numpy reference
    idx = np.asarray(projection.fly(jax.random.key(2), 8, 40, 3))
    assert all(len(set(row)) == 3 for row in idx)
    sums = np.asarray(x)[:, idx].sum(-1)
    winners = np.argsort(-sums, axis=1, kind="stable")[:, :5]
    expected = np.zeros((12, 40))
    np.put_along_axis(expected, winners, 1.0, axis=1)
    np.testing.assert_array_equal(np.asarray(fly), expected)
    code = hashing.lsh(jax.random.key(3), x, 7)
    assert code.shape == (12, 7) and set(np.unique(np.asarray(code))) <= {0.0, 1.0}
    np.testing.assert_array_equal(
        hashing.hamming(jnp.array([[1.0, 0.0, 1.0]]), jnp.array([[1.0, 1.0, 0.0], [1, 0, 1]])),
        [[2.0, 0.0]],
    )
    nn = hashing.true_neighbors(x, x, 3, jnp.arange(12))
    assert np.all(np.asarray(nn.sum(1)) == 3) and not np.any(np.diag(np.asarray(nn)))
