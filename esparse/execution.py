"""How seed-vmapped work runs: chunks of seeds, a device mesh over the `seeds` axis, checkpoints.

`engine.train_seeds` and `engine.vmap_seeds` take these settings as arguments. Code that calls
them many times (a claim of the reproduction suite) sets them once with the `execution`
context manager, in the style of `jax.default_matmul_precision`: every engine call inside the
block that leaves an argument at None takes it from the block. So one command-line flag
reaches every claim, and no claim handles chunks, meshes or checkpoints itself.

Checkpoints: inside a block with `checkpoint_dir`, the i-th checkpointed `train_seeds` call
writes to `checkpoint_dir/call-<i>`; the same program run again makes the same calls in the
same order, so each call finds its own checkpoints and resumes (or returns at once when done).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import itertools
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import jax

from esparse import _checks, exporting

__all__ = [
    "Execution",
    "clear_stop",
    "current",
    "execution",
    "next_checkpoint_dir",
    "planned_calls",
    "record_planned_call",
    "request_stop",
    "stop_requested",
]


@dataclasses.dataclass(frozen=True)
class Execution:
    """Settings of the seed engine.

    chunk_size: seeds per compiled call (None: all at once; "auto": the most that fit
    `memory_bytes`, from the compiled program's memory analysis, see `esparse.planning`).
    devices: shard the seed axis over the first `devices` of `jax.devices()` (None: no
    sharding; in a multi-process run `jax.devices()` spans every process).
    checkpoint_dir / checkpoint_every: save each `train_seeds` run every `checkpoint_every`
    steps under its own sub-directory; a `checkpoint_every` alone only segments the scan
    (control returns to Python between segments, so Ctrl-C and progress work).
    memory_bytes: the per-device budget for chunk_size="auto" (None: `default_memory_bytes`).
    plan: compile every engine call without running it; each call records its chunk size,
    memory and FLOPs (`planned_calls`) and returns zeros of its output's shape.
    export: with plan, lower each call for these platforms ("cuda", "tpu", ...; see
    `esparse.exporting`) instead of compiling it for this machine; each call records its
    `exporting.Audit` (chunk_size "auto" then means all seeds: no memory is measured).
    """

    chunk_size: int | str | None = None
    devices: int | None = None
    checkpoint_dir: str | None = None
    checkpoint_every: int | None = None
    memory_bytes: int | None = None
    plan: bool = False
    export: tuple[str, ...] = ()


_DEFAULT = Execution()
_SETTINGS: contextvars.ContextVar[Execution | None] = contextvars.ContextVar(
    "esparse_execution", default=None
)
_CALLS: contextvars.ContextVar[Iterator[int] | None] = contextvars.ContextVar(
    "esparse_checkpoint_calls", default=None
)
_PLANNED: contextvars.ContextVar[list[dict] | None] = contextvars.ContextVar(
    "esparse_planned_calls", default=None
)


def current() -> Execution:
    """The settings of the innermost `execution` block (defaults outside any block)."""
    return _SETTINGS.get() or _DEFAULT


def _validated(
    chunk_size: int | str | None,
    devices: int | None,
    checkpoint_dir: str | None,
    checkpoint_every: int | None,
    memory_bytes: int | None,
    plan: bool,
    export: Sequence[str] = (),
) -> Execution:
    if chunk_size is not None and chunk_size != "auto":
        chunk_size = _checks.positive_int("chunk_size", chunk_size)
    if memory_bytes is not None:
        memory_bytes = _checks.positive_int("memory_bytes", memory_bytes)
    if devices is not None:
        devices = _checks.int_in_range("devices", devices, 1, jax.device_count())
    if checkpoint_every is not None:
        checkpoint_every = _checks.positive_int("checkpoint_every", checkpoint_every)
    if checkpoint_dir is not None:
        if checkpoint_every is None:
            raise ValueError("checkpoint_every must be given with checkpoint_dir")
        checkpoint_dir = str(Path(checkpoint_dir).absolute())
    export = (export,) if isinstance(export, str) else tuple(export)
    if export:
        if not plan:
            raise ValueError(f"export={export!r} needs plan=True (it lowers planned calls)")
        for platform in export:
            _checks.one_of("export platform", platform, exporting.PLATFORMS)
    return Execution(
        chunk_size, devices, checkpoint_dir, checkpoint_every, memory_bytes, bool(plan), export
    )


@contextlib.contextmanager
def execution(
    *,
    chunk_size: int | str | None = None,
    devices: int | None = None,
    checkpoint_dir: str | None = None,
    checkpoint_every: int | None = None,
    memory_bytes: int | None = None,
    plan: bool = False,
    export: Sequence[str] = (),
) -> Iterator[Execution]:
    """Run every seed-engine call in the block with these settings (see `Execution`).

    Bad values raise ValueError naming the argument (devices: at most `jax.device_count()`).
    """
    settings = _validated(
        chunk_size, devices, checkpoint_dir, checkpoint_every, memory_bytes, plan, export
    )
    token = _SETTINGS.set(settings)
    calls = _CALLS.set(itertools.count())
    planned = _PLANNED.set([] if plan else None)
    try:
        yield settings
    finally:
        _PLANNED.reset(planned)
        _CALLS.reset(calls)
        _SETTINGS.reset(token)


_STOP = threading.Event()


def request_stop() -> None:
    """Ask every checkpointed `train_seeds` run to stop after its next checkpoint (a Ctrl-C
    handler calls this, so the interrupt never lands inside a checkpoint write)."""
    _STOP.set()


def stop_requested() -> bool:
    """Whether `request_stop` was called (and not cleared)."""
    return _STOP.is_set()


def clear_stop() -> None:
    """Forget a stop request."""
    _STOP.clear()


def planned_calls() -> list[dict]:
    """The engine calls compiled so far in this planning block (empty outside one)."""
    return list(_PLANNED.get() or [])


def record_planned_call(entry: dict) -> None:
    """Add one engine call's plan (seeds per call, calls, peak bytes, FLOPs) to the block's."""
    planned = _PLANNED.get()
    if planned is None:
        raise ValueError("record_planned_call needs an execution(plan=True) block")
    planned.append(entry)


def next_checkpoint_dir() -> str | None:
    """The checkpoint directory of the next checkpointed call in this block, or None."""
    base, calls = current().checkpoint_dir, _CALLS.get()
    if base is None or calls is None:
        return None
    return str(Path(base) / f"call-{next(calls):03d}")
