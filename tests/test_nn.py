"""Tests for esparse.nn: pure (init, apply) models, residual MLP, supermasks, mean field."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from esparse import masks, nn, optim, pruning, supermasks

X = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)


def _n_params(params):
    return sum(int(np.size(p)) for p in jax.tree.leaves(params))


def _relu(x):
    return np.maximum(x, 0.0)


class MLPTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_forward_matches_numpy(self):
        model = nn.mlp((4, 6, 6, 3), residual=True, kernel_init="kaiming")
        params = model.init(jax.random.key(0))
        y = self.variant(model.apply)(params, X)
        hidden = self.variant(model.hidden)(params, X)
        p = jax.device_get(params)
        h0 = _relu(X @ p["hidden_0"]["kernel"] + p["hidden_0"]["bias"])
        h1 = h0 + _relu(h0 @ p["hidden_1"]["kernel"] + p["hidden_1"]["bias"])
        np.testing.assert_allclose(hidden[0], h0, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(hidden[1], h1, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            y, h1 @ p["out"]["kernel"] + p["out"]["bias"], rtol=1e-5, atol=1e-5
        )


def test_residual_has_the_plain_parameter_count():
    plain = nn.mlp((4, 8, 8, 8, 3)).init(jax.random.key(1))
    res = nn.mlp((4, 8, 8, 8, 3), residual=True).init(jax.random.key(1))
    assert _n_params(plain) == _n_params(res) == 4 * 8 + 8 + 2 * (8 * 8 + 8) + 8 * 3 + 3
    chex.assert_trees_all_equal(plain, res)  # the skip adds no parameter, same init
    x = jnp.asarray(X)
    plain_y = nn.mlp((4, 8, 8, 8, 3)).apply(plain, x)
    res_y = nn.mlp((4, 8, 8, 8, 3), residual=True).apply(res, x)
    assert not np.allclose(plain_y, res_y)


def test_init_vmaps_over_seeds_and_apply_over_params():
    model = nn.mlp((4, 6, 3), dropout_rate=0.5)
    keys = jax.random.split(jax.random.key(2), 8)
    params = jax.vmap(model.init)(keys)
    assert params["hidden_0"]["kernel"].shape == (8, 4, 6)
    ys = jax.vmap(model.apply, in_axes=(0, None))(params, X)
    for s in (0, 7):
        one = model.apply(jax.tree.map(lambda p, s=s: p[s], params), X)
        np.testing.assert_allclose(ys[s], one, rtol=1e-5, atol=1e-6)
    hid = jax.vmap(model.hidden, in_axes=(0, None))(params, X)
    assert len(hid) == 1 and hid[0].shape == (8, 5, 6)


def test_dropout_only_in_training():
    model = nn.mlp((4, 64, 3), dropout_rate=0.5, input_dropout_rate=0.2)
    params = model.init(jax.random.key(3))
    x = jnp.asarray(X)
    eval_y = model.apply(params, x)
    np.testing.assert_array_equal(eval_y, model.apply(params, x, jax.random.key(4), False))
    a = model.apply(params, x, jax.random.key(4), True)
    b = model.apply(params, x, jax.random.key(4), True)
    c = model.apply(params, x, jax.random.key(5), True)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, eval_y)
    with pytest.raises(ValueError, match="key"):
        model.apply(params, x, None, True)


def test_kernel_mask_spec_and_masked_training_fit():
    model = nn.mlp((4, 6, 3))
    params = model.init(jax.random.key(6))
    spec = nn.kernel_mask_spec(params)
    assert spec == {
        "hidden_0": {"kernel": True, "bias": False},
        "out": {"kernel": True, "bias": False},
    }
    mask = pruning.magnitude_prune(params, 0.5, prunable=spec)
    y = model.apply(masks.apply_mask(params, mask), X)
    p = jax.device_get(params)
    m = jax.device_get(mask)
    h = _relu(X @ (p["hidden_0"]["kernel"] * m["hidden_0"]["kernel"]) + p["hidden_0"]["bias"])
    ref = h @ (p["out"]["kernel"] * m["out"]["kernel"]) + p["out"]["bias"]
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


def test_masked_dense():
    layer = nn.MaskedDense(3)
    variables = layer.init(jax.random.key(7), X)
    w = np.asarray(variables["params"]["kernel"])
    mask = np.random.default_rng(1).random((4, 3)) < 0.5
    variables = {"params": {"kernel": w, "bias": np.arange(3.0, dtype=np.float32)}}
    y = layer.apply(variables, X, mask)
    np.testing.assert_allclose(y, X @ (w * mask) + np.arange(3.0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.apply(variables, X), X @ w + np.arange(3.0), rtol=1e-5)


def test_meanfield_formula():
    model = nn.meanfield_two_layer(4, 16, activation="tanh")
    params = model.init(jax.random.key(8))
    assert params["a"].shape == (16,) and params["w"].shape == (16, 4)
    assert nn.kernel_mask_spec(params) == {"a": False, "w": False}
    p = jax.device_get(params)
    ref = np.tanh(X @ p["w"].T) @ p["a"] / 16
    np.testing.assert_allclose(model.apply(params, X), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.hidden(params, X)[0], np.tanh(X @ p["w"].T), rtol=1e-5)


def test_expansion_readout_fixed_projection_and_k_active():
    model = nn.expansion_readout(4, 40, 3, k=5)
    params = model.init(jax.random.key(9))
    assert params["projection"].shape == (4, 40)
    (code,) = model.hidden(params, X)
    np.testing.assert_array_equal((np.asarray(code) != 0).sum(axis=1), 5)
    z = X @ np.asarray(params["projection"])
    top = np.argsort(-z, axis=1)[:, :5]
    np.testing.assert_array_equal(
        np.sort(np.nonzero(np.asarray(code))[1].reshape(5, 5)), np.sort(top, axis=1)
    )
    grads = jax.grad(lambda p: jnp.sum(model.apply(p, X) ** 2))(params)
    np.testing.assert_array_equal(grads["projection"], 0.0)
    assert np.any(np.asarray(grads["readout"]["kernel"]) != 0)
    opt = optim.train_only(optax.adamw(1e-2, weight_decay=0.1), params, "readout")
    updates, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_array_equal(updates["projection"], 0.0)


def test_supermask_scores_learn_weights_frozen():
    widths = (4, 16, 3)
    model = nn.supermask_mlp(widths, keep_fraction=0.5)
    params = model.init(jax.random.key(10))
    w0 = np.asarray(params["weights"]["layer_0"])
    np.testing.assert_allclose(np.abs(w0), np.sqrt(2 / 4), rtol=1e-6)  # signed constant
    assert 0 < (w0 > 0).mean() < 1
    y_target = jnp.asarray(np.random.default_rng(2).standard_normal((5, 3)), jnp.float32)

    def loss(p):
        return jnp.mean((model.apply(p, X) - y_target) ** 2)

    grads = jax.grad(loss)(params)
    for name in ("layer_0", "layer_1"):
        assert np.any(np.asarray(grads["scores"][name]) != 0)
        np.testing.assert_array_equal(grads["weights"][name], 0.0)
    opt = optim.train_only(optax.adam(5e-2), params, "scores")

    @jax.jit
    def fit(p):
        def step(carry, _):
            p, s = carry
            u, s = opt.update(jax.grad(loss)(p), s, p)
            return (optax.apply_updates(p, u), s), loss(p)

        return jax.lax.scan(step, (p, opt.init(p)), None, length=30)

    (trained, _), losses = fit(params)
    chex.assert_trees_all_equal(trained["weights"], params["weights"])
    assert not np.allclose(trained["scores"]["layer_0"], params["scores"]["layer_0"])
    assert float(losses[-1]) < float(losses[0])
    for name, k in (("layer_0", 32), ("layer_1", 24)):  # half of 4 * 16 and of 16 * 3
        assert int(supermasks.edge_popup_mask(trained["scores"][name], k).sum()) == k
    keys = jax.random.split(jax.random.key(11), 8)
    batch = jax.vmap(model.init)(keys)
    assert batch["scores"]["layer_1"].shape == (8, 16, 3)
    chex.assert_trees_all_equal(jax.tree.map(lambda p: p[3], batch), model.init(keys[3]))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="widths"):
        nn.mlp((4,))
    with pytest.raises(ValueError, match=r"widths\[1\]"):
        nn.mlp((4, 0, 3))
    with pytest.raises(ValueError, match="activation"):
        nn.mlp((4, 3), activation="swish2")
    with pytest.raises(ValueError, match="dropout_rate"):
        nn.mlp((4, 3), dropout_rate=1.0)
    with pytest.raises(ValueError, match="input_dropout_rate"):
        nn.mlp((4, 3), input_dropout_rate=-0.1)
    with pytest.raises(ValueError, match="kernel_init"):
        nn.mlp((4, 3), kernel_init="xavier")
    model = nn.mlp((4, 3))
    with pytest.raises(ValueError, match="x must have last dimension d_in=4"):
        model.apply(model.init(jax.random.key(0)), jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="keep_fraction"):
        nn.supermask_mlp((4, 3), keep_fraction=0.0)
    with pytest.raises(ValueError, match="k"):
        nn.expansion_readout(4, 10, 3, k=11)
    with pytest.warns(DeprecationWarning, match="expand_sparsify is deprecated"):
        old = nn.expand_sparsify(4, 10, 2, 3)
    new = nn.expansion_readout(4, 10, 3, k=2)
    params = new.init(jax.random.key(0))
    np.testing.assert_array_equal(old.apply(params, X), new.apply(params, X))
    shared = nn.expansion_readout(4, 10, 3, fraction=0.2)  # 2 of 10
    np.testing.assert_array_equal(shared.apply(params, X), new.apply(params, X))
    with pytest.raises(ValueError, match="m"):
        nn.meanfield_two_layer(4, 0)
