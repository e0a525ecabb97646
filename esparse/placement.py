"""Where the seeds of an engine call go: the seed axis, its chunks, its devices.

The helpers of `esparse.engine` that need no model: the number of seeds of a keys array and
the check that every leaf carries that seed axis (run before any user code), the chunks a call
is split into (`chunk_size`, or "auto" from the memory plan of `esparse.planning`), the "seeds"
device mesh and its shardings, the placement of a chunk on it (also on a mesh spanning several
processes: each places only its own shards), and the gathering of the outputs back to every
process. Settings left at None come from the enclosing `esparse.execution.execution` block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from esparse import _checks, execution, planning

__all__ = [
    "PARAMS_FIX",
    "check_seed_axis",
    "chunks_and_mesh",
    "concat",
    "gathered",
    "n_seeds",
    "planned_size",
    "put",
    "seed_mesh",
    "shardings",
    "take",
]

PyTree = Any


def seed_mesh(n_seeds: int, argument: str, n_devices: int) -> Mesh:
    """A one-axis ("seeds") mesh of the first n_devices devices; ValueError naming `argument`
    when n_seeds does not divide over them."""
    devices = jax.devices()[:n_devices]
    if n_seeds % len(devices):
        raise ValueError(
            f"{argument}={n_seeds} seeds per call must be divisible by the {len(devices)} "
            "devices of the mesh when sharding (choose a multiple, or chunk_size a multiple)"
        )
    return Mesh(np.array(devices), ("seeds",))


def shardings(mesh: Mesh | None) -> tuple[Any, Any]:
    """(split over the seed axis, replicated) shardings of `mesh`; (None, None) without one."""
    if mesh is None:
        return None, None
    return NamedSharding(mesh, PartitionSpec("seeds")), NamedSharding(mesh, PartitionSpec())


def put(tree: PyTree, sharding: Any) -> PyTree:
    """`tree` placed with `sharding`. A mesh spanning other processes takes every process's
    identical host value and keeps the shards local to this one (PRNG keys via their data)."""
    if sharding is None:
        return tree
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    def place(x):
        if jnp.issubdtype(jnp.result_type(x), jax.dtypes.prng_key):
            impl = jax.random.key_impl(x)
            return jax.random.wrap_key_data(place(jax.random.key_data(x)), impl=impl)
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(place, tree)


def n_seeds(keys: jax.Array) -> int:
    """S, from keys: (S,) typed PRNG keys or (S, 2) raw uint32 keys; host checks only."""
    if isinstance(keys, list | tuple):
        raise ValueError(
            f"keys must be one (S,) array of PRNG keys, got a Python {type(keys).__name__} of "
            f"{len(keys)}: make them with jax.random.split(key, S) or stack them with "
            "jnp.stack(keys)"
        )
    if not isinstance(keys, jax.Array | np.ndarray) or jnp.ndim(keys) < 1 or len(keys) < 1:
        raise ValueError(
            f"keys must be a non-empty (S,) array of PRNG keys (jax.random.split(key, S)), "
            f"got {keys!r:.80}"
        )
    return int(jnp.shape(keys)[0])


def check_seed_axis(name: str, tree: PyTree, n_seeds: int, fix: str) -> None:
    """Every leaf of `tree` has a leading axis of n_seeds, else ValueError naming the leaf and
    the `fix`. Shapes only: run before any user code (apply_fn, fn) is called."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != n_seeds:
            raise ValueError(
                f"{name}{jax.tree_util.keystr(path)} must have a leading seed axis of "
                f"{n_seeds} (len(keys)), got shape {jnp.shape(leaf)}: {fix}"
            )


PARAMS_FIX = "make one model per seed with params = jax.vmap(model.init)(keys)"


def chunks_and_mesh(
    n_seeds: int, chunk_size: int | str | None, shard: bool | None
) -> tuple[int, list[int], Mesh | None]:
    """Seeds per call, each chunk's first seed, and the device mesh when sharding.

    None for chunk_size or shard takes the setting of the enclosing `execution` block.
    """
    settings = execution.current()
    chunk_size = settings.chunk_size if chunk_size is None else chunk_size
    if shard is None:
        n_devices = settings.devices
    else:
        n_devices = jax.device_count() if shard else None
    if chunk_size == "auto":  # planned from memory by `planned_size`; start from all seeds
        multiple = n_devices or 1
        size = -(-n_seeds // multiple) * multiple
        mesh = None if n_devices is None else seed_mesh(size, "keys", n_devices)
        return size, list(range(0, n_seeds, size)), mesh
    if chunk_size is not None:
        chunk_size = _checks.positive_int("chunk_size", chunk_size)
    size = n_seeds if chunk_size is None else min(chunk_size, n_seeds)
    mesh = None
    if n_devices is not None:
        mesh = seed_mesh(size, "chunk_size" if chunk_size is not None else "keys", n_devices)
    return size, list(range(0, n_seeds, size)), mesh


def planned_size(
    size: int, n_seeds: int, mesh: Mesh | None, measure: Callable[[int], planning.Footprint]
) -> int:
    """Seeds per call: under chunk_size="auto", the most whose compiled program fits the
    execution block's memory budget (a multiple of the device count); else `size`."""
    settings = execution.current()
    if settings.chunk_size != "auto" or settings.export:  # export measures no memory
        return size
    budget = settings.memory_bytes or planning.default_memory_bytes()
    return planning.chunk_for_memory(measure, n_seeds, budget, 1 if mesh is None else mesh.size)


def gathered(tree: PyTree, mesh: Mesh | None) -> PyTree:
    """Outputs on a mesh that spans other processes, gathered to every process (numpy)."""
    if mesh is None or all(d.process_index == jax.process_index() for d in mesh.devices.flat):
        return tree
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def take(tree: PyTree, start: int, size: int, n_seeds: int) -> PyTree:
    """Rows start:start+size of every leaf's seed axis, the last row repeated past n_seeds."""
    if start == 0 and size == n_seeds:  # one chunk: no gather (each is an op to compile)
        return tree
    rows = np.minimum(np.arange(start, start + size), n_seeds - 1)
    return jax.tree.map(lambda x: x[rows], tree)


def concat(parts: list[PyTree], n_seeds: int) -> PyTree:
    """The chunks' outputs joined along the seed axis, cut to n_seeds (padding dropped)."""
    if len(parts) == 1 and jax.tree.leaves(parts[0])[0].shape[0] == n_seeds:
        return parts[0]
    return jax.tree.map(lambda *xs: jnp.concatenate(xs)[:n_seeds], *parts)
