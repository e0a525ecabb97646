"""Seed-parallel training: a `lax.scan` loop, vmapped over seeds, chunked, sharded, resumable.

`train` trains one model from one key; `train_seeds` runs it for S keys in one jitted call
(`jax.vmap` over a leading seed axis), optionally in chunks of seeds, with the seed axis
sharded over devices, and in checkpointed segments that a restarted run resumes from.
`vmap_seeds` does the same (chunks, sharding) for any pure `fn(key, *args)`.

Randomness: from `key` come a data key and a dropout key; step t (0-based) draws its
minibatch and dropout from `fold_in(., t)` (shuffle sampling: epoch e's permutation from
`fold_in(data_key, e)`), so a run cut into segments is bit-identical to an uncut one.

Multi-host (GPU clusters, TPU pods): call `jax.distributed.initialize()` on every process
first, then call `train_seeds(..., shard=True)` / `vmap_seeds(..., shard=True)` on every
process with identical arguments. The "seeds" mesh spans `jax.devices()` (all processes'
devices; on one host these are the local devices), outputs are global arrays
(`jax.experimental.multihost_utils.process_allgather` gathers them to every host), and
`checkpoint_dir` must be storage shared by all processes (orbax coordinates the writes).
Only the single-host path is tested here.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from esparse import _checks, execution, planning
from esparse import checkpoint as ckpt
from esparse.data import Dataset

__all__ = ["LOSSES", "SAMPLINGS", "TrainResult", "train", "train_seeds", "vmap_seeds"]

PyTree = Any
ApplyFn = Callable[[PyTree, jax.Array, Any, bool], jax.Array]
LossFn = Callable[[jax.Array, jax.Array], jax.Array]
MetricFn = Callable[[PyTree, Dataset], jax.Array]

LOSSES = ("cross_entropy", "mse")
SAMPLINGS = ("shuffle", "replace")
_BUILTIN_METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


class TrainResult(NamedTuple):
    """Output of `train` / `train_seeds` (the latter adds a leading seed axis to every field).

    params: final parameters. history: name -> (n_logs,) metric values at `log_steps`.
    log_steps: (n_logs,) int32, number of updates done at each log. final: name -> scalar,
    the metrics at the last step.
    """

    params: PyTree
    history: dict[str, jax.Array]
    log_steps: jax.Array
    final: dict[str, jax.Array]


class _State(NamedTuple):
    params: PyTree
    opt_state: PyTree
    perm: jax.Array | None  # current epoch's permutation (shuffle sampling), else None
    history: dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class _Config:
    apply_fn: ApplyFn
    optimizer: optax.GradientTransformation
    steps: int
    batch_size: int
    loss: str | LossFn
    log_every: int
    sampling: str
    metrics: tuple[tuple[str, MetricFn], ...]

    @property
    def n_logs(self) -> int:
        return -(-self.steps // self.log_every)

    def log_steps(self) -> np.ndarray:
        done = np.arange(1, self.n_logs + 1) * self.log_every
        done[-1] = self.steps
        return done.astype(np.int32)


# ----------------------------------------------------------------------------- the math


def _loss_and_accuracy(
    loss: str | LossFn, outputs: jax.Array, targets: jax.Array
) -> tuple[jax.Array, jax.Array | None]:
    """Mean loss over the batch, and accuracy when the targets are class labels or one-hot."""
    if loss == "cross_entropy":
        value = optax.softmax_cross_entropy_with_integer_labels(outputs, targets).mean()
    elif loss == "mse":
        value = jnp.mean((outputs - targets) ** 2)
    else:
        value = jnp.asarray(loss(outputs, targets))
        if value.shape != ():
            raise ValueError(f"loss must return a scalar, got shape {value.shape}")
    accuracy = None
    if outputs.ndim == 2 and targets.ndim == 1 and jnp.issubdtype(targets.dtype, jnp.integer):
        accuracy = jnp.mean(jnp.argmax(outputs, axis=-1) == targets)
    elif outputs.ndim == 2 and targets.shape == outputs.shape and targets.shape[-1] > 1:
        accuracy = jnp.mean(jnp.argmax(outputs, axis=-1) == jnp.argmax(targets, axis=-1))
    return value, accuracy


def _apply_mask(tree: PyTree, mask: PyTree | None) -> PyTree:
    if mask is None:
        return tree
    return jax.tree.map(lambda p, m: jnp.where(m, p, jnp.zeros_like(p)), tree, mask)


def _evaluate(cfg: _Config, params: PyTree, data: Dataset) -> dict[str, jax.Array]:
    """All logged metrics on the full train and test sets, in eval mode (train=False)."""
    out = {}
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        value, accuracy = _loss_and_accuracy(cfg.loss, cfg.apply_fn(params, x, None, False), y)
        out[f"{split}_loss"] = value.astype(jnp.float32)
        if accuracy is not None:
            out[f"{split}_accuracy"] = accuracy.astype(jnp.float32)
    for name, fn in cfg.metrics:
        value = jnp.asarray(fn(params, data), jnp.float32)
        if value.shape != ():
            raise ValueError(f"metrics[{name!r}] must return a scalar, got shape {value.shape}")
        out[name] = value
    return out


def _init(cfg: _Config, key: jax.Array, params: PyTree, data: Dataset, mask: PyTree) -> _State:
    del key  # the state holds no key: every step derives its keys from the run's key
    params = _apply_mask(params, mask)
    logged = jax.eval_shape(functools.partial(_evaluate, cfg), params, data)
    history = {name: jnp.zeros((cfg.n_logs,), jnp.float32) for name in logged}
    n = data.x_train.shape[0]
    perm = jnp.zeros((n,), jnp.int32) if cfg.sampling == "shuffle" else None
    return _State(params, cfg.optimizer.init(params), perm, history)


def _segment(
    cfg: _Config,
    length: int,
    state: _State,
    key: jax.Array,
    data: Dataset,
    mask: PyTree,
    start: jax.Array,
) -> _State:
    """Steps start, ..., start + length - 1 of the run, as one `lax.scan`."""
    data_key, dropout_key = jax.random.split(key)
    n = data.x_train.shape[0]
    per_epoch = n // cfg.batch_size

    def step(state: _State, t: jax.Array) -> tuple[_State, None]:
        perm = state.perm
        if cfg.sampling == "shuffle" and cfg.batch_size == n:
            # full batch: every row, no permutation (row order does not change the mean loss)
            xb, yb = data.x_train, data.y_train
        else:
            if cfg.sampling == "shuffle":
                epoch, pos = t // per_epoch, t % per_epoch
                perm = jax.lax.cond(
                    pos == 0,
                    lambda: jax.random.permutation(jax.random.fold_in(data_key, epoch), n),
                    lambda: state.perm,
                )
                idx = jax.lax.dynamic_slice_in_dim(perm, pos * cfg.batch_size, cfg.batch_size)
            else:
                idx = jax.random.randint(jax.random.fold_in(data_key, t), (cfg.batch_size,), 0, n)
            xb, yb = data.x_train[idx], data.y_train[idx]
        step_key = jax.random.fold_in(dropout_key, t)

        def loss_fn(p: PyTree) -> jax.Array:
            return _loss_and_accuracy(cfg.loss, cfg.apply_fn(p, xb, step_key, True), yb)[0]

        grads = _apply_mask(jax.grad(loss_fn)(state.params), mask)
        updates, opt_state = cfg.optimizer.update(grads, state.opt_state, state.params)
        params = _apply_mask(optax.apply_updates(state.params, updates), mask)
        done = t + 1

        def log(history: dict[str, jax.Array]) -> dict[str, jax.Array]:
            row = (done - 1) // cfg.log_every
            metrics = _evaluate(cfg, params, data)
            return {name: history[name].at[row].set(metrics[name]) for name in history}

        is_log = (done % cfg.log_every == 0) | (done == cfg.steps)
        history = jax.lax.cond(is_log, log, lambda h: h, state.history)
        return _State(params, opt_state, perm, history), None

    steps = start + jnp.arange(length, dtype=jnp.int32)
    return jax.lax.scan(step, state, steps)[0]


def _result(cfg: _Config, state: _State) -> TrainResult:
    final = {name: values[-1] for name, values in state.history.items()}
    return TrainResult(state.params, state.history, jnp.asarray(cfg.log_steps()), final)


def _train(
    cfg: _Config, key: jax.Array, params: PyTree, data: Dataset, mask: PyTree
) -> TrainResult:
    state = _init(cfg, key, params, data, mask)
    state = _segment(cfg, cfg.steps, state, key, data, mask, jnp.int32(0))
    return _result(cfg, state)


_train_jit = jax.jit(_train, static_argnums=0)


# ----------------------------------------------------------------------------- validation


def _config(
    *,
    apply_fn: ApplyFn,
    optimizer: optax.GradientTransformation,
    steps: int,
    batch_size: int,
    n_train: int,
    loss: str | LossFn = "cross_entropy",
    log_every: int = 100,
    sampling: str = "shuffle",
    metrics: Mapping[str, MetricFn] | None = None,
) -> _Config:
    if not callable(apply_fn):
        raise ValueError(f"apply_fn must be callable, got {apply_fn!r}")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax.GradientTransformation, got {optimizer!r}")
    steps = _checks.positive_int("steps", steps)
    batch_size = _checks.positive_int("batch_size", batch_size)
    if batch_size > n_train:
        raise ValueError(
            f"batch_size must be at most the number of train samples ({n_train}), got {batch_size}"
        )
    if not callable(loss):
        _checks.one_of("loss", loss, LOSSES)
    log_every = _checks.positive_int("log_every", log_every)
    _checks.one_of("sampling", sampling, SAMPLINGS)
    metrics = dict(metrics or {})
    for name, fn in metrics.items():
        if not isinstance(name, str) or name in _BUILTIN_METRICS or not callable(fn):
            raise ValueError(
                f"metrics must map new names to callables fn(params, data), got {name!r}: {fn!r}"
            )
    return _Config(
        apply_fn, optimizer, steps, batch_size, loss, log_every, sampling, tuple(metrics.items())
    )


def _check_data(data: Dataset, lead: int, check_finite: bool) -> int:
    """Validate a Dataset (with `lead` leading seed axes); returns the number of train rows.

    Shapes only, unless check_finite (which reads every array on the host: a sync); the
    loaders of esparse.data check values where data enters from the host."""
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be an esparse.data.Dataset, got {type(data).__name__}")
    for name, x in zip(data._fields, data, strict=True):
        if getattr(x, "ndim", 0) < lead + 1:
            raise ValueError(f"data.{name} must have {lead + 1}+ dimensions, got {x!r:.80}")
        if check_finite:
            _checks.finite(f"data.{name}", x)
    n_train, n_test = data.x_train.shape[lead], data.x_test.shape[lead]
    for split, n in (("train", n_train), ("test", n_test)):
        y = getattr(data, f"y_{split}")
        if y.shape[lead] != n:
            raise ValueError(
                f"data.x_{split} and data.y_{split} must have the same number of rows, "
                f"got {n} and {y.shape[lead]}"
            )
    return n_train


def _check_outputs(cfg: _Config, params: PyTree, data: Dataset, lead: int, data_lead: int) -> None:
    """For loss "mse": apply_fn's outputs must have the targets' shape (an (n, 1) output minus
    (n,) targets would broadcast to (n, n)). Shapes only, by jax.eval_shape; params and data
    have `lead` and `data_lead` leading seed axes."""
    if cfg.loss != "mse":
        return

    def one(tree: PyTree, axes: int) -> PyTree:
        return jax.tree.map(lambda v: jax.ShapeDtypeStruct(jnp.shape(v)[axes:], v.dtype), tree)

    params1, data1 = one(params, lead), one(data, data_lead)
    for split in ("train", "test"):
        x, y = getattr(data1, f"x_{split}"), getattr(data1, f"y_{split}")
        out = jax.eval_shape(lambda p, v: cfg.apply_fn(p, v, None, False), params1, x)
        if out.shape != y.shape:
            raise ValueError(
                f"data.y_{split} must have the shape of apply_fn's outputs for loss='mse': "
                f"outputs {out.shape}, data.y_{split} {y.shape}"
            )


def _check_mask(mask: PyTree | None, params: PyTree) -> PyTree | None:
    if mask is None:
        return None
    if jax.tree.structure(mask) != jax.tree.structure(params):
        raise ValueError(
            f"mask must have the tree structure of params, got {jax.tree.structure(mask)}"
        )
    mask = jax.tree.map(jnp.asarray, mask)
    for m, p in zip(jax.tree.leaves(mask), jax.tree.leaves(params), strict=True):
        if m.dtype != jnp.bool_ or m.shape != jnp.shape(p):
            raise ValueError(
                f"mask leaves must be bool arrays shaped like params, got {m.dtype}{m.shape} "
                f"for a parameter of shape {jnp.shape(p)}"
            )
    return mask


def train(
    key: jax.Array,
    params: PyTree,
    data: Dataset,
    *,
    apply_fn: ApplyFn,
    optimizer: optax.GradientTransformation,
    steps: int,
    batch_size: int,
    loss: str | LossFn = "cross_entropy",
    log_every: int = 100,
    mask: PyTree | None = None,
    sampling: str = "shuffle",
    metrics: Mapping[str, MetricFn] | None = None,
    check_finite: bool = False,
) -> TrainResult:
    """Train `params` for `steps` minibatch updates with `optimizer`, as one jitted `lax.scan`.

    key: PRNG key (minibatch order and dropout). params: pytree. data: `Dataset`, x_train
    (n, ...) with y_train (n,) int labels or (n, k) targets; likewise the test split.
    apply_fn(params, x, key, train) -> outputs (batch, k); called with key=None, train=False
    for evaluation. loss: "cross_entropy" (int labels), "mse" (mean over all entries of the
    squared error; outputs and targets must have the same shape, else ValueError), or
    fn(outputs, targets) -> scalar. Accuracy is logged when the targets are
    1-D int labels or 2-D with k > 1 columns (one-hot; argmax agreement).
    sampling: "shuffle" (a fresh permutation each epoch of n // batch_size batches; the last
    partial batch is dropped, so each sample is seen at most once per epoch, exactly once when
    batch_size divides n; batch_size = n is full-batch gradient descent on the rows in order)
    or "replace" (batch indices uniform with replacement).
    mask: bool pytree shaped like params; params and gradients are multiplied by it at the
    start and at every step, so masked weights stay exactly zero under any optimizer
    (Frankle & Carbin 2019). metrics: name -> fn(params, data) -> scalar, logged with the
    built-ins (train/test loss and accuracy) on the full sets every `log_every` updates and
    after the last one. The optimizer, apply_fn, loss and metric functions are static: pass
    the same objects again to reuse the compiled program. check_finite: raise a ValueError
    naming the array when data holds NaN or inf (reads data on the host: a sync; by default
    NaN data gives NaN losses).
    """
    n_train = _check_data(data, 0, check_finite)
    cfg = _config(
        apply_fn=apply_fn,
        optimizer=optimizer,
        steps=steps,
        batch_size=batch_size,
        n_train=n_train,
        loss=loss,
        log_every=log_every,
        sampling=sampling,
        metrics=metrics,
    )
    _check_outputs(cfg, params, data, 0, 0)
    return _train_jit(cfg, key, params, data, _check_mask(mask, params))


# ----------------------------------------------------------------------------- seeds


def _seed_mesh(n_seeds: int, argument: str, n_devices: int) -> Mesh:
    devices = jax.devices()[:n_devices]
    if n_seeds % len(devices):
        raise ValueError(
            f"{argument}={n_seeds} seeds per call must be divisible by the {len(devices)} "
            "devices of the mesh when sharding (choose a multiple, or chunk_size a multiple)"
        )
    return Mesh(np.array(devices), ("seeds",))


def _shardings(mesh: Mesh | None) -> tuple[Any, Any]:
    if mesh is None:
        return None, None
    return NamedSharding(mesh, PartitionSpec("seeds")), NamedSharding(mesh, PartitionSpec())


def _put(tree: PyTree, sharding: Any) -> PyTree:
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


def _n_seeds(keys: jax.Array) -> int:
    if jnp.ndim(keys) < 1 or jnp.shape(keys)[0] < 1:
        raise ValueError(f"keys must be a non-empty (S,) array of PRNG keys, got {keys!r:.80}")
    return jnp.shape(keys)[0]


def _check_seed_axis(name: str, tree: PyTree, n_seeds: int) -> None:
    for leaf in jax.tree.leaves(tree):
        if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != n_seeds:
            raise ValueError(
                f"{name} leaves must have a leading seed axis of {n_seeds} (len(keys)), "
                f"got shape {jnp.shape(leaf)}"
            )


def _chunks_and_mesh(
    n_seeds: int, chunk_size: int | None, shard: bool | None
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
    if chunk_size == "auto":  # planned from memory by `_planned_size`; start from all seeds
        multiple = n_devices or 1
        size = -(-n_seeds // multiple) * multiple
        mesh = None if n_devices is None else _seed_mesh(size, "keys", n_devices)
        return size, list(range(0, n_seeds, size)), mesh
    if chunk_size is not None:
        chunk_size = _checks.positive_int("chunk_size", chunk_size)
    size = n_seeds if chunk_size is None else min(chunk_size, n_seeds)
    mesh = None
    if n_devices is not None:
        mesh = _seed_mesh(size, "chunk_size" if chunk_size is not None else "keys", n_devices)
    return size, list(range(0, n_seeds, size)), mesh


def _planned_size(
    size: int, n_seeds: int, mesh: Mesh | None, measure: Callable[[int], planning.Footprint]
) -> int:
    """Seeds per call: under chunk_size="auto", the most whose compiled program fits the
    execution block's memory budget (a multiple of the device count); else `size`."""
    settings = execution.current()
    if settings.chunk_size != "auto":
        return size
    budget = settings.memory_bytes or planning.default_memory_bytes()
    return planning.chunk_for_memory(measure, n_seeds, budget, 1 if mesh is None else mesh.size)


