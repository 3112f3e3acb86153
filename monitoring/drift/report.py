"""The Evidently side of the drift checks: one ``Report`` of per-column ``ValueDrift``, as HTML.

``monitoring/drift/`` computes the scores and thresholds; this module asks Evidently 0.7 for
the same distances (one ``ValueDrift(column, method, threshold)`` per column, so the report shows
the calibrated thresholds, not Evidently's defaults) and writes its self-contained HTML: the
JavaScript bundle and the icon font are embedded, and nothing is fetched when the report is
generated or viewed.

Evidently is imported inside the functions: it takes seconds to import, and nothing but report
writing needs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from interfaces.files import write_text_atomically
from monitoring.drift.calibration import DriftCalibration
from monitoring.drift.config import DriftConfig, column_kind, require_columns

__all__ = [
    "ColumnSpec",
    "ValueDriftReport",
    "build_value_drift_report",
    "value_drift_scores",
    "write_html_report",
    "write_value_drift_html",
]


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the report.

    Attributes:
        column: Column name (the same in both frames).
        kind: ``numeric`` or ``categorical``.
        method: Evidently stattest name (``wasserstein``, ``jensenshannon``, ``psi``).
        threshold: Threshold to show; ``None`` leaves Evidently's default.
    """

    column: str
    kind: Literal["numeric", "categorical"]
    method: str
    threshold: float | None


@dataclass(frozen=True)
class ValueDriftReport:
    """A computed report.

    Attributes:
        scores: Evidently's drift score per column.
        skipped: Columns left out because one side had no non-null value (Evidently refuses
            an empty column).
        html: The standalone HTML document.
    """

    scores: dict[str, float]
    skipped: tuple[str, ...]
    html: str


def _clean(frame: pd.DataFrame, specs: Sequence[ColumnSpec]) -> pd.DataFrame:
    """Give Evidently the values the checks score: numbers as floats, categories as text."""
    out = {}
    for spec in specs:
        series = frame[spec.column]
        if spec.kind == "numeric":
            out[spec.column] = pd.to_numeric(series).astype(float)
        else:
            out[spec.column] = series.astype(object).where(series.isna(), series.astype(str))
    return pd.DataFrame(out, index=frame.index)


def _usable(frame: pd.DataFrame, column: str) -> bool:
    values = frame[column]
    if pd.api.types.is_numeric_dtype(values):
        values = values.replace([float("inf"), float("-inf")], float("nan"))
    return bool(values.notna().any())


def value_drift_scores(snapshot: Mapping[str, Any]) -> dict[str, float]:
    """Return ``{column: score}`` of every ``ValueDrift`` metric in ``snapshot.dict()``.

    Reads the metric's ``config`` (type and column), not its display name, so a change in how
    Evidently titles metrics does not break it.
    """
    scores: dict[str, float] = {}
    for metric in snapshot.get("metrics", []):
        config = metric.get("config") or {}
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        value = metric.get("value")
        if isinstance(value, Mapping):  # future-proof: a value object rather than a number
            value = value.get("value")
        if config.get("column") is not None and isinstance(value, int | float):
            scores[str(config["column"])] = float(value)
    return scores


def build_value_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    specs: Sequence[ColumnSpec],
    title: str | None = None,
) -> ValueDriftReport:
    """Run one Evidently report of per-column ``ValueDrift`` metrics.

    Args:
        reference: Reference rows.
        current: Window rows (same column names as ``reference``).
        specs: The columns, their methods and thresholds.
        title: Stored as the snapshot's name and in its metadata.

    Returns:
        The scores Evidently computed and the HTML document.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    usable = [s for s in specs if _usable(reference, s.column) and _usable(current, s.column)]
    skipped = tuple(s.column for s in specs if s not in usable)
    definition = DataDefinition(
        numerical_columns=[s.column for s in usable if s.kind == "numeric"],
        categorical_columns=[s.column for s in usable if s.kind == "categorical"],
    )
    metrics: list[Any] = [
        ValueDrift(column=s.column, method=s.method, threshold=s.threshold) for s in usable
    ]
    report = Report(metrics, metadata={"title": title} if title else None)
    snapshot = report.run(
        Dataset.from_pandas(_clean(current, usable), data_definition=definition),
        Dataset.from_pandas(_clean(reference, usable), data_definition=definition),
        name=title,
    )
    return ValueDriftReport(
        scores=value_drift_scores(snapshot.dict()),
        skipped=skipped,
        html=snapshot.get_html_str(as_iframe=False),
    )


def write_value_drift_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    specs: Sequence[ColumnSpec],
    path: Path,
    title: str | None = None,
) -> Path:
    """Build the report (:func:`build_value_drift_report`) and write its HTML atomically."""
    report = build_value_drift_report(reference, current, specs, title)
    return write_text_atomically(path, report.html)


def write_html_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    path: Path,
    config: DriftConfig | None = None,
    *,
    calibration: DriftCalibration | None = None,
    title: str | None = None,
) -> Path:
    """Write Evidently's HTML drift report of one window, atomically (temp file + rename).

    The report holds one Evidently ``ValueDrift`` per checked column with the same method as the
    check and, when ``calibration`` is given, the calibrated threshold, so its distances and
    their flags are the ones :func:`check_drift` exported (null spikes are judged by the check
    alone: Evidently drops nulls before scoring). The file is self-contained: the
    JavaScript bundle and the icon font are embedded, nothing is fetched when it is viewed.

    Args:
        reference: The reference sample.
        current: The window (its prediction column is renamed to the reference's name).
        path: Where to write the ``.html`` file; its directory is created if needed.
        config: Drift parameters; defaults to ``DriftConfig()``.
        calibration: Thresholds to show; without it Evidently's default thresholds are shown.
        title: Stored in the report's metadata (e.g. ``"champion v3, 12:00-12:15"``).

    Returns:
        ``path``.
    """
    config = config or DriftConfig()
    specs: list[ColumnSpec] = []
    window = current
    columns = list(config.checked_features())
    if (
        config.reference_prediction_column in reference.columns
        and config.window_prediction_column in current.columns
    ):
        columns.append(config.reference_prediction_column)
        if config.window_prediction_column != config.reference_prediction_column:
            window = current.drop(columns=[config.reference_prediction_column], errors="ignore")
            window = window.rename(
                columns={config.window_prediction_column: config.reference_prediction_column}
            )
    require_columns(reference, columns, "reference")
    require_columns(window, columns, "window")
    for column in columns:
        threshold = None
        if calibration is not None:
            entry = (
                calibration.prediction
                if column == config.reference_prediction_column
                else calibration.column(column)
            )
            threshold = None if entry is None else entry.threshold
        specs.append(ColumnSpec(column, column_kind(column), config.method_for(column), threshold))
    return write_value_drift_html(reference, window, specs, path, title=title)
