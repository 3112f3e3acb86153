"""A model version's reference sample with its calibrations, cached per window size."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from monitoring.drift.calibration import DriftCalibration, calibrate
from monitoring.drift.check import DriftResult, check_drift
from monitoring.drift.config import CalibrationError, DriftConfig, require_columns
from monitoring.drift.report import write_html_report

__all__ = ["DriftDetector"]


@dataclass
class DriftDetector:
    """A reference sample with its calibrations, cached per window size.

    Calibrations sit on a doubling ladder of window sizes (``min_window_rows * 2**k``, capped at
    half the reference): a window of ``n`` rows is judged with the calibration of the largest
    rung not above ``n``. Thresholds from smaller windows are a little wider than ``n`` needs,
    never tighter, and a job that sees windows of every size calibrates only a few times.

    Args:
        reference: The reference sample of the model version being watched.
        config: Drift parameters; defaults to ``DriftConfig()``.
        seed: Seed of the calibrations.

    Raises:
        DriftInputError: The reference lacks a checked feature.
        CalibrationError: The reference has fewer than ``2 * min_window_rows`` rows.
    """

    reference: pd.DataFrame
    config: DriftConfig = field(default_factory=DriftConfig)
    seed: int = 0
    _cache: dict[int, DriftCalibration] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        require_columns(self.reference, self.config.checked_features(), "reference")
        if len(self.reference) < 2 * self.config.min_window_rows:
            raise CalibrationError(
                f"the reference has {len(self.reference)} rows; windows of "
                f"min_window_rows={self.config.min_window_rows} need at least "
                f"{2 * self.config.min_window_rows}"
            )

    def rung(self, window_rows: int) -> int:
        """Return the calibrated window size used for a window of ``window_rows`` rows."""
        cap = len(self.reference) // 2
        if window_rows >= cap:
            return cap
        size = self.config.min_window_rows
        while size * 2 <= window_rows:
            size *= 2
        return size

    def calibration_for(self, window_rows: int) -> DriftCalibration:
        """Return (and cache) the calibration used for ``window_rows``-row windows."""
        size = self.rung(max(window_rows, self.config.min_window_rows))
        if size not in self._cache:
            self._cache[size] = calibrate(self.reference, size, self.config, self.seed)
        return self._cache[size]

    def check(self, current: pd.DataFrame) -> DriftResult:
        """Judge one window (see :func:`check_drift`)."""
        calibration = self.calibration_for(len(current))
        return check_drift(self.reference, current, calibration, self.config)

    def write_html_report(
        self, current: pd.DataFrame, path: Path, title: str | None = None
    ) -> Path:
        """Write the window's HTML report with the thresholds :meth:`check` uses."""
        calibration = (
            self.calibration_for(len(current))
            if len(current) >= self.config.min_window_rows
            else None
        )
        return write_html_report(
            self.reference, current, path, self.config, calibration=calibration, title=title
        )
