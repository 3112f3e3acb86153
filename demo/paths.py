"""Where the demo writes, and the rule that lets a re-run replace only what an earlier run wrote."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MARKER_FILE", "OWNED", "DemoPaths"]

MARKER_FILE = ".mlplat-demo"
"""Marks a directory as the demo's output, so a re-run may wipe what an earlier run wrote."""
OWNED = ("store", "reports", "logs", "summary.json", "timeline.png")
"""What the demo writes under ``--out``; a re-run removes exactly these, nothing else."""


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo writes.

    Attributes:
        out: The output directory (``--out``).
        store: The MLflow store, artifacts, event log and inference log.
        reports: Evidently HTML drift reports (the controller writes them here).
        logs: Child process logs and the demo's own log.
    """

    out: Path

    @property
    def store(self) -> Path:
        """``<out>/store``."""
        return self.out / "store"

    @property
    def reports(self) -> Path:
        """``<out>/reports``."""
        return self.out / "reports"

    @property
    def logs(self) -> Path:
        """``<out>/logs``."""
        return self.out / "logs"

    @property
    def summary(self) -> Path:
        """``<out>/summary.json``."""
        return self.out / "summary.json"

    @property
    def timeline(self) -> Path:
        """``<out>/timeline.png``."""
        return self.out / "timeline.png"

    def prepare(self) -> None:
        """Remove what an earlier demo run wrote and create the directories.

        Raises:
            FileExistsError: ``out`` holds a file or folder the demo would overwrite but no
                marker that an earlier demo run made it (it may be somebody's data).
        """
        self.out.mkdir(parents=True, exist_ok=True)
        marker = self.out / MARKER_FILE
        present = [name for name in OWNED if (self.out / name).exists()]
        if present and not marker.exists():
            raise FileExistsError(
                f"--out {self.out}: {', '.join(present)} exist(s) but were not written by the "
                "demo (no .mlplat-demo marker); choose an empty or new directory"
            )
        marker.write_text("written by `mlplat demo`; a re-run replaces its outputs\n")
        for name in OWNED:
            path = self.out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        for folder in (self.store, self.reports, self.logs):
            folder.mkdir(parents=True)
