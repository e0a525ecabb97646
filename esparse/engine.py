"""The seed engine: S seeds of a computation as one jitted `jax.vmap`, chunked, sharded, resumable.

`train_seeds` runs `esparse.train.train` for S keys at once (one compiled program per chunk
of seeds), optionally in chunks of seeds, with the seed axis sharded over devices, and in
checkpointed segments that a restarted run resumes from. `vmap_seeds` does the same (chunks,
sharding) for any pure `fn(key, *args)`. Arguments left at None take the settings of the
enclosing `esparse.execution.execution` block (chunk size or "auto" from memory, devices,
checkpoints, plan mode), which is how the CLI reaches every claim.
Where the seeds go (the seed axis, its chunks, the device mesh, placement and gathering) is
`esparse.placement`.

Multi-host (GPU clusters, TPU pods): call `jax.distributed.initialize()` on every process
first, then call `train_seeds(..., shard=True)` / `vmap_seeds(..., shard=True)` on every
process with identical arguments. The "seeds" mesh spans `jax.devices()` (all processes'
devices), each process places only its own shards (`jax.make_array_from_callback`), and the
outputs are gathered to every process as numpy arrays
(`jax.experimental.multihost_utils.process_allgather`); `checkpoint_dir` must be storage
shared by all processes (orbax coordinates the writes). tests/test_scale_out.py runs two
processes on one machine over gloo.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from tqdm.auto import tqdm

from esparse import _checks, execution, exporting, placement, planning
from esparse import checkpoint as ckpt
from esparse import train as loop
from esparse.data import Dataset

__all__ = ["clear_caches", "train_seeds", "vmap_seeds"]

PyTree = Any


def _call_name(kind: str, fn: Any) -> str:
    """`kind(name)` of an engine call, naming the function a functools.partial wraps."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return f"{kind}({getattr(fn, '__qualname__', None) or type(fn).__name__})"


