"""Atomic file writes: a reader sees the old file or the new one, never a partial write.

The data is written to a temporary file in the target's directory, then moved over the
target with `os.replace` (atomic on POSIX and Windows within one file system), so an
interrupted run never leaves a truncated file that a later run would read (the dataset cache
of `esparse.data` is written so).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[str], None]) -> None:
    """Write `data` to `path` atomically: to a temporary file in the same directory, then
    `os.replace` onto path (no fsync). str is encoded as UTF-8; a callable is called with the
    temporary file's path and writes it itself (a figure's savefig, a JSON dump). The
    directory is created if missing; on any error the temporary file is removed and path is
    left as it was.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif not (callable(data) or isinstance(data, bytes | bytearray | memoryview)):
        raise ValueError(f"data must be bytes, str or a callable, got {type(data).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if callable(data):
            os.close(fd)
            data(tmp)
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