def _record_plan(kind: str, fn: Any, n_seeds: int, size: int, peak: int, flops: float, shapes):
    """Record one planned engine call and return zeros shaped like its output for S seeds."""
    execution.record_planned_call(
        {
            "call": f"{kind}({getattr(fn, '__qualname__', None) or type(fn).__name__})",
            "seeds": n_seeds,
            "seeds_per_call": size,
            "calls": -(-n_seeds // size),
            "peak_bytes_per_call": peak,
            "flops": flops,
        }
    )
    return jax.tree.map(lambda s: np.zeros((n_seeds, *s.shape[1:]), s.dtype), shapes)


def _gathered(tree: PyTree, mesh: Mesh | None) -> PyTree:
    """Outputs on a mesh that spans other processes, gathered to every process (numpy)."""
    if mesh is None or all(d.process_index == jax.process_index() for d in mesh.devices.flat):
        return tree
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def _take(tree: PyTree, start: int, size: int, n_seeds: int) -> PyTree:
    """Rows start:start+size of every leaf's seed axis, the last row repeated past n_seeds."""
    if start == 0 and size == n_seeds:  # one chunk: no gather (each is an op to compile)
        return tree
    rows = np.minimum(np.arange(start, start + size), n_seeds - 1)
    return jax.tree.map(lambda x: x[rows], tree)


def _concat(parts: list[PyTree], n_seeds: int) -> PyTree:
    if len(parts) == 1 and jax.tree.leaves(parts[0])[0].shape[0] == n_seeds:
        return parts[0]
    return jax.tree.map(lambda *xs: jnp.concatenate(xs)[:n_seeds], *parts)


@functools.lru_cache(maxsize=64)
def _seed_program(kind: str, cfg: _Config, length: int, data_axis: int | None, mesh: Mesh | None):
    """A jitted, seed-vmapped `_init`, `_segment` (of `length` steps), `_result` or `_train`
    ("whole": all three in one program), cached."""
    seeds, _ = _shardings(mesh)
    if kind == "init":
        fn = jax.vmap(functools.partial(_init, cfg), in_axes=(0, 0, data_axis, 0))
        return jax.jit(fn, out_shardings=seeds)
    if kind == "segment":
        fn = jax.vmap(functools.partial(_segment, cfg, length), in_axes=(0, 0, data_axis, 0, None))
        return jax.jit(fn, out_shardings=seeds, donate_argnums=0)
    if kind == "whole":  # init, every step and result in one program: one compilation
        fn = jax.vmap(functools.partial(_train, cfg), in_axes=(0, 0, data_axis, 0))
        return jax.jit(fn, out_shardings=seeds)
    return jax.jit(jax.vmap(functools.partial(_result, cfg)), out_shardings=seeds)


def _run_fingerprint(cfg: _Config, segment: int, chunk: int, keys, params, data, mask) -> str:
    def shapes(tree: PyTree) -> list:
        return [(tuple(jnp.shape(x)), str(jnp.result_type(x))) for x in jax.tree.leaves(tree)]

    typed = jnp.issubdtype(keys.dtype, jax.dtypes.prng_key)
    key_data = np.asarray(jax.random.key_data(keys) if typed else keys)
    opt_shapes = jax.eval_shape(jax.vmap(cfg.optimizer.init), params)
    name = getattr(cfg.loss, "__qualname__", cfg.loss)
    return ckpt.fingerprint(
        {
            "steps": cfg.steps,
            "batch_size": cfg.batch_size,
            "loss": name,
            "log_every": cfg.log_every,
            "sampling": cfg.sampling,
            "metrics": [(n, getattr(f, "__qualname__", repr(f))) for n, f in cfg.metrics],
            "apply_fn": getattr(cfg.apply_fn, "__qualname__", repr(cfg.apply_fn)),
            "checkpoint_every": segment,
            "chunk_size": chunk,
            "keys": key_data.tobytes().hex(),
            "params": shapes(params),
            "opt_state": [str(jax.tree.structure(opt_shapes)), shapes(opt_shapes)],
            "data": shapes(data),
            "mask": shapes(mask),
        }
    )


def train_seeds(
    keys: jax.Array,
    params: PyTree,
    data: Dataset,
    *,
    data_per_seed: bool = False,
    chunk_size: int | None = None,
    shard: bool | None = None,
    checkpoint_dir: str | None = None,
    checkpoint_every: int | None = None,
    progress: bool = False,
    check_finite: bool = False,
    **train_kwargs: Any,
) -> TrainResult:
    """`train` for S seeds at once: `jax.vmap` over the leading seed axis, one jitted call.

    keys: (S,) PRNG keys. params: pytree with leaves (S, ...) (e.g. `jax.vmap(init)(keys)`).
    train_kwargs["mask"], if given, has leaves (S, ...) too. data: one shared `Dataset`, or with
    data_per_seed=True one with leaves (S, n, ...) (e.g. per-seed random labels).
    chunk_size: run the seeds in chunks of this many, one after another (the last chunk is
    padded by repeating its last seed, so all chunks share one compiled program); results
    equal the unchunked run. shard: place the seed axis across `jax.devices()` on a mesh with
    a "seeds" axis, NamedSharding(PartitionSpec("seeds")); the seeds per call (chunk_size, or
    S) must be divisible by the device count, else ValueError (no silent padding).
    checkpoint_dir, checkpoint_every: run the scan in segments of checkpoint_every steps and
    save the state (params, optimizer state, epoch permutation, history so far; the step is
    the checkpoint's number) after each with orbax. Called again with the same arguments, a
    killed run resumes from its last checkpoint and ends bit-identical to an uninterrupted
    run; a finished run returns at once. A directory holding another run's checkpoints
    (fingerprint of static arguments, function names, shapes and the keys' values; values
    closed over by functions, like a learning rate, are not covered, so give each
    configuration its own directory) or a corrupt checkpoint raises ValueError.
    checkpoint_every without a directory only segments the run (for the progress bar and so
    that Ctrl-C is seen between segments: a segmented run waits for each segment).
    chunk_size, shard, checkpoint_dir and checkpoint_every left at None take the settings of
    the enclosing `esparse.execution.execution` block (its devices give the mesh; each call
    checkpoints under its own sub-directory of the block's checkpoint_dir).
    progress: a tqdm bar over steps (times chunks), updated per chunk and segment; shown only
    on a terminal. Unsharded and without checkpoints or segments, each chunk runs as one
    compiled program (initialisation, scan over steps and result together).
    check_finite as `train`. Returns a `TrainResult` whose every leaf has a leading seed axis S.
    """
    n_train = _check_data(data, 1 if data_per_seed else 0, check_finite)
    mask = train_kwargs.pop("mask", None)
    cfg = _config(n_train=n_train, **train_kwargs)
    _check_outputs(cfg, params, data, 1, 1 if data_per_seed else 0)
    n_seeds = _n_seeds(keys)
    mask = _check_mask(mask, params)
    _check_seed_axis("params", params, n_seeds)
    if data_per_seed:
        _check_seed_axis("data", data, n_seeds)
    size, starts, mesh = _chunks_and_mesh(n_seeds, chunk_size, shard)
    if checkpoint_every is None and checkpoint_dir is None:
        checkpoint_every = execution.current().checkpoint_every
        checkpoint_dir = execution.next_checkpoint_dir()
    segment = cfg.steps
    if checkpoint_every is not None:
        segment = min(_checks.positive_int("checkpoint_every", checkpoint_every), cfg.steps)
    elif checkpoint_dir is not None:
        raise ValueError("checkpoint_every must be given with checkpoint_dir")

    data_axis = 0 if data_per_seed else None

    def first(c: int) -> tuple:  # the first c seeds' inputs (padded), to compile for c seeds
        k, p, m = (_take(x, 0, c, n_seeds) for x in (keys, params, mask))
        return k, p, _take(data, 0, c, n_seeds) if data_per_seed else data, m

    def whole_program():
        return _seed_program("whole", cfg, cfg.steps, data_axis, mesh)

    size = _planned_size(
        size, n_seeds, mesh, lambda c: planning.footprint(whole_program(), *first(c))
    )
    starts = list(range(0, n_seeds, size))
    if execution.current().plan:
        chunk = first(size)
        state = jax.eval_shape(_seed_program("init", cfg, 0, data_axis, mesh), *chunk)
        step = _seed_program("segment", cfg, 1, data_axis, mesh)
        start_step = jax.ShapeDtypeStruct((), jnp.int32)
        per_step = planning.footprint(step, state, chunk[0], chunk[2], chunk[3], start_step)
        return _record_plan(
            "train_seeds",
            cfg.apply_fn,
            n_seeds,
            size,
            planning.footprint(whole_program(), *chunk).peak_bytes,
            per_step.flops * cfg.steps * -(-n_seeds // size),
            jax.eval_shape(whole_program(), *chunk),
        )

    seeds_sh, shared_sh = _shardings(mesh)
    data_sh = seeds_sh if data_per_seed else shared_sh
    inputs = []
    for start in starts:
        args = [_take(x, start, size, n_seeds) for x in (keys, params, mask)]
        chunk_keys, chunk_params, chunk_mask = (_put(x, seeds_sh) for x in args)
        chunk_data = _put(_take(data, start, size, n_seeds) if data_per_seed else data, data_sh)
        inputs.append((chunk_keys, chunk_params, chunk_data, chunk_mask))
    quiet = not progress or not sys.stderr.isatty()
    if mesh is None and segment == cfg.steps and checkpoint_dir is None:
        # one program per chunk; not when sharded: XLA's partitioner then inserts an
        # all-to-all that can deadlock simulated CPU devices outnumbering the cores
        whole = _seed_program("whole", cfg, cfg.steps, data_axis, mesh)
        results = []
        with tqdm(total=cfg.steps * len(starts), disable=quiet, desc="train_seeds") as bar:
            for chunk in inputs:
                results.append(whole(*chunk))
                bar.update(cfg.steps)
        return _gathered(_concat(results, n_seeds), mesh)

    init = _seed_program("init", cfg, 0, data_axis, mesh)
    chunks = [[init(*c), c[0], c[2], c[3]] for c in inputs]  # state, keys, data, mask

    done = 0
    if checkpoint_dir is not None:
        fp = _run_fingerprint(cfg, segment, size, keys, params, data, mask)
        last = ckpt.latest_step(checkpoint_dir)
        if last is not None:
            theirs = ckpt.load_metadata(checkpoint_dir, last).get("fingerprint")
            if theirs != fp:
                raise ValueError(
                    f"checkpoint_dir {checkpoint_dir!r} holds checkpoints of another run "
                    f"(fingerprint {theirs!r}, this run {fp!r})"
                )
            states = ckpt.restore(checkpoint_dir, last, like=[c[0] for c in chunks])
            for c, state in zip(chunks, states, strict=True):
                c[0] = state
            done = last

    with tqdm(
        total=cfg.steps * len(chunks), initial=done * len(chunks), disable=quiet, desc="train_seeds"
    ) as bar:
        while done < cfg.steps:
            length = min(segment, cfg.steps - done)
            run = _seed_program("segment", cfg, length, data_axis, mesh)
            start = _put(jnp.int32(done), shared_sh)
            for c in chunks:
                c[0] = run(c[0], c[1], c[2], c[3], start)
                bar.update(length)
            done += length
            jax.block_until_ready([c[0] for c in chunks])  # a segment ends here: Ctrl-C works
            if checkpoint_dir is not None:
                meta = {"fingerprint": fp, "step": done, "steps": cfg.steps}
                ckpt.save(checkpoint_dir, done, [c[0] for c in chunks], meta)
            if execution.stop_requested() and done < cfg.steps:
                raise KeyboardInterrupt(f"stopped at step {done} of {cfg.steps}")

    result = _seed_program("result", cfg, 0, data_axis, mesh)
    return _gathered(_concat([result(c[0]) for c in chunks], n_seeds), mesh)


@functools.lru_cache(maxsize=64)
def _vmap_program(fn: Callable, in_axes: tuple[int | None, ...], mesh: Mesh | None):
    seeds, _ = _shardings(mesh)
    return jax.jit(jax.vmap(fn, in_axes=(0, *in_axes)), out_shardings=seeds)


def vmap_seeds(
    fn: Callable[..., PyTree],
    keys: jax.Array,
    *args: Any,
    chunk_size: int | None = None,
    shard: bool | None = None,
    in_axes: tuple[int | None, ...] | None = None,
) -> PyTree:
    """fn(key, *args) for every key, as one jitted `jax.vmap` (per chunk of seeds).

    keys: (S,) PRNG keys. args: pytrees. in_axes: one entry per arg, 0 when every leaf of it
    has a leading seed axis of S, None when it is shared by all seeds; default all None.
    chunk_size and shard as in `train_seeds` (last chunk padded; seeds per call divisible by
    the device count; None takes the enclosing `execution` block's setting). `fn` is static:
    pass the same function object to reuse the compiled program. Returns fn's output pytree
    with a leading seed axis S.
    """
    if not callable(fn):
        raise ValueError(f"fn must be callable, got {fn!r}")
    n_seeds = _n_seeds(keys)
    in_axes = (None,) * len(args) if in_axes is None else tuple(in_axes)
    if len(in_axes) != len(args) or any(a not in (0, None) for a in in_axes):
        raise ValueError(
            f"in_axes must hold 0 or None for each of the {len(args)} args, got {in_axes!r}"
        )
    for i, (arg, axis) in enumerate(zip(args, in_axes, strict=True)):
        if axis == 0:
            _check_seed_axis(f"args[{i}]", arg, n_seeds)
    size, starts, mesh = _chunks_and_mesh(n_seeds, chunk_size, shard)
    program = _vmap_program(fn, in_axes, mesh)

    def first(c: int) -> list:  # keys and args of the first c seeds (padded)
        chunk = [
            _take(a, 0, c, n_seeds) if ax == 0 else a for a, ax in zip(args, in_axes, strict=True)
        ]
        return [_take(keys, 0, c, n_seeds), *chunk]

    size = _planned_size(size, n_seeds, mesh, lambda c: planning.footprint(program, *first(c)))
    starts = list(range(0, n_seeds, size))
    if execution.current().plan:
        fp = planning.footprint(program, *first(size))
        calls = -(-n_seeds // size)
        shapes = jax.eval_shape(program, *first(size))
        return _record_plan(
            "vmap_seeds", fn, n_seeds, size, fp.peak_bytes, fp.flops * calls, shapes
        )
    seeds_sh, shared_sh = _shardings(mesh)
    outputs = []
    for start in starts:
        chunk_args = [
            _put(_take(arg, start, size, n_seeds), seeds_sh) if axis == 0 else _put(arg, shared_sh)
            for arg, axis in zip(args, in_axes, strict=True)
        ]
        outputs.append(program(_put(_take(keys, start, size, n_seeds), seeds_sh), *chunk_args))
    return _gathered(_concat(outputs, n_seeds), mesh)