def _record_plan(
    kind: str, fn: Any, n_seeds: int, size: int, program: Any, args: tuple, per_step: Any = None
):
    """Plan one engine call of `size` seeds per call, `program(*args)` being one call:
    compile it (peak memory, FLOPs; a `train_seeds` run passes its one-step program and
    steps as `per_step`), or under `execution(export=...)` lower it for those platforms
    (`exporting.audit`). Record it and return zeros shaped like its output for S seeds."""
    calls = -(-n_seeds // size)
    entry = {"call": _call_name(kind, fn), "seeds": n_seeds, "seeds_per_call": size}
    entry["calls"] = calls
    platforms = execution.current().export
    if platforms:
        audit = exporting.audit(program, *args, platforms=platforms, together=True)
        flops = planning.matmul_flops(jax.make_jaxpr(program)(*args))
        entry.update(peak_bytes_per_call=None, flops=flops * calls, float64=audit.float64)
        entry["export"] = audit.to_dict()
    else:
        fp = planning.footprint(program, *args)
        flops = fp.flops * calls
        if per_step is not None:
            step_program, step_args, steps = per_step
            flops = planning.footprint(step_program, *step_args).flops * steps * calls
        float64 = exporting.uses_float64(jax.make_jaxpr(program)(*args))
        entry.update(peak_bytes_per_call=fp.peak_bytes, flops=flops, float64=float64)
    execution.record_planned_call(entry)
    shapes = jax.eval_shape(program, *args)
    return jax.tree.map(lambda s: np.zeros((n_seeds, *s.shape[1:]), s.dtype), shapes)


@functools.lru_cache(maxsize=64)
def _seed_program(
    kind: str, cfg: loop.TrainConfig, length: int, data_axis: int | None, mesh: Mesh | None
):
    """A jitted, seed-vmapped `init_state`, `run_steps` (`length` steps), `train_result` or
    `train_with` ("whole": all three in one program), cached."""
    seeds, _ = placement.shardings(mesh)
    fn: Callable[..., Any]
    if kind == "init":
        fn = jax.vmap(functools.partial(loop.init_state, cfg), in_axes=(0, 0, data_axis, 0))
        return jax.jit(fn, out_shardings=seeds)
    if kind == "segment":
        fn = jax.vmap(
            functools.partial(loop.run_steps, cfg, length), in_axes=(0, 0, data_axis, 0, None)
        )
        return jax.jit(fn, out_shardings=seeds, donate_argnums=0)
    if kind == "whole":  # init, every step and result in one program: one compilation
        fn = jax.vmap(functools.partial(loop.train_with, cfg), in_axes=(0, 0, data_axis, 0))
        return jax.jit(fn, out_shardings=seeds)
    return jax.jit(jax.vmap(functools.partial(loop.train_result, cfg)), out_shardings=seeds)


def _run_fingerprint(
    cfg: loop.TrainConfig, segment: int, chunk: int, keys, params, data, mask
) -> str:
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
            "eval_rows": cfg.eval_rows,
            "metrics_every": cfg.metrics_every,
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
) -> loop.TrainResult:
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
    n_seeds = placement.n_seeds(keys)  # seed axes first: prepare calls apply_fn (user code)
    placement.check_seed_axis("params", params, n_seeds, placement.PARAMS_FIX)
    if data_per_seed:
        if not isinstance(data, Dataset):
            raise ValueError(f"data must be an esparse.data.Dataset, got {type(data).__name__}")
        placement.check_seed_axis(
            "data", data, n_seeds, "give it one, or pass data_per_seed=False for shared data"
        )
    cfg, mask = loop.prepare(
        params,
        data,
        mask=train_kwargs.pop("mask", None),
        seed_axis=True,
        data_per_seed=data_per_seed,
        check_finite=check_finite,
        **train_kwargs,
    )
    size, starts, mesh = placement.chunks_and_mesh(n_seeds, chunk_size, shard)
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
        k, p, m = (placement.take(x, 0, c, n_seeds) for x in (keys, params, mask))
        return k, p, placement.take(data, 0, c, n_seeds) if data_per_seed else data, m

    def whole_program():
        return _seed_program("whole", cfg, cfg.steps, data_axis, mesh)

    size = placement.planned_size(
        size, n_seeds, mesh, lambda c: planning.footprint(whole_program(), *first(c))
    )
    starts = list(range(0, n_seeds, size))
    if execution.current().plan:
        chunk = first(size)
        state = jax.eval_shape(_seed_program("init", cfg, 0, data_axis, mesh), *chunk)
        step = _seed_program("segment", cfg, 1, data_axis, mesh)
        start_step = jax.ShapeDtypeStruct((), jnp.int32)
        per_step = (step, (state, chunk[0], chunk[2], chunk[3], start_step), cfg.steps)
        return _record_plan(
            "train_seeds", cfg.apply_fn, n_seeds, size, whole_program(), chunk, per_step
        )

    seeds_sh, shared_sh = placement.shardings(mesh)
    data_sh = seeds_sh if data_per_seed else shared_sh
    inputs = []
    for start in starts:
        args = [placement.take(x, start, size, n_seeds) for x in (keys, params, mask)]
        chunk_keys, chunk_params, chunk_mask = (placement.put(x, seeds_sh) for x in args)
        chunk_data = placement.put(
            placement.take(data, start, size, n_seeds) if data_per_seed else data, data_sh
        )
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
        return placement.gathered(placement.concat(results, n_seeds), mesh)

    init = _seed_program("init", cfg, 0, data_axis, mesh)
    chunks = [[init(*c), c[0], c[2], c[3]] for c in inputs]  # state, keys, data, mask

    done = 0
    if checkpoint_dir is not None:
        fp = _run_fingerprint(cfg, segment, size, keys, params, data, mask)
        restored = ckpt.resume(checkpoint_dir, fp, [c[0] for c in chunks])
        if restored is not None:
            done, states = restored
            for c, state in zip(chunks, states, strict=True):
                c[0] = state

    with tqdm(
        total=cfg.steps * len(chunks), initial=done * len(chunks), disable=quiet, desc="train_seeds"
    ) as bar:
        while done < cfg.steps:
            length = min(segment, cfg.steps - done)
            run = _seed_program("segment", cfg, length, data_axis, mesh)
            start = placement.put(jnp.int32(done), shared_sh)
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
    return placement.gathered(placement.concat([result(c[0]) for c in chunks], n_seeds), mesh)


