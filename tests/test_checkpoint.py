"""esparse.checkpoint: atomic save, latest step, restore into a like-tree, fingerprints."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from esparse import checkpoint as ckpt


def _state():
    params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones((3,), jnp.float32)}
    return (params, optax.adam(1e-3).init(params), None, {"loss": jnp.arange(4, dtype=jnp.int32)})


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_roundtrip_of_optax_state_and_metadata(tmp_path):
    state = _state()
    assert ckpt.latest_step(tmp_path / "missing") is None
    ckpt.save(tmp_path, 3, state, {"fingerprint": "abc", "note": [1, 2]})
    assert ckpt.latest_step(tmp_path) == 3
    assert ckpt.load_metadata(tmp_path, 3) == {"fingerprint": "abc", "note": [1, 2]}
    like = jax.tree.map(jnp.zeros_like, state)
    _assert_trees_equal(ckpt.restore(tmp_path, 3, like=like), state)
    # the rename is the commit: no temporary directory is left behind
    assert sorted(os.listdir(tmp_path)) == ["3"]


def test_restore_keeps_the_sharding_of_like(tmp_path):
    mesh = Mesh(np.array(jax.devices()), ("seeds",))
    sharding = NamedSharding(mesh, PartitionSpec("seeds"))
    x = jax.device_put(jnp.arange(16.0).reshape(8, 2), sharding)
    ckpt.save(tmp_path, 1, {"x": x}, {})
    got = ckpt.restore(tmp_path, 1, like={"x": x})["x"]
    assert got.sharding.is_equivalent_to(sharding, 2)
    np.testing.assert_array_equal(np.asarray(got), np.arange(16.0).reshape(8, 2))


def test_never_overwrites_and_refuses_another_runs_directory(tmp_path):
    state = _state()
    ckpt.save(tmp_path, 2, state, {"fingerprint": "run-a"})
    with pytest.raises(ValueError, match="already holds step 2"):
        ckpt.save(tmp_path, 2, jax.tree.map(jnp.zeros_like, state), {"fingerprint": "run-a"})
    with pytest.raises(ValueError, match="checkpoint_dir .*another run"):
        ckpt.save(tmp_path, 5, state, {"fingerprint": "run-b"})
    _assert_trees_equal(ckpt.restore(tmp_path, 2, like=state), state)
    ckpt.save(tmp_path, 4, state, {"fingerprint": "run-a"})
    assert ckpt.latest_step(tmp_path) == 4


def test_half_written_step_is_ignored(tmp_path):
    state = _state()
    ckpt.save(tmp_path, 1, state, {"fingerprint": "f"})
    # what a process killed during save leaves: an uncommitted temporary directory
    (tmp_path / "2.orbax-checkpoint-tmp").mkdir()
    (tmp_path / "2.orbax-checkpoint-tmp" / "partial").write_text("x")
    assert ckpt.latest_step(tmp_path) == 1


def test_corrupt_or_mismatched_checkpoint_raises_value_error(tmp_path):
    state = _state()
    ckpt.save(tmp_path, 1, state, {"fingerprint": "f"})
    with pytest.raises(ValueError, match="checkpoint_dir .*step 1"):
        ckpt.restore(tmp_path, 1, like={"only": jnp.zeros((2,))})
    with pytest.raises(ValueError, match="checkpoint_dir .*step 1"):
        ckpt.restore(tmp_path, 1, like=jax.tree.map(lambda x: jnp.zeros((7,), x.dtype), state))
    for root, _, files in os.walk(tmp_path / "1" / "state"):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        ckpt.restore(tmp_path, 1, like=state)


def test_bad_step_and_fingerprint_stability(tmp_path):
    with pytest.raises(ValueError, match="step"):
        ckpt.save(tmp_path, -1, _state(), {})
    a = ckpt.fingerprint({"steps": 10, "shapes": [(2, 3)]})
    assert a == ckpt.fingerprint({"shapes": [(2, 3)], "steps": 10})
    assert a != ckpt.fingerprint({"steps": 11, "shapes": [(2, 3)]})
