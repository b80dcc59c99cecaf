"""Atomic writes: all or nothing, and files get the mode a plain open() would give."""

from __future__ import annotations

import os
import stat

import pytest

from art_denoise._files import atomic_write_text, atomic_write_with


def test_atomic_write_replaces_and_uses_the_umask(tmp_path) -> None:
    target = tmp_path / "f.json"
    target.write_text("old")
    old = os.umask(0o022)
    try:
        atomic_write_text(target, "new")
    finally:
        os.umask(old)
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_a_failed_write_leaves_the_old_file(tmp_path) -> None:
    target = tmp_path / "f.json"
    target.write_text("old")

    def half_write(tmp) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_with(target, half_write)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
