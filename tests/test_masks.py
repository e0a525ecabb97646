"""The masks family: esparse.masks (exact top-k, counts, packing), esparse.pruning (exact
pruning counts), esparse.lottery (IMP, controls), esparse.optim (optax masking),
esparse.supermasks (edge-popup) and the dropout of esparse.nn."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esparse import lottery, masks, nn, optim, pruning, supermasks


def _params(seed, sizes=((6, 5), (5, 3))):
    """A toy two-layer params dict: kernels (prunable) and biases (not)."""
    rng = np.random.default_rng(seed)
    return {
        f"l{i}": {
            "kernel": jnp.asarray(rng.standard_normal(s), jnp.float32),
            "bias": jnp.ones(s[1]),
        }
        for i, s in enumerate(sizes)
    }


def _prunable(params):
    return jax.tree_util.tree_map_with_path(lambda p, _: p[-1].key == "kernel", params)


def _np_keep_largest(values, k):
    """numpy reference: keep the k largest, ties to the lower flat index."""
    flat = np.asarray(values).ravel()
    keep = np.zeros(flat.size, bool)
    keep[np.argsort(-flat, kind="stable")[:k]] = True
    return keep.reshape(np.shape(values))


# --------------------------------------------------------------------------- top-k


class TopKTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_numpy_with_ties(self):
        rng = np.random.default_rng(0)
        x = rng.integers(-3, 4, size=(7, 9)).astype(np.float32)  # many ties
        x[0, 0] = -0.0
        f = self.variant(masks.top_k_mask)
        for k in (0, 1, 5, 31, 62, 63):
            got = np.asarray(f(jnp.asarray(x), k))
            np.testing.assert_array_equal(got, _np_keep_largest(x + 0.0, k))
            assert got.sum() == k


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.floats(width=32, allow_nan=False, allow_subnormal=False), min_size=24, max_size=24),
    st.data(),
)
def test_top_k_property(values, data):
    x = np.asarray(values, np.float32) + np.float32(0.0)
    k = data.draw(st.integers(0, x.size))
    got = np.asarray(masks.top_k_mask(jnp.asarray(x), k))
    np.testing.assert_array_equal(got, _np_keep_largest(x, k))


# --------------------------------------------------------------------------- pruning


def test_magnitude_prune_layer_matches_numpy():
    params = _params(0)
    mask = pruning.magnitude_prune(params, 0.3, prunable=_prunable(params))
    for name in ("l0", "l1"):
        w = np.asarray(params[name]["kernel"])
        n_keep = w.size - int(np.round(0.3 * w.size))
        np.testing.assert_array_equal(mask[name]["kernel"], _np_keep_largest(np.abs(w), n_keep))
        assert int(mask[name]["kernel"].sum()) == n_keep
        assert bool(mask[name]["bias"].all())
    assert int(masks.count(mask, prunable=_prunable(params))) == 21 + 11  # round(4.5) = 4


def test_magnitude_prune_global_matches_numpy():
    params = _params(1)
    mask = pruning.magnitude_prune(params, 0.5, prunable=_prunable(params), scope="global")
    flat = np.concatenate([np.abs(np.asarray(params[n]["kernel"])).ravel() for n in ("l0", "l1")])
    ref = _np_keep_largest(flat, 45 - int(np.round(0.5 * 45)))
    got = np.concatenate([np.asarray(mask[n]["kernel"]).ravel() for n in ("l0", "l1")])
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_allclose(masks.density(mask, prunable=_prunable(params)), 23 / 45)


def test_magnitude_prune_traced_sparsity_under_jit_and_vmap():
    params = _params(2)
    prunable = _prunable(params)
    sparsities = jnp.array([0.0, 0.2, 0.5, 0.9])
    prune = jax.jit(jax.vmap(lambda s: pruning.magnitude_prune(params, s, prunable=prunable)))
    counts = prune(sparsities)["l0"]["kernel"].sum(axis=(1, 2))
    np.testing.assert_array_equal(counts, [30, 24, 15, 3])


def test_magnitude_prune_per_leaf_and_current_mask():
    params = _params(3)
    prunable = _prunable(params)
    fractions = masks.per_leaf(params, 0.2, l1=0.4)
    mask = pruning.magnitude_prune(params, fractions, prunable=prunable)
    assert int(mask["l0"]["kernel"].sum()) == 24 and int(mask["l1"]["kernel"].sum()) == 9
    current = pruning.random_mask(jax.random.key(4), params, 0.5, prunable=prunable)
    nested = pruning.magnitude_prune(params, 0.2, prunable=prunable, current_mask=current)
    for a, b in zip(jax.tree.leaves(nested), jax.tree.leaves(current), strict=True):
        assert not np.any(np.asarray(a) & ~np.asarray(b))  # pruned stays pruned
    w = np.where(current["l0"]["kernel"], np.abs(params["l0"]["kernel"]), -1.0)
    np.testing.assert_array_equal(nested["l0"]["kernel"], _np_keep_largest(w, 15))


def test_random_mask_exact_counts():
    params = _params(5)
    prunable = _prunable(params)
    ref = pruning.magnitude_prune(params, masks.per_leaf(params, 0.3, l1=0.6), prunable=prunable)
    rand = pruning.random_mask(jax.random.key(6), ref)
    for a, b in zip(jax.tree.leaves(rand), jax.tree.leaves(ref), strict=True):
        assert int(a.sum()) == int(b.sum())
    assert not np.array_equal(rand["l0"]["kernel"], ref["l0"]["kernel"])
    other = pruning.random_mask(jax.random.key(7), ref)
    assert not np.array_equal(rand["l0"]["kernel"], other["l0"]["kernel"])
    by_density = pruning.random_mask(jax.random.key(8), params, 0.4, prunable=prunable)
    assert int(by_density["l0"]["kernel"].sum()) == 12 and bool(by_density["l0"]["bias"].all())
    np.testing.assert_allclose(masks.layer_density(by_density)["l1"]["kernel"], 6 / 15)


def test_apply_mask_zeroes_exactly():
    params = _params(9)
    mask = pruning.magnitude_prune(params, 0.5, prunable=_prunable(params))
    out = masks.apply_mask(params, mask)
    w = np.asarray(out["l0"]["kernel"])
    np.testing.assert_array_equal(w == 0, ~np.asarray(mask["l0"]["kernel"]))
    assert not np.any(np.signbit(w[w == 0]))


# --------------------------------------------------------------------------- optax


_RNG = np.random.default_rng(0)
_X = _RNG.standard_normal((32, 6)).astype(np.float32)
_Y = np.tanh(_X @ _RNG.standard_normal((6, 3))).astype(np.float32)


def _loss(params, x, y):
    h = jnp.tanh(x @ params["l0"]["kernel"] + params["l0"]["bias"])
    return jnp.mean((h @ params["l1"]["kernel"] + params["l1"]["bias"] - y) ** 2)


def _train(opt, params, x, y, steps):
    def step(carry, _):
        p, s = carry
        g = jax.grad(_loss)(p, x, y)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    return jax.lax.scan(step, (params, opt.init(params)), None, length=steps)[0][0]


def test_keep_pruned_zero_through_100_adam_steps():
    params = _params(10)
    x, y = _X, _Y
    mask = pruning.magnitude_prune(params, 0.6, prunable=_prunable(params))
    start = masks.apply_mask(params, mask)
    opt = optax.chain(optax.adamw(1e-2, weight_decay=1e-2), optim.keep_pruned_zero(mask))
    trained = _train(opt, start, x, y, 100)
    for w, m in zip(jax.tree.leaves(trained), jax.tree.leaves(mask), strict=True):
        np.testing.assert_array_equal(np.asarray(w)[~np.asarray(m)], 0.0)
    assert not np.allclose(trained["l0"]["kernel"], start["l0"]["kernel"])
    plain = _train(optax.adam(1e-2), start, x, y, 100)  # without the mask they drift
    assert np.any(np.asarray(plain["l0"]["kernel"])[~np.asarray(mask["l0"]["kernel"])] != 0)


def test_train_only_freezes_the_rest():
    params = {"scores": jnp.ones(3), "weights": jnp.ones(3)}
    opt = optim.train_only(optax.sgd(0.1), params, "scores")
    grads = {"scores": jnp.ones(3), "weights": jnp.ones(3)}
    updates, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(updates["scores"], -0.1)
    np.testing.assert_array_equal(updates["weights"], 0.0)


# --------------------------------------------------------------------------- IMP


def _tiny_train_fn(key, params, mask):
    """A few masked Adam steps on a minibatch drawn with the key; metrics hold the start point."""
    idx = jax.random.randint(key, (16,), 0, _X.shape[0])
    x, y = jnp.asarray(_X)[idx], jnp.asarray(_Y)[idx]
    opt = optax.chain(optax.adam(5e-2), optim.keep_pruned_zero(mask))
    trained = _train(opt, params, x, y, 5)
    return trained, {"loss": _loss(trained, x, y), "start": params}


def test_imp_rewind_params():
    params0 = _params(14)
    rewind = jax.tree.map(lambda p: p + 1.0, params0)
    res = lottery.imp(
        jax.random.key(15),
        params0,
        _tiny_train_fn,
        rounds=1,
        prune_fraction=0.5,
        prunable=_prunable(params0),
        rewind_params=rewind,
        scope="global",
    )
    mask1 = jax.tree.map(lambda m: m[1], res.masks)
    chex.assert_trees_all_equal(
        jax.tree.map(lambda s: s[1], res.metrics["start"]), masks.apply_mask(rewind, mask1)
    )
    np.testing.assert_allclose(res.densities, [1.0, 23 / 45])  # round(22.5) = 22 pruned


def test_imp_vmapped_over_8_seeds_counts_rewinding_and_single_runs():
    keys = jax.random.split(jax.random.key(16), 8)
    seeds = [_params(100 + s) for s in range(8)]
    params0 = jax.tree.map(lambda *p: jnp.stack(p), *seeds)
    prunable = _prunable(seeds[0])
    fractions = masks.per_leaf(seeds[0], 0.2, l1=0.1)

    def run(k, p):
        return lottery.imp(
            k, p, _tiny_train_fn, rounds=3, prune_fraction=fractions, prunable=prunable
        )

    batched = jax.device_get(jax.jit(jax.vmap(run))(keys, params0))
    kept0, kept1 = [30], [15]
    for _ in range(3):
        kept0.append(kept0[-1] - round(0.2 * kept0[-1]))
        kept1.append(kept1[-1] - round(0.1 * kept1[-1]))
    np.testing.assert_array_equal(batched.masks["l0"]["kernel"].sum(axis=(2, 3)), [kept0] * 8)
    np.testing.assert_array_equal(batched.masks["l1"]["kernel"].sum(axis=(2, 3)), [kept1] * 8)
    assert batched.masks["l0"]["bias"].all()
    np.testing.assert_allclose(batched.densities[0], (np.array(kept0) + kept1) / 45, rtol=1e-6)
    np.testing.assert_allclose(batched.layer_densities["l1"]["kernel"][3], np.array(kept1) / 15)
    assert batched.metrics["loss"].shape == (8, 4)
    single = jax.jit(run)
    for s in range(8):
        res = jax.tree.map(lambda m, s=s: m[s], batched)
        one = jax.device_get(single(keys[s], seeds[s]))
        chex.assert_trees_all_equal(res.masks, one.masks)
        chex.assert_trees_all_close(res.metrics, one.metrics, rtol=1e-5, atol=1e-6)
        # every round starts from theta_0 under its mask, bit for bit
        rewound = jax.tree.map(
            lambda p, m: np.where(m, np.asarray(p)[None], 0), seeds[s], res.masks
        )
        chex.assert_trees_all_equal(res.metrics["start"], rewound)
        for m in jax.tree.leaves(res.masks):  # nested: pruned weights stay pruned
            assert not np.any(m[1:] & ~m[:-1])
        for p, m in zip(jax.tree.leaves(res.final_params), jax.tree.leaves(res.masks), strict=True):
            assert not np.any(p[~m[-1]])


def _init(key):
    k0, k1 = jax.random.split(key)
    return {
        "l0": {"kernel": jax.random.normal(k0, (6, 5)), "bias": jnp.ones(5)},
        "l1": {"kernel": jax.random.normal(k1, (5, 3)), "bias": jnp.ones(3)},
    }


def test_controls():
    params0 = _params(17)
    prunable = _prunable(params0)
    mask = pruning.magnitude_prune(params0, 0.5, prunable=prunable)
    reinit = lottery.reinit_control(jax.random.key(18), _init, mask, _tiny_train_fn)
    start = reinit.metrics["start"]
    assert not np.allclose(start["l0"]["kernel"], masks.apply_mask(params0, mask)["l0"]["kernel"])
    chex.assert_trees_all_equal(start, masks.apply_mask(start, mask))
    rand = lottery.random_mask_control(jax.random.key(19), params0, mask, _tiny_train_fn)
    chex.assert_trees_all_equal(rand.metrics["start"], masks.apply_mask(params0, rand.mask))
    for a, b in zip(jax.tree.leaves(rand.mask), jax.tree.leaves(mask), strict=True):
        assert int(a.sum()) == int(b.sum())


# --------------------------------------------------------------------------- edge-popup


def test_edge_popup_mask_ranks_magnitudes_straight_through():
    """Ramanujan et al.'s GetSubnet ranks scores.abs(): -1.0 beats 0.3 and 0.1."""
    scores = jnp.array([[0.3, -1.0, 2.0], [-0.3, 0.1, 5.0]])
    mask = supermasks.edge_popup_mask(scores, 3)
    np.testing.assert_array_equal(mask, [[0, 1, 1], [0, 0, 1]])
    tied = supermasks.edge_popup_mask(jnp.array([0.3, -0.3, 0.1]), 1)
    np.testing.assert_array_equal(tied, [1, 0, 0])  # |0.3| tie: lower index
    c = jnp.arange(6.0).reshape(2, 3)
    grad = jax.grad(lambda s: jnp.sum(supermasks.edge_popup_mask(s, 3) * c))(scores)
    np.testing.assert_array_equal(grad, c * jnp.sign(scores))


