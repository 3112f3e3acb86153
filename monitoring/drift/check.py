"""The check: one window of the inference log against the reference, column by column."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from monitoring.drift.calibration import ColumnCalibration, DriftCalibration, reference_digest
from monitoring.drift.config import (
    CalibrationMismatchError,
    DriftConfig,
    DriftStatus,
    require_columns,
)
from monitoring.drift.distances import column_values, distance

__all__ = ["DriftResult", "FeatureDrift", "check_drift"]


@dataclass(frozen=True)
class FeatureDrift:
    """The verdict on one column of one window.

    Attributes:
        feature: Column name (the reference's name for the prediction column).
        method: Distance used.
        score: The distance (higher = more drift), or ``None`` when the window has no non-null
            value of the column to compare (the null share then tells the story).
        threshold: Calibrated threshold of ``score``.
        drifted: ``score >= threshold`` or ``null_spike``.
        null_share: Share of nulls in the window.
        reference_null_share: Share of nulls in the reference.
        null_threshold: Calibrated threshold of ``|null_share - reference_null_share|``.
        null_spike: The null share moved beyond its threshold.
    """

    feature: str
    method: str
    score: float | None
    threshold: float
    drifted: bool
    null_share: float
    reference_null_share: float
    null_threshold: float
    null_spike: bool

    @property
    def distance_drifted(self) -> bool:
        """Whether the distribution of the non-null values moved beyond the threshold."""
        return self.score is not None and self.score >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form."""
        return {
            "feature": self.feature,
            "method": self.method,
            "score": self.score,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "null_share": self.null_share,
            "reference_null_share": self.reference_null_share,
            "null_threshold": self.null_threshold,
            "null_spike": self.null_spike,
        }


@dataclass(frozen=True)
class DriftResult:
    """The verdict on one window.

    Attributes:
        window_rows: Rows in the window.
        status: ``insufficient-data`` (too few rows: no claims at all), ``drift`` (at least one
            feature or the prediction drifted) or ``ok``.
        features: One entry per checked feature (empty when ``insufficient-data``).
        share_drifted: Share of checked features that drifted.
        dataset_drifted: ``share_drifted >= share_threshold``: broad drift.
        prediction: The prediction column's verdict, when the reference has one.
        calibration_window_rows: Window size the thresholds were calibrated for.
        reason: One sentence for humans and alert annotations.
    """

    window_rows: int
    status: DriftStatus
    features: tuple[FeatureDrift, ...]
    share_drifted: float
    dataset_drifted: bool
    prediction: FeatureDrift | None
    calibration_window_rows: int | None
    reason: str

    @property
    def drifted_features(self) -> tuple[str, ...]:
        """Names of the drifted features, in contract order."""
        return tuple(f.feature for f in self.features if f.drifted)

    @property
    def input_drifted(self) -> bool:
        """Whether any input feature drifted."""
        return any(f.drifted for f in self.features)

    def scores(self) -> dict[str, float]:
        """Return the distance per feature, the values of the exported drift gauge.

        Features without a score (no non-null value in the window) are left out rather than
        exported as a fake number.
        """
        return {f.feature: f.score for f in self.features if f.score is not None}

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form."""
        return {
            "window_rows": self.window_rows,
            "status": self.status,
            "share_drifted": self.share_drifted,
            "dataset_drifted": self.dataset_drifted,
            "drifted_features": list(self.drifted_features),
            "calibration_window_rows": self.calibration_window_rows,
            "reason": self.reason,
            "features": [f.to_dict() for f in self.features],
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
        }


def _check_compatible(
    reference: pd.DataFrame, calibration: DriftCalibration, config: DriftConfig
) -> None:
    expected = tuple(c.column for c in calibration.features)
    if expected != config.checked_features():
        raise CalibrationMismatchError(
            f"the calibration covers features {', '.join(expected)}; the config asks for "
            f"{', '.join(config.checked_features())}: recalibrate with this config"
        )
    if (calibration.sigmas, calibration.tail_model) != (config.sigmas, config.tail_model):
        raise CalibrationMismatchError(
            f"the calibration used sigmas={calibration.sigmas:g}, tail_model="
            f"{calibration.tail_model!r}; the config asks for sigmas={config.sigmas:g}, "
            f"tail_model={config.tail_model!r}: recalibrate with this config"
        )
    for entry in (*calibration.features, calibration.prediction):
        if entry is not None and entry.method != config.method_for(entry.column):
            raise CalibrationMismatchError(
                f"{entry.column}: calibrated with {entry.method!r} but the config uses "
                f"{config.method_for(entry.column)!r}: recalibrate with this config"
            )
    columns = [c.column for c in calibration.features]
    if calibration.prediction is not None:
        columns.append(calibration.prediction.column)
    require_columns(reference, columns, "reference")
    if reference_digest(reference, columns) != calibration.reference_digest:
        raise CalibrationMismatchError(
            "the calibration was computed on another reference sample: calibrate on this one"
        )


def _judge(
    entry: ColumnCalibration, reference: pd.Series, current: pd.Series, name: str
) -> FeatureDrift:
    ref, _ = column_values(reference, entry.kind, "reference")
    cur, nulls = column_values(current, entry.kind, "window")
    null_share = nulls / len(current) if len(current) else 0.0
    score = distance(ref, cur, entry.kind, entry.method) if len(cur) else None
    null_spike = abs(null_share - entry.reference_null_share) >= entry.null_threshold
    distance_drifted = score is not None and score >= entry.threshold
    return FeatureDrift(
        feature=name,
        method=entry.method,
        score=score,
        threshold=entry.threshold,
        drifted=bool(distance_drifted or null_spike),
        null_share=float(null_share),
        reference_null_share=entry.reference_null_share,
        null_threshold=entry.null_threshold,
        null_spike=bool(null_spike),
    )


def _reason(features: Sequence[FeatureDrift], prediction: FeatureDrift | None) -> str:
    parts = []
    for f in features:
        if f.drifted:
            bits = []
            if f.distance_drifted:
                bits.append(f"{f.method} {f.score:.3f} >= {f.threshold:.3f}")
            if f.null_spike:
                bits.append(f"nulls {f.null_share:.1%} vs {f.reference_null_share:.1%}")
            parts.append(f"{f.feature} ({'; '.join(bits)})")
    if prediction is not None and prediction.drifted:
        parts.append(
            f"prediction ({prediction.method} {prediction.score or 0.0:.3f} "
            f">= {prediction.threshold:.3f})"
        )
    if not parts:
        return "no column moved beyond its calibrated threshold"
    return "drifted: " + ", ".join(parts)


def check_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    calibration: DriftCalibration,
    config: DriftConfig | None = None,
) -> DriftResult:
    """Judge one window of the inference log against the reference.

    Args:
        reference: The reference sample the calibration was computed on.
        current: The window: the checked features and, when the reference has a prediction
            column, ``config.window_prediction_column``.
        calibration: Thresholds from :func:`calibrate` on ``reference`` with ``config``.
        config: Drift parameters; defaults to ``DriftConfig()``.

    Returns:
        The verdict; ``insufficient-data`` (and no claim about any column) when the window has
        fewer than ``config.min_window_rows`` rows.

    Raises:
        DriftInputError: A frame lacks a column or holds the wrong type.
        CalibrationMismatchError: The calibration belongs to another reference or config, or
            to windows larger than this one (its thresholds would be too tight).
    """
    config = config or DriftConfig()
    rows = len(current)
    if rows < config.min_window_rows:
        return _insufficient(rows, calibration, config)
    _check_compatible(reference, calibration, config)
    if rows < calibration.window_rows:
        raise CalibrationMismatchError(
            f"the window has {rows} rows but the thresholds were calibrated for windows of "
            f"{calibration.window_rows}: smaller windows are noisier, calibrate for <= {rows}"
        )
    feature_names = [c.column for c in calibration.features]
    needed = list(feature_names)
    if calibration.prediction is not None:
        needed.append(config.window_prediction_column)
    require_columns(current, needed, "window")
    features = tuple(
        _judge(entry, reference[entry.column], current[entry.column], entry.column)
        for entry in calibration.features
    )
    prediction = None
    if calibration.prediction is not None:
        entry = calibration.prediction
        prediction = _judge(
            entry, reference[entry.column], current[config.window_prediction_column], entry.column
        )
    share = sum(f.drifted for f in features) / len(features)
    drifted = any(f.drifted for f in features) or (prediction is not None and prediction.drifted)
    return DriftResult(
        window_rows=rows,
        status="drift" if drifted else "ok",
        features=features,
        share_drifted=share,
        dataset_drifted=share >= config.share_threshold,
        prediction=prediction,
        calibration_window_rows=calibration.window_rows,
        reason=_reason(features, prediction),
    )


def _insufficient(rows: int, calibration: DriftCalibration, config: DriftConfig) -> DriftResult:
    """A window too small to judge: no claim about any column."""
    return DriftResult(
        window_rows=rows,
        status="insufficient-data",
        features=(),
        share_drifted=0.0,
        dataset_drifted=False,
        prediction=None,
        calibration_window_rows=calibration.window_rows,
        reason=f"{rows} rows, fewer than the {config.min_window_rows} a check needs",
    )
