"""The demo's own files and children: it only ever removes what it wrote, and isolates itself."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from demo.paths import MARKER_FILE, DemoPaths
from demo.processes import ChildProcess, child_environment

pytestmark = pytest.mark.unit


def test_a_rerun_replaces_the_demos_outputs_and_nothing_else(tmp_path: Path) -> None:
    """Old reports and summaries go; a user's file next to them stays."""
    paths = DemoPaths(tmp_path)
    paths.prepare()
    (paths.reports / "old.html").write_text("old")
    paths.summary.write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    paths.prepare()
    assert not (paths.reports / "old.html").exists()
    assert not paths.summary.exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert paths.store.is_dir()
    assert paths.logs.is_dir()


def test_a_folder_the_demo_did_not_write_is_never_wiped(tmp_path: Path) -> None:
    """Without the demo's marker, an existing reports/ folder is somebody's data: refuse."""
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "q3.html").write_text("precious")
    with pytest.raises(FileExistsError, match="reports"):
        DemoPaths(tmp_path).prepare()
    assert (tmp_path / "reports" / "q3.html").read_text() == "precious"
    assert not (tmp_path / MARKER_FILE).exists()


def test_children_get_the_demos_store_not_the_callers() -> None:
    """Every MLPLAT_* and MLFLOW_* variable of the caller is dropped before the demo's are set."""
    env = child_environment(
        {"PATH": "/bin", "MLFLOW_TRACKING_URI": "http://prod:5000", "MLPLAT_EVENTS_URL": "pg://x",
         "MLPLAT_SERVING_ADMIN_TOKEN": "prod-secret"},
        {"MLFLOW_TRACKING_URI": "sqlite:///demo.db"},
    )  # fmt: skip
    assert env == {"PATH": "/bin", "MLFLOW_TRACKING_URI": "sqlite:///demo.db"}


def test_a_child_that_lost_its_port_says_so(tmp_path: Path) -> None:
    """A server whose port was taken before it bound it is told apart from any other failure."""
    bind_error = "ERROR: [Errno 98] error while attempting to bind: address already in use"
    lost = ChildProcess(
        "lost", [sys.executable, "-c", f"import sys; print({bind_error!r}); sys.exit(1)"],
        {}, tmp_path / "lost.log",
    )  # fmt: skip
    crashed = ChildProcess(
        "crashed", [sys.executable, "-c", "raise SystemExit('no champion')"], {},
        tmp_path / "crashed.log",
    )  # fmt: skip
    for child in (lost, crashed):
        assert not child.lost_its_port()  # not started: nothing lost
        child.start()
        deadline = time.monotonic() + 30.0
        while child.exit_code() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    assert lost.lost_its_port()
    assert not crashed.lost_its_port()
