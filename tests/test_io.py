"""esparse.io.atomic_write: whole file or nothing, no temp file left behind."""

import os

import pytest

from esparse import io


def test_writes_bytes_and_str_and_creates_the_directory(tmp_path):
    path = tmp_path / "a" / "b" / "out.bin"
    io.atomic_write(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    io.atomic_write(path, "héllo")  # replaces the old file
    assert path.read_text(encoding="utf-8") == "héllo"
    assert os.listdir(path.parent) == ["out.bin"]


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "out.json"
    io.atomic_write(path, "old")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        io.atomic_write(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]


def test_rejects_data_that_is_not_bytes_or_str(tmp_path):
    with pytest.raises(ValueError, match="data must be bytes, str or a callable, got list"):
        io.atomic_write(tmp_path / "x", [1, 2])
    assert not (tmp_path / "x").exists()


def test_a_callable_writes_the_temp_file_and_an_interrupted_one_leaves_nothing(tmp_path):
    path = tmp_path / "fig.png"
    io.atomic_write(path, lambda tmp: open(tmp, "wb").write(b"png"))
    assert path.read_bytes() == b"png"

    def interrupted(tmp):
        open(tmp, "wb").write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        io.atomic_write(path, interrupted)
    assert path.read_bytes() == b"png"
    assert os.listdir(tmp_path) == ["fig.png"]
