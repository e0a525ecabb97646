"""How seed-vmapped work runs: chunks of seeds, a device mesh over the `seeds` axis, checkpoints.

`train.train_seeds` and `train.vmap_seeds` take these settings as arguments. Code that calls
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
from collections.abc import Iterator
from pathlib import Path

import jax

from esparse import _checks

__all__ = ["Execution", "current", "execution", "next_checkpoint_dir"]


@dataclasses.dataclass(frozen=True)
class Execution:
    """Settings of the seed engine.

    chunk_size: seeds per compiled call (None: all at once). devices: shard the seed axis over
    the first `devices` of `jax.devices()` (None: no sharding; in a multi-process run
    `jax.devices()` spans every process). checkpoint_dir / checkpoint_every: save each
    `train_seeds` run every `checkpoint_every` steps under its own sub-directory; a
    `checkpoint_every` alone only segments the scan (control returns to Python between
    segments, so Ctrl-C and progress work).
    """

    chunk_size: int | None = None
    devices: int | None = None
    checkpoint_dir: str | None = None
    checkpoint_every: int | None = None


_DEFAULT = Execution()
_SETTINGS: contextvars.ContextVar[Execution | None] = contextvars.ContextVar(
    "esparse_execution", default=None
)
_CALLS: contextvars.ContextVar[Iterator[int] | None] = contextvars.ContextVar(
    "esparse_checkpoint_calls", default=None
)


def current() -> Execution:
    """The settings of the innermost `execution` block (defaults outside any block)."""
    return _SETTINGS.get() or _DEFAULT


def _validated(
    chunk_size: int | None,
    devices: int | None,
    checkpoint_dir: str | None,
    checkpoint_every: int | None,
) -> Execution:
    if chunk_size is not None:
        chunk_size = _checks.positive_int("chunk_size", chunk_size)
    if devices is not None:
        devices = _checks.int_in_range("devices", devices, 1, jax.device_count())
    if checkpoint_every is not None:
        checkpoint_every = _checks.positive_int("checkpoint_every", checkpoint_every)
    if checkpoint_dir is not None:
        if checkpoint_every is None:
            raise ValueError("checkpoint_every must be given with checkpoint_dir")
        checkpoint_dir = str(Path(checkpoint_dir).absolute())
    return Execution(chunk_size, devices, checkpoint_dir, checkpoint_every)


@contextlib.contextmanager
def execution(
    *,
    chunk_size: int | None = None,
    devices: int | None = None,
    checkpoint_dir: str | None = None,
    checkpoint_every: int | None = None,
) -> Iterator[Execution]:
    """Run every seed-engine call in the block with these settings (see `Execution`).

    Bad values raise ValueError naming the argument (devices: at most `jax.device_count()`).
    """
    settings = _validated(chunk_size, devices, checkpoint_dir, checkpoint_every)
    token = _SETTINGS.set(settings)
    calls = _CALLS.set(itertools.count())
    try:
        yield settings
    finally:
        _CALLS.reset(calls)
        _SETTINGS.reset(token)


def next_checkpoint_dir() -> str | None:
    """The checkpoint directory of the next checkpointed call in this block, or None."""
    base, calls = current().checkpoint_dir, _CALLS.get()
    if base is None or calls is None:
        return None
    return str(Path(base) / f"call-{next(calls):03d}")