@functools.lru_cache(maxsize=64)
def _vmap_program(
    fn: Callable, in_axes: tuple[int | None, ...], names: tuple[str, ...], mesh: Mesh | None
):
    """fn vmapped over keys and the args of in_axes; the trailing len(names) args are fn's
    keyword arguments (shared: axis None)."""
    seeds, _ = placement.shardings(mesh)
    n_pos = len(in_axes) - len(names)

    def call(key, *args):
        return fn(key, *args[:n_pos], **dict(zip(names, args[n_pos:], strict=True)))

    return jax.jit(jax.vmap(call, in_axes=(0, *in_axes)), out_shardings=seeds)


def vmap_seeds(
    fn: Callable[..., PyTree],
    keys: jax.Array,
    *args: Any,
    chunk_size: int | None = None,
    shard: bool | None = None,
    in_axes: int | tuple[int | None, ...] | None = None,
    **kwargs: Any,
) -> PyTree:
    """fn(key, *args, **kwargs) for every key, as one jitted `jax.vmap` (per chunk of seeds).

    keys: (S,) PRNG keys (`jax.random.split(key, S)`). args: pytrees. in_axes: one entry per
    arg, 0 when every leaf of it has a leading seed axis of S, None when it is shared by all
    seeds; a single 0 or None applies to every arg (as in `jax.vmap`); default all None.
    kwargs: passed to fn, shared by all seeds, traced like args (bind static values, such as
    sizes, with functools.partial). chunk_size and shard as in `train_seeds` (last chunk
    padded; seeds per call divisible by the device count; None takes the enclosing
    `execution` block's setting). `fn` is static: pass the same function object to reuse the
    compiled program. Returns fn's output pytree with a leading seed axis S.
    """
    if not callable(fn):
        raise ValueError(f"fn must be callable, got {fn!r}")
    n_seeds = placement.n_seeds(keys)
    if in_axes is None or isinstance(in_axes, int):
        in_axes = (in_axes,) * len(args)
    if not isinstance(in_axes, tuple | list):
        raise ValueError(f"in_axes must be 0, None or a tuple of them, got {in_axes!r}")
    in_axes = tuple(in_axes)
    if len(in_axes) != len(args) or any(
        a is not None and (isinstance(a, bool) or a != 0) for a in in_axes
    ):
        raise ValueError(
            f"in_axes must be 0, None, or a tuple holding 0 or None for each of the "
            f"{len(args)} args, got {in_axes!r}"
        )
    for i, (arg, axis) in enumerate(zip(args, in_axes, strict=True)):
        if axis == 0:
            placement.check_seed_axis(
                f"args[{i}]", arg, n_seeds, "or give it in_axes None to share it across seeds"
            )
    names = tuple(sorted(kwargs))
    args = (*args, *(kwargs[n] for n in names))
    in_axes = (*in_axes, *(None,) * len(names))
    size, starts, mesh = placement.chunks_and_mesh(n_seeds, chunk_size, shard)
    program = _vmap_program(fn, in_axes, names, mesh)

    def first(c: int) -> list:  # keys and args of the first c seeds (padded)
        chunk = [
            placement.take(a, 0, c, n_seeds) if ax == 0 else a
            for a, ax in zip(args, in_axes, strict=True)
        ]
        return [placement.take(keys, 0, c, n_seeds), *chunk]

    size = placement.planned_size(
        size, n_seeds, mesh, lambda c: planning.footprint(program, *first(c))
    )
    starts = list(range(0, n_seeds, size))
    if execution.current().plan:
        return _record_plan("vmap_seeds", fn, n_seeds, size, program, tuple(first(size)))
    seeds_sh, shared_sh = placement.shardings(mesh)
    outputs = []
    for start in starts:
        chunk_args = [
            placement.put(placement.take(arg, start, size, n_seeds), seeds_sh)
            if axis == 0
            else placement.put(arg, shared_sh)
            for arg, axis in zip(args, in_axes, strict=True)
        ]
        outputs.append(
            program(
                placement.put(placement.take(keys, start, size, n_seeds), seeds_sh), *chunk_args
            )
        )
    return placement.gathered(placement.concat(outputs, n_seeds), mesh)


def clear_caches() -> None:
    """Drop the engine's compiled seed programs and JAX's compilation caches
    (`jax.clear_caches`), freeing their host memory: between independent workloads, such as
    the claims of one CLI run."""
    _seed_program.cache_clear()
    _vmap_program.cache_clear()
    jax.clear_caches()
