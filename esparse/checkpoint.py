"""Atomic, fingerprinted checkpoints of pytrees with orbax-checkpoint.

A checkpoint directory holds numbered steps (`<dir>/<step>/`), each with the state (a pytree
of arrays, stored as its flat list of leaves so that any pytree node type round-trips) and a
JSON metadata dict. Orbax writes every step into a temporary directory and renames it into
place once complete (`AtomicRenameTemporaryPath`, its default on local and network file
systems), so a run killed mid-save leaves the previous steps intact and no half-written step.

A metadata dict may carry a `"fingerprint"` (a hash of a run's static configuration, see
`fingerprint`): `save` refuses to add a step to a directory whose latest step has another
fingerprint, and readers compare it before resuming.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

__all__ = [
    "all_steps",
    "discard",
    "fingerprint",
    "latest_step",
    "load_metadata",
    "restore",
    "resume",
    "save",
]

_ITEMS = ("state", "metadata")


def _manager(directory: str | os.PathLike, *, create: bool) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=2, enable_async_checkpointing=False, create=create
    )
    return ocp.CheckpointManager(os.fspath(directory), options=options, item_names=_ITEMS)


def _as_leaf_dict(state: Any) -> dict[str, Any]:
    return {f"{i:06d}": leaf for i, leaf in enumerate(jax.tree.leaves(state))}


def fingerprint(config: Any) -> str:
    """A stable hex digest of a JSON-serialisable description of a run's configuration."""
    text = json.dumps(config, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def latest_step(directory: str | os.PathLike) -> int | None:
    """The largest completed step saved in `directory`, or None (also when it does not exist)."""
    if not os.path.isdir(directory):
        return None
    with _manager(directory, create=False) as manager:
        return manager.latest_step()


def all_steps(directory: str | os.PathLike) -> list[int]:
    """The completed steps saved in `directory`, newest first ([] when it does not exist)."""
    if not os.path.isdir(directory):
        return []
    with _manager(directory, create=False) as manager:
        return sorted(manager.all_steps(), reverse=True)


def discard(directory: str | os.PathLike, step: int) -> None:
    """Delete `step` from `directory` (a damaged step, so that a run can save past it)."""
    path = os.path.join(os.fspath(directory), str(step))
    if os.path.isdir(path):
        shutil.rmtree(path)


def load_metadata(directory: str | os.PathLike, step: int) -> dict:
    """The metadata dict saved with `step`; ValueError if it cannot be read."""
    try:
        with _manager(directory, create=False) as manager:
            restored = manager.restore(
                step, args=ocp.args.Composite(metadata=ocp.args.JsonRestore())
            )
    except Exception as err:
        raise ValueError(
            f"checkpoint_dir {os.fspath(directory)!r}: metadata of step {step} is corrupt or "
            f"unreadable ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(restored.metadata, dict):
        raise ValueError(
            f"checkpoint_dir {os.fspath(directory)!r}: metadata of step {step} is not a dict"
        )
    return restored.metadata


def save(directory: str | os.PathLike, step: int, state: Any, metadata: dict) -> None:
    """Save `state` (a pytree of arrays) and `metadata` (JSON-able dict) as `step`, atomically.

    Raises ValueError if `directory` already holds a step >= `step` (a good checkpoint is never
    overwritten), or if its latest step carries a different `metadata["fingerprint"]`.
    Sharded `jax.Array`s are saved by every process together (multi-host safe).
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    last = latest_step(directory)
    if last is not None:
        if last >= step:
            raise ValueError(
                f"checkpoint_dir {os.fspath(directory)!r} already holds step {last} >= {step}; "
                "refusing to overwrite it"
            )
        theirs = load_metadata(directory, last).get("fingerprint")
        if theirs != metadata.get("fingerprint"):
            raise ValueError(
                f"checkpoint_dir {os.fspath(directory)!r} holds checkpoints of another run "
                f"(fingerprint {theirs!r}, this run {metadata.get('fingerprint')!r})"
            )
    with _manager(directory, create=True) as manager:
        manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_as_leaf_dict(state)),
                metadata=ocp.args.JsonSave(metadata),
            ),
        )
        manager.wait_until_finished()


def restore(directory: str | os.PathLike, step: int, like: Any) -> Any:
    """The state saved as `step`, with the tree structure, shapes, dtypes and shardings of `like`.

    `like` is a pytree of arrays or `jax.ShapeDtypeStruct`s. A checkpoint that cannot be read
    or does not match `like` raises ValueError naming the directory.
    """
    leaves, treedef = jax.tree.flatten(like)
    abstract = _as_leaf_dict([ocp.utils.to_shape_dtype_struct(leaf) for leaf in leaves])
    try:
        with _manager(directory, create=False) as manager:
            restored = manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
            )
    except Exception as err:
        raise ValueError(
            f"checkpoint_dir {os.fspath(directory)!r}: step {step} is corrupt or does not match "
            f"the expected state ({type(err).__name__}: {err})"
        ) from err
    got = restored.state
    if sorted(got) != sorted(abstract):
        raise ValueError(
            f"checkpoint_dir {os.fspath(directory)!r}: step {step} holds {len(got)} arrays, "
            f"expected {len(abstract)}"
        )
    for name, want in abstract.items():
        if got[name].shape != want.shape or np.dtype(got[name].dtype) != np.dtype(want.dtype):
            raise ValueError(
                f"checkpoint_dir {os.fspath(directory)!r}: step {step} array {name} has "
                f"{got[name].shape} {got[name].dtype}, expected {want.shape} {want.dtype}"
            )
    return jax.tree.unflatten(treedef, [got[name] for name in sorted(abstract)])


def resume(directory: str | os.PathLike, fp: str, like: Any) -> tuple[int, Any] | None:
    """(step, state) of the newest step of run `fp` in `directory` that restores (state shaped
    like `like`, as `restore`), or None: no step, so the run starts at 0.

    A damaged step (its metadata or arrays unreadable, or not matching `like`) is skipped with
    a RuntimeWarning naming it, and deleted so the run can save past it; when no step
    restores, the run starts over with a warning. A readable step of another run (another
    fingerprint) is a ValueError: such a directory is never written over.
    """
    where, damaged = os.fspath(directory), False
    for step in all_steps(directory):
        try:
            theirs = load_metadata(directory, step).get("fingerprint")
            if theirs == fp:
                return step, restore(directory, step, like=like)
        except ValueError as err:
            warnings.warn(
                f"checkpoint_dir {where!r}: step {step} does not restore, skipped and deleted "
                f"({str(err)[:300]})",
                RuntimeWarning,
                stacklevel=3,
            )
            discard(directory, step)
            damaged = True
            continue
        raise ValueError(
            f"checkpoint_dir {where!r} holds checkpoints of another run (fingerprint "
            f"{theirs!r}, this run {fp!r}): give this run its own directory"
        )
    if damaged:
        warnings.warn(
            f"checkpoint_dir {where!r}: no checkpoint restores; this call starts over",
            RuntimeWarning,
            stacklevel=3,
        )
    return None