# --------------------------------------------------------------------------- dropout


def test_dropout_rate_zero_is_identity():
    x = jax.random.normal(jax.random.key(20), (4, 5))
    assert nn.dropout(jax.random.key(21), x, 0.0) is x


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_dropout_expectation_and_rate(rate):
    n = 200_000
    x = jnp.full((n,), 3.0)
    key = jax.random.key(22)
    y = jax.jit(nn.dropout)(key, x, rate)
    keep = nn.dropout_mask(key, (n,), rate)
    np.testing.assert_array_equal(np.asarray(y) != 0, keep)
    np.testing.assert_allclose(np.asarray(y)[np.asarray(keep)], 3.0 / (1 - rate), rtol=1e-6)
    sd = np.sqrt(rate * (1 - rate) / n)
    assert abs(float(nn.kept_fraction(keep)) - (1 - rate)) < 5 * sd
    assert abs(float(jnp.mean(y)) - 3.0) < 5 * 3.0 * sd / (1 - rate)


# --------------------------------------------------------------------------- packing


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 9), st.integers(1, 9)), min_size=1, max_size=4),
    st.integers(0, 2**31 - 1),
)
def test_pack_round_trip(shapes, seed):
    rng = np.random.default_rng(seed)
    mask = {f"w{i}": rng.random(s) < 0.5 for i, s in enumerate(shapes)}
    packed = masks.pack(mask)
    assert sum(b.nbytes for b in packed.bits) == sum((a * b + 7) // 8 for a, b in shapes)
    back = masks.unpack(packed)
    chex.assert_trees_all_equal(back, mask)


# --------------------------------------------------------------------------- bad input


def test_bad_inputs_raise():
    params = _params(23)
    prunable = _prunable(params)
    for bad in (1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="sparsity"):
            pruning.magnitude_prune(params, bad, prunable=prunable)
    with pytest.raises(ValueError, match="sparsity"):
        pruning.magnitude_prune(params, masks.per_leaf(params, 0.2, l1=1.0), prunable=prunable)
    with pytest.raises(ValueError, match="sparsity"):
        pruning.magnitude_prune(
            params, masks.per_leaf(params, 0.2), prunable=prunable, scope="global"
        )
    nan_params = {**params, "l1": {**params["l1"], "kernel": params["l1"]["kernel"] * np.nan}}
    with pytest.raises(ValueError, match=r"params\['l1'\]\['kernel'\] holds 15 NaN"):
        pruning.magnitude_prune(nan_params, 0.2, prunable=prunable, check_finite=True)
    # by default nothing is read on the host: the NaN leaf keeps no weight, the others prune
    poisoned = pruning.magnitude_prune(nan_params, 0.2, prunable=prunable)
    assert not poisoned["l1"]["kernel"].any() and poisoned["l0"]["kernel"].sum() == 24
    assert poisoned["l1"]["bias"].all()
    glob = pruning.magnitude_prune(nan_params, 0.2, prunable=prunable, scope="global")
    assert not glob["l0"]["kernel"].any() and not glob["l1"]["kernel"].any()
    with pytest.raises(ValueError, match="scope"):
        pruning.magnitude_prune(params, 0.2, prunable=prunable, scope="row")
    with pytest.raises(ValueError, match="prunable"):
        pruning.magnitude_prune(params, 0.2, prunable={"l0": True})
    mask = masks.ones_like(params)
    wrong_shape = {**mask, "l0": {**mask["l0"], "kernel": jnp.ones((5, 6), bool)}}
    with pytest.raises(ValueError, match=r"mask\['l0'\]\['kernel'\] must have shape \(6, 5\)"):
        masks.apply_mask(params, wrong_shape)
    with pytest.raises(ValueError, match="mask must have the tree structure"):
        masks.apply_mask(params, {"l0": mask["l0"]})
    with pytest.raises(ValueError, match="current_mask"):
        pruning.magnitude_prune(params, 0.2, prunable=prunable, current_mask=wrong_shape)
    with pytest.raises(ValueError, match="mask"):
        optim.keep_pruned_zero(wrong_shape).init(params)
    for bad in (1.0, -0.2):
        with pytest.raises(ValueError, match="rate"):
            nn.dropout(jax.random.key(0), jnp.ones(3), bad)
    with pytest.raises(ValueError, match="density"):
        pruning.random_mask(jax.random.key(0), params, 0.0, prunable=prunable)
    with pytest.raises(ValueError, match="like must be a bool mask"):
        pruning.random_mask(jax.random.key(0), params)
    with pytest.raises(ValueError, match="prune_fraction"):
        lottery.imp(
            jax.random.key(0),
            params,
            _tiny_train_fn,
            rounds=2,
            prune_fraction=1.0,
            prunable=prunable,
        )
    with pytest.raises(ValueError, match="rounds"):
        lottery.imp(
            jax.random.key(0),
            params,
            _tiny_train_fn,
            rounds=0,
            prune_fraction=0.2,
            prunable=prunable,
        )
    with pytest.raises(ValueError, match="trainable"):
        optim.train_only(optax.sgd(0.1), {"a": jnp.ones(2)}, "scores")
    packed = masks.pack({"a": np.ones(10, bool)})
    with pytest.raises(ValueError, match="packed.bits"):
        masks.unpack(packed._replace(shapes=((30,),)))
    with pytest.raises(ValueError, match="bool"):
        masks.pack({"a": np.ones(3)})
