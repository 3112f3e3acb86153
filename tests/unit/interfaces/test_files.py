"""Atomic writes: a reader sees the old file or the whole new one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from interfaces.files import write_atomically, write_json_atomically, write_text_atomically

pytestmark = pytest.mark.unit


def test_report_file_is_replaced_atomically_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed report write leaves the old file intact and no temp file behind."""
    path = tmp_path / "report.html"
    write_text_atomically(path, "<html>old</html>")

    def fail(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_text_atomically(path, "<html>new</html>")
    assert path.read_text(encoding="utf-8") == "<html>old</html>"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_the_summary_file_is_written_whole(tmp_path: Path) -> None:
    """The file is valid JSON and no temp file is left next to it."""
    path = write_json_atomically(tmp_path / "summary.json", {"scenarios": [{"key": "a"}]})
    assert json.loads(path.read_text())["scenarios"][0]["key"] == "a"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_failing_writer_leaves_nothing_behind(tmp_path: Path) -> None:
    """When the content cannot be produced, the target is untouched and no temp file remains."""
    path = tmp_path / "model.bin"
    path.write_bytes(b"old")

    def broken(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("serialiser failed")

    with pytest.raises(RuntimeError, match="serialiser failed"):
        write_atomically(path, broken)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_the_mode_is_readable_by_people_unless_asked_otherwise(tmp_path: Path) -> None:
    """Written files get 0644 (not mkstemp's 0600) unless a private mode is asked for."""
    public = write_text_atomically(tmp_path / "report.html", "x")
    private = write_atomically(tmp_path / "cache.bin", lambda tmp: tmp.write_bytes(b"x"), 0o600)
    assert public.stat().st_mode & 0o777 == 0o644
    assert private.stat().st_mode & 0o777 == 0o600
