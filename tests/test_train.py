"""esparse.train and esparse.engine: the scan loop, seed vmap, chunks, sharding, checkpoints."""

import os
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from esparse import checkpoint as ckpt
from esparse import engine
from esparse import train as tr
from esparse.data import Dataset

# Shared set-up, also run by the subprocess that gets killed in the resume test.
_SETUP = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, optax
    from esparse.data import Dataset

    def init(key):
        k1, k2 = jax.random.split(key)
        return {"w1": jax.random.normal(k1, (4, 16)) / 2, "b1": jnp.zeros(16),
                "w2": jax.random.normal(k2, (16, 3)) / 4}

    def apply(params, x, key, train):
        h = jnp.tanh(x @ params["w1"] + params["b1"])
        if train:  # dropout 0.25, so the step keys matter
            h = h * jax.random.bernoulli(key, 0.75, h.shape) / 0.75
        return h @ params["w2"]

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    y = ((x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5)).astype(np.int32)
    data = Dataset(*(jnp.asarray(a) for a in (x[:64], y[:64], x[64:], y[64:])))
    optimizer = optax.adam(0.03)
    keys = jax.random.split(jax.random.key(0), 4)
    params = jax.vmap(init)(jax.random.split(jax.random.key(1), 4))
    kwargs = dict(apply_fn=apply, optimizer=optimizer, steps=40, batch_size=16, log_every=8)
    """
)
_ns: dict = {}
exec(_SETUP, _ns)
init, apply, data, optimizer = _ns["init"], _ns["apply"], _ns["data"], _ns["optimizer"]
KEYS, PARAMS, KW = _ns["keys"], _ns["params"], _ns["kwargs"]
SEEDS_KW = {**KW, "checkpoint_every": 10}  # segments end mid-epoch; results do not depend on it


def _seed(tree, i):
    return jax.tree.map(lambda a: a[i], tree)


def _assert_close(a, b, exact=False):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if exact:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        else:
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def reference():
    """The unchunked, unsharded, unsaved 4-seed run, and one single-seed train()."""
    return (
        engine.train_seeds(KEYS, PARAMS, data, **SEEDS_KW),
        tr.train(KEYS[1], _seed(PARAMS, 1), data, **KW),
    )


def _cross_entropy(params, x, y):
    logits = np.asarray(apply(params, x, None, False), np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(y)), np.asarray(y)].mean()


def test_loss_decreases_and_history_matches_numpy(reference):
    _, one = reference
    np.testing.assert_array_equal(one.log_steps, [8, 16, 24, 32, 40])
    assert set(one.history) == {"train_loss", "train_accuracy", "test_loss", "test_accuracy"}
    start = _cross_entropy(_seed(PARAMS, 1), data.x_train, data.y_train)
    assert one.history["train_loss"][-1] < 0.6 * start
    assert one.final["train_accuracy"] >= 0.85
    end = _cross_entropy(one.params, data.x_train, data.y_train)
    np.testing.assert_allclose(one.final["train_loss"], end, rtol=1e-5)
    np.testing.assert_allclose(
        one.final["test_loss"], _cross_entropy(one.params, data.x_test, data.y_test), rtol=1e-5
    )
    acc = np.mean(np.argmax(apply(one.params, data.x_test, None, False), 1) == data.y_test)
    np.testing.assert_allclose(one.final["test_accuracy"], acc)


def test_train_seeds_equals_single_train_calls(reference):
    many, one = reference
    assert many.log_steps.shape == (4, 5) and many.history["test_loss"].shape == (4, 5)
    _assert_close(_seed(many, 1), one)
    for i in (0, 3):
        _assert_close(_seed(many, i), tr.train(KEYS[i], _seed(PARAMS, i), data, **KW))
    # without segments the whole run is one program per chunk: the same result
    _assert_close(engine.train_seeds(KEYS, PARAMS, data, **KW), many)


def test_chunked_and_sharded_equal_unchunked(reference):
    many, _ = reference
    # 12 seeds in chunks of 8 (the last one padded), each chunk sharded over the 8 devices
    keys12, params12 = jax.tree.map(lambda a: jnp.concatenate([a, a, a]), (KEYS, PARAMS))
    result = engine.train_seeds(keys12, params12, data, shard=True, chunk_size=8, **SEEDS_KW)
    assert result.params["w1"].shape == (12, 4, 16)
    chunk = engine.train_seeds(keys12[:8], _seed(params12, slice(8)), data, shard=True, **SEEDS_KW)
    assert len(chunk.params["w1"].sharding.device_set) == 8 == len(jax.devices())
    assert chunk.params["w1"].sharding.spec == jax.sharding.PartitionSpec("seeds")
    whole = engine.train_seeds(keys12, params12, data, chunk_size=8, **KW)
    for i in range(3):
        _assert_close(jax.tree.map(lambda a, i=i: a[4 * i : 4 * i + 4], result), many)
        _assert_close(jax.tree.map(lambda a, i=i: a[4 * i : 4 * i + 4], whole), many)
    with pytest.raises(ValueError, match="keys=4 .* divisible by the 8 devices"):
        engine.train_seeds(KEYS, PARAMS, data, shard=True, **SEEDS_KW)
    with pytest.raises(ValueError, match="chunk_size=4 .* divisible"):
        engine.train_seeds(keys12, params12, data, shard=True, chunk_size=4, **SEEDS_KW)


def test_mask_keeps_weights_exactly_zero_with_per_seed_labels():
    mask = jax.tree.map(lambda p: jnp.arange(p.size).reshape(p.shape) % 3 != 0, PARAMS)
    labels = jax.vmap(lambda k: jax.random.randint(k, (64,), 0, 3))(KEYS)
    per_seed = Dataset(
        jnp.broadcast_to(data.x_train, (4, 64, 4)), labels,
        jnp.broadcast_to(data.x_test, (4, 32, 4)), jnp.broadcast_to(data.y_test, (4, 32)),
    )  # fmt: skip
    result = engine.train_seeds(KEYS, PARAMS, per_seed, data_per_seed=True, mask=mask, **SEEDS_KW)
    for p, m, p0 in zip(*(jax.tree.leaves(t) for t in (result.params, mask, PARAMS)), strict=True):
        assert np.all(np.asarray(p)[~np.asarray(m)] == 0.0)
        assert np.all(np.asarray(p)[np.asarray(m)] != np.asarray(p0)[np.asarray(m)])
    for i in range(4):  # every seed was evaluated on its own labels
        own = _cross_entropy(_seed(result.params, i), data.x_train, labels[i])
        np.testing.assert_allclose(result.final["train_loss"][i], own, rtol=1e-5)


def _linear(w, x, key, train):
    return x @ w


def _visits(sampling, n, batch_size, steps, log_every):
    """Min and max number of minibatch visits per sample, logged every log_every steps.

    x = one-hot rows, loss -mean(x @ w) and sgd(1): each visit adds 1/batch_size to w[i].
    """
    onehot = jnp.eye(n)
    ds = Dataset(onehot, jnp.zeros((n,)), onehot, jnp.zeros((n,)))
    result = tr.train(
        jax.random.key(5), jnp.zeros((n, 1)), ds, apply_fn=_linear, optimizer=optax.sgd(1.0),
        steps=steps, batch_size=batch_size, loss=lambda out, y: -jnp.mean(out),
        sampling=sampling, log_every=log_every,
        metrics={"least": lambda w, d: jnp.min(w) * batch_size,
                 "most": lambda w, d: jnp.max(w) * batch_size},
    )  # fmt: skip
    assert set(result.history) == {"train_loss", "test_loss", "least", "most"}  # no accuracy
    return np.asarray(result.history["least"]), np.asarray(result.history["most"]), result


def test_shuffle_visits_each_sample_once_per_epoch():
    least, most, _ = _visits("shuffle", 12, 4, 9, 3)  # 3 batches per epoch
    np.testing.assert_array_equal(least, [1, 2, 3])
    np.testing.assert_array_equal(most, [1, 2, 3])
    _, _, partial = _visits("shuffle", 10, 4, 2, 2)  # 2 batches per epoch, 2 samples dropped
    assert sorted((np.asarray(partial.params[:, 0]) * 4).tolist()) == [0.0] * 2 + [1.0] * 8
    least, most, _ = _visits("replace", 12, 4, 30, 30)
    assert least[-1] < 10 < most[-1]


class TrainJitTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_train_is_jittable_and_mse_one_hot_has_accuracy(self):
        one_hot = Dataset(data.x_train, jax.nn.one_hot(data.y_train, 3), data.x_test,
                          jax.nn.one_hot(data.y_test, 3))  # fmt: skip

        @self.variant
        def run(key, params, ds):
            return tr.train(
                key, params, ds, apply_fn=_linear, optimizer=optimizer, steps=10, batch_size=16,
                loss="mse", log_every=4,
            )  # fmt: skip

        result = run(KEYS[0], jnp.zeros((4, 3)), one_hot)
        np.testing.assert_array_equal(result.log_steps, [4, 8, 10])
        out = data.x_test @ result.params
        np.testing.assert_allclose(
            result.final["test_loss"], np.mean((out - one_hot.y_test) ** 2), rtol=1e-5
        )
        acc = np.mean(np.argmax(out, 1) == data.y_test)
        np.testing.assert_allclose(result.final["test_accuracy"], acc)


def test_no_retrace_on_second_call():
    w = jnp.zeros((4, 4, 3))
    small = dict(apply_fn=_linear, optimizer=optimizer, steps=5, batch_size=8, sampling="replace")

    # one compile traces the metrics twice: for the history's shapes, and in the scan
    @chex.assert_max_traces(n=2)
    def norm(params, ds):
        return jnp.sum(params**2)

    first = engine.train_seeds(KEYS, w, data, metrics={"sq": norm}, **small)
    second = engine.train_seeds(KEYS, w, data, metrics={"sq": norm}, **small)
    _assert_close(first, second, exact=True)
    np.testing.assert_allclose(first.final["sq"], jnp.sum(first.params**2, (1, 2)), rtol=1e-6)


_KILLED_RUN = _SETUP + textwrap.dedent(
    """
    import os, sys
    from esparse import checkpoint, engine
    save = checkpoint.save

    def save_then_die(*args, **kwargs):
        save(*args, **kwargs)
        os._exit(17)  # killed right after the first checkpoint, no clean-up

    checkpoint.save = save_then_die
    engine.train_seeds(keys, params, data, checkpoint_dir=sys.argv[1], checkpoint_every=10,
                      **kwargs)
    """
)


def test_killed_run_resumes_bit_identical(tmp_path, monkeypatch, reference):
    killed, fresh = str(tmp_path / "killed"), str(tmp_path / "fresh")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", _KILLED_RUN, killed], env=env, timeout=120)
    assert proc.returncode == 17
    assert ckpt.latest_step(killed) == 10

    saved = []
    save = ckpt.save
    monkeypatch.setattr(ckpt, "save", lambda d, s, *a: (saved.append(s), save(d, s, *a)))
    args = SEEDS_KW
    resumed = engine.train_seeds(KEYS, PARAMS, data, checkpoint_dir=killed, **args)
    assert saved == [20, 30, 40]  # resumed after step 10 (mid-epoch), did not start over
    uninterrupted = engine.train_seeds(KEYS, PARAMS, data, checkpoint_dir=fresh, **args)
    _assert_close(resumed, uninterrupted, exact=True)
    _assert_close(resumed, reference[0], exact=True)
    saved.clear()  # a finished run returns from its last checkpoint without training
    _assert_close(engine.train_seeds(KEYS, PARAMS, data, checkpoint_dir=fresh, **args),
                  uninterrupted, exact=True)  # fmt: skip
    assert saved == []

    with pytest.raises(ValueError, match="checkpoint_dir .*another run"):
        engine.train_seeds(KEYS, PARAMS, data, checkpoint_dir=fresh, **{**args, "batch_size": 8})

    def damage(step):
        for root, _, files in os.walk(os.path.join(fresh, str(step), "state")):
            for name in files:
                with open(os.path.join(root, name), "wb") as f:
                    f.write(b"garbage")

    # a damaged newest step: back to the newest that restores (30), with a warning naming it
    damage(40)
    saved.clear()
    with pytest.warns(RuntimeWarning, match="checkpoint_dir .*step 40 does not restore"):
        again = engine.train_seeds(KEYS, PARAMS, data, checkpoint_dir=fresh, **args)
    assert saved == [40] and ckpt.latest_step(fresh) == 40
    _assert_close(again, uninterrupted, exact=True)
    # every step damaged: the call starts over, with a warning
    damage(30)
    damage(40)
    saved.clear()
    with pytest.warns(RuntimeWarning, match="no checkpoint restores; this call starts over"):
        again = engine.train_seeds(KEYS, PARAMS, data, checkpoint_dir=fresh, **args)
    assert saved == [10, 20, 30, 40]
    _assert_close(again, uninterrupted, exact=True)


def test_vmap_seeds_matches_loop_chunked_and_sharded():
    def fn(key, x, scale):
        return {"y": scale * (x @ jax.random.normal(key, (4, 2))), "n": jnp.sum(x)}

    keys = jax.random.split(jax.random.key(3), 8)
    x, scales = data.x_test[:5], jnp.arange(8.0)
    want = [fn(keys[i], x, scales[i]) for i in range(8)]
    for kwargs in ({}, {"chunk_size": 3}, {"shard": True}):
        got = engine.vmap_seeds(fn, keys, x, scales, in_axes=(None, 0), **kwargs)
        for i in range(8):
            _assert_close(_seed(got, i), want[i])
    with pytest.raises(ValueError, match="in_axes"):
        engine.vmap_seeds(fn, keys, x, scales, in_axes=(None, 1))
    with pytest.raises(ValueError, match=r"args\[1\] .*leading seed axis of 8"):
        engine.vmap_seeds(fn, keys, x, scales[:3], in_axes=(None, 0))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"steps": 0}, "steps must be a positive int, got 0"),
        ({"batch_size": 65}, "batch_size must be at most .*64.*got 65"),
        ({"log_every": -1}, "log_every"),
        ({"loss": "hinge"}, "loss must be one of .*'hinge'"),
        ({"sampling": "bootstrap"}, "sampling must be one of .*'bootstrap'"),
        ({"metrics": {"train_loss": jnp.sum}}, "metrics"),
        ({"optimizer": "adam"}, "optimizer"),
        ({"chunk_size": 0}, "chunk_size must be a positive int, got 0"),
        ({"checkpoint_dir": "/tmp/x"}, "checkpoint_every must be given"),
        ({"mask": {"w1": True}}, "mask must have the tree structure"),
    ],
)
def test_bad_inputs_raise(change, match):
    with pytest.raises(ValueError, match=match):
        engine.train_seeds(KEYS, PARAMS, data, **{**KW, **change})


def test_bad_data_and_params_raise():
    short = data._replace(y_train=data.y_train[:50])
    with pytest.raises(ValueError, match="data.x_train and data.y_train .* 64 and 50"):
        tr.train(KEYS[0], _seed(PARAMS, 0), short, **KW)
    nan = data._replace(x_test=data.x_test.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="data.x_test holds 1 NaN"):
        tr.train(KEYS[0], _seed(PARAMS, 0), nan, check_finite=True, **KW)
    assert np.isnan(tr.train(KEYS[0], _seed(PARAMS, 0), nan, **KW).final["test_loss"])
    match = r"params\['b1'\] must have a leading seed axis of 3 .*jax.vmap\(model.init\)"
    with pytest.raises(ValueError, match=match):
        engine.train_seeds(KEYS[:3], PARAMS, data, **KW)
    with pytest.raises(ValueError, match="data must be an esparse.data.Dataset"):
        tr.train(KEYS[0], _seed(PARAMS, 0), tuple(data), **KW)


def test_mse_refuses_outputs_shaped_unlike_the_targets():
    """An (n, 1) output minus (n,) targets would broadcast to (n, n): refused before compute."""
    regression = data._replace(y_train=data.x_train[:, 0], y_test=data.x_test[:, 0])
    kw = dict(apply_fn=_linear, optimizer=optimizer, steps=4, batch_size=16, loss="mse")
    match = r"data.y_train must have the shape of apply_fn's outputs.*\(64, 1\).*\(64,\)"
    with pytest.raises(ValueError, match=match):
        tr.train(KEYS[0], jnp.zeros((4, 1)), regression, **kw)
    with pytest.raises(ValueError, match=match):
        engine.train_seeds(KEYS, jnp.zeros((4, 4, 1)), regression, **kw)
    fine = tr.train(
        KEYS[0],
        jnp.zeros((4, 1)),
        regression._replace(y_train=regression.y_train[:, None], y_test=regression.y_test[:, None]),
        **kw,
    )
    assert fine.final["train_loss"].shape == ()


def _small_mlp_problem():
    """key, x (64, 5), y (64,) labels, the Dataset (test = first 32 rows), a 5-8-2 MLP and
    its params."""
    from esparse import nn

    key = jax.random.key(0)
    x = jax.random.normal(key, (64, 5))
    y = (x[:, 0] > 0).astype(jnp.int32)
    model = nn.mlp((5, 8, 2))
    return key, x, y, Dataset(x, y, x[:32], y[:32]), model, model.init(jax.random.key(1))


def test_eval_rows_logs_the_builtins_on_a_fixed_subset():
    """eval_rows=n: the logged train/test metrics are those of the first n rows of each split."""
    key, x, y, ds, model, params = _small_mlp_problem()
    kw = dict(apply_fn=model.apply, optimizer=optax.sgd(0.1), steps=4, batch_size=16)
    full = tr.train(key, params, ds, **kw)
    sub = tr.train(key, params, ds, eval_rows=10, **kw)
    out = model.apply(full.params, x[:10], None, False)
    loss = optax.softmax_cross_entropy_with_integer_labels(out, y[:10]).mean()
    assert float(sub.final["train_loss"]) == pytest.approx(float(loss), rel=1e-5)
    assert float(sub.final["train_loss"]) != pytest.approx(float(full.final["train_loss"]))
    with pytest.raises(ValueError, match="eval_rows"):
        tr.train(key, params, ds, eval_rows=0, **kw)


def test_metrics_every_logs_the_metrics_on_their_own_cadence_in_one_run():
    """metrics_every=6 with log_every=2: the losses as without metrics, the metrics at steps
    6, 12, 14 equal to a run logging everything every 6 (the same trajectory)."""
    key, x, y, ds, model, params = _small_mlp_problem()
    norm = {"norm": lambda p, d: sum(jnp.sum(v**2) for v in jax.tree.leaves(p))}
    kw = dict(apply_fn=model.apply, optimizer=optax.adam(0.05), steps=14, batch_size=16)
    both = tr.train(key, params, ds, log_every=2, metrics=norm, metrics_every=6, **kw)
    fine = tr.train(key, params, ds, log_every=2, **kw)
    coarse = tr.train(key, params, ds, log_every=6, metrics=norm, **kw)
    np.testing.assert_array_equal(both.log_steps, np.arange(2, 15, 2))
    np.testing.assert_array_equal(both.metric_steps, [6, 12, 14])
    np.testing.assert_array_equal(coarse.metric_steps, coarse.log_steps)
    for name in fine.history:
        np.testing.assert_array_equal(both.history[name], fine.history[name])
    np.testing.assert_array_equal(both.history["norm"], coarse.history["norm"])
    assert float(both.final["norm"]) == float(coarse.history["norm"][-1])
    seeds = engine.train_seeds(
        jax.random.split(key, 2),
        jax.vmap(model.init)(jax.random.split(key, 2)),
        ds,
        log_every=2,
        metrics=norm,
        metrics_every=6,
        **kw,
    )
    assert seeds.history["norm"].shape == (2, 3) and seeds.metric_steps.shape == (2, 3)
    with pytest.raises(ValueError, match="metrics_every"):
        tr.train(key, params, ds, metrics=norm, metrics_every=0, **kw)
