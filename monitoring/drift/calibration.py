"""Calibration: what each column's drift distance looks like when nothing changed.

:func:`calibrate` draws "nothing changed" windows from the reference itself and sets each
column's threshold at the upper tail of their distances (see :mod:`monitoring.drift`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy import stats

from monitoring.drift.config import (
    CalibrationError,
    ColumnKind,
    DriftConfig,
    DriftInputError,
    TailModel,
    column_kind,
    require_columns,
)
from monitoring.drift.distances import (
    binned_distance,
    column_values,
    distance,
    wasserstein_sorted,
)

__all__ = [
    "ColumnCalibration",
    "DriftCalibration",
    "calibrate",
    "calibrated_columns",
    "reference_digest",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class ColumnCalibration(BaseModel):
    """How one column's scores behave on "nothing changed" windows, and its thresholds.

    Attributes:
        column: Column name in the reference.
        kind: ``numeric`` or ``categorical``.
        method: Distance the scores were computed with.
        mean: Mean distance over the calibration windows.
        std: Standard deviation (ddof=1) of the distance over the calibration windows.
        threshold: The upper ``column_alpha`` tail point of the no-change scores (see
            :attr:`DriftConfig.tail_model`), at least ``threshold_floor``; a score at or above
            it is drift.
        reference_null_share: Share of nulls in the reference.
        null_mean: Mean ``|window null share - reference null share|`` over the windows.
        null_std: Its standard deviation.
        null_threshold: The same for the null-share gap, at least ``null_share_floor``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    column: str
    kind: ColumnKind
    method: str
    mean: float
    std: float
    threshold: float
    reference_null_share: float
    null_mean: float
    null_std: float
    null_threshold: float


class DriftCalibration(BaseModel):
    """Per-column thresholds for windows of ``window_rows`` rows against one reference.

    Serialisable (``model_dump_json``), so it can be cached next to the reference it belongs to.

    Attributes:
        window_rows: Window size the thresholds were calibrated for (valid for larger windows).
        chunks: Number of "nothing changed" windows drawn.
        sigmas: Family-wise strictness asked for (:attr:`DriftConfig.sigmas`).
        column_alpha: Per-column false-alarm probability after the Bonferroni split.
        tail_model: How the upper tail was modelled (``gamma`` or ``normal``).
        seed: Seed of the random splits.
        reference_rows: Rows in the reference.
        reference_digest: Digest of the reference columns used, to refuse another reference.
        features: Calibration per feature, in contract order.
        prediction: Calibration of the prediction column, when the reference has one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_rows: int
    chunks: int
    sigmas: float
    column_alpha: float
    tail_model: TailModel
    seed: int
    reference_rows: int
    reference_digest: str
    features: tuple[ColumnCalibration, ...]
    prediction: ColumnCalibration | None

    def column(self, name: str) -> ColumnCalibration:
        """Return the calibration of feature ``name``.

        Raises:
            KeyError: ``name`` was not calibrated.
        """
        for entry in self.features:
            if entry.column == name:
                return entry
        raise KeyError(f"feature {name!r} was not calibrated")


def _column_alpha(sigmas: float, columns: int) -> float:
    """Bonferroni: the family's tail (that of a ``sigmas``-sigma normal event) split k ways."""
    return float(stats.norm.sf(sigmas) / max(columns, 1))


def _upper_bound(mean: float, std: float, alpha: float, tail: TailModel) -> float:
    """Return the score that "nothing changed" exceeds with probability ``alpha``.

    ``normal`` is ``mean + z * std``. ``gamma`` is the quantile of the Gamma distribution with
    the same mean and std: distances are non-negative and skewed to the right, and a normal
    model puts their upper tail several times too low (see the module docstring).
    """
    if std <= 0.0 or mean <= 0.0:
        return mean
    if tail == "normal":
        return mean + float(stats.norm.isf(alpha)) * std
    shape, scale = (mean / std) ** 2, std**2 / mean
    return float(stats.gamma.isf(alpha, shape, scale=scale))


def calibrated_columns(reference: pd.DataFrame, config: DriftConfig) -> tuple[str, ...]:
    """The columns a calibration covers: the checked features, and the prediction if logged."""
    columns = config.checked_features()
    if config.reference_prediction_column in reference.columns:
        return (*columns, config.reference_prediction_column)
    return columns


def reference_digest(reference: pd.DataFrame, columns: Sequence[str]) -> str:
    """A short digest of the reference's ``columns``, to refuse a calibration of another one."""
    hashed = pd.util.hash_pandas_object(reference[list(columns)], index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class _PreparedColumn:
    """A reference column set up once so that each calibration split costs O(rows), no sort.

    Attributes:
        name: Column name.
        kind: ``numeric`` or ``categorical``.
        method: Distance used.
        null: Per row, whether the value is null.
        rows: Rows the distance uses (non-null, finite); for ``wasserstein`` in value order.
        values: The values of ``rows`` (floats, or category codes for categorical columns).
        totals: Counts per category over ``rows`` (categorical columns only).
    """

    name: str
    kind: ColumnKind
    method: str
    null: npt.NDArray[np.bool_]
    rows: IntArray
    values: npt.NDArray[Any]
    totals: FloatArray | None

    def score(self, in_window: npt.NDArray[np.bool_]) -> float | None:
        """Distance between the rows in the window (``in_window``) and all the other rows."""
        is_current = in_window[self.rows]
        n_current = int(is_current.sum())
        if n_current == 0 or n_current == len(self.rows):
            return None
        if self.method == "wasserstein":
            reference_std = float(np.std(self.values[~is_current]))
            return wasserstein_sorted(self.values, is_current, reference_std)
        if self.totals is not None:
            counts = np.bincount(self.values[is_current], minlength=len(self.totals))
            current: FloatArray = counts.astype(float)
            return binned_distance(self.totals - current, current, self.method)
        return distance(self.values[~is_current], self.values[is_current], self.kind, self.method)


def _prepare(reference: pd.DataFrame, column: str, config: DriftConfig) -> _PreparedColumn:
    kind = column_kind(column)
    method = config.method_for(column)
    series = reference[column]
    if kind == "numeric":
        column_values(series, kind, "reference")  # a type check with a readable message
        raw = pd.to_numeric(series).to_numpy(dtype=float, na_value=np.nan)
        null = np.isnan(raw)
        rows = np.flatnonzero(np.isfinite(raw))
        if method == "wasserstein":
            rows = rows[np.argsort(raw[rows], kind="stable")]
        values: npt.NDArray[Any] = raw[rows]
        totals = None
    else:
        null = series.isna().to_numpy()
        rows = np.flatnonzero(~null)
        # The same text the check compares, so a category is one code however it was typed.
        codes, keys = pd.factorize(series.iloc[rows].astype(str).to_numpy(dtype=object))
        values = codes.astype(np.int64)
        totals = np.bincount(values, minlength=len(keys)).astype(float)
    if len(rows) == 0:
        raise DriftInputError(f"reference column {column!r} has no usable (non-null) value")
    return _PreparedColumn(column, kind, method, null, rows.astype(np.int64), values, totals)


def _null_share(null: npt.NDArray[np.bool_]) -> float:
    return float(null.mean()) if len(null) else 0.0


def calibrate(
    reference: pd.DataFrame, window_rows: int, config: DriftConfig | None = None, seed: int = 0
) -> DriftCalibration:
    """Learn each column's "nothing changed" score distribution for ``window_rows``-row windows.

    Each of ``config.calibration_chunks`` rounds splits the reference at random into a
    pseudo-window of ``window_rows`` rows and a pseudo-reference of the rest, and scores them
    with :func:`column_distance`'s distance. The pseudo-reference is a little smaller than the
    real one, so the learned noise is a little larger than the check's: the thresholds err
    towards fewer alerts. They are right on average over reference samples; for one given
    reference, a column whose sample happens to sit off the population carries that offset
    into every window. Keep the reference several times larger than the window (the offset's
    share of the noise is about ``window_rows / reference rows``).

    Args:
        reference: The reference sample (contract features, optionally the prediction column).
        window_rows: Size of the windows the thresholds are for.
        config: Drift parameters; defaults to ``DriftConfig()``.
        seed: Seed of the random splits.

    Returns:
        The per-column thresholds.

    Raises:
        DriftInputError: The reference lacks a checked feature or a column is unusable.
        CalibrationError: ``window_rows`` is below ``min_window_rows`` or above half the
            reference (the pseudo-reference must be at least as large as the window).
    """
    config = config or DriftConfig()
    columns = calibrated_columns(reference, config)
    require_columns(reference, columns, "reference")
    rows = len(reference)
    if window_rows < config.min_window_rows:
        raise CalibrationError(
            f"window_rows must be at least min_window_rows={config.min_window_rows}, "
            f"got {window_rows}"
        )
    if 2 * window_rows > rows:
        raise CalibrationError(
            f"window_rows={window_rows} needs a reference of at least {2 * window_rows} rows "
            f"(twice the window), the reference has {rows}"
        )
    prepared = [_prepare(reference, column, config) for column in columns]
    alpha = _column_alpha(config.sigmas, len(columns))
    scores, null_gaps = _no_change_scores(prepared, rows, window_rows, config, seed)
    entries = [
        _column_calibration(col, scores[:, j], null_gaps[:, j], alpha, config)
        for j, col in enumerate(prepared)
    ]
    n_features = len(config.checked_features())
    return DriftCalibration(
        window_rows=window_rows,
        chunks=config.calibration_chunks,
        sigmas=config.sigmas,
        column_alpha=alpha,
        tail_model=config.tail_model,
        seed=seed,
        reference_rows=rows,
        reference_digest=reference_digest(reference, columns),
        features=tuple(entries[:n_features]),
        prediction=entries[n_features] if len(entries) > n_features else None,
    )


def _no_change_scores(
    prepared: Sequence[_PreparedColumn],
    rows: int,
    window_rows: int,
    config: DriftConfig,
    seed: int,
) -> tuple[FloatArray, FloatArray]:
    """Distances and null-share gaps of ``calibration_chunks`` random "nothing changed" splits.

    Returns:
        ``(scores, null_gaps)``, shape ``(chunks, columns)``; a score is NaN when one side of
        the split had no usable value of the column.
    """
    rng = np.random.default_rng(seed)
    scores = np.full((config.calibration_chunks, len(prepared)), np.nan)
    null_gaps = np.zeros((config.calibration_chunks, len(prepared)))
    in_window = np.zeros(rows, dtype=bool)
    for round_ in range(config.calibration_chunks):
        window = rng.choice(rows, size=window_rows, replace=False)
        in_window[:] = False
        in_window[window] = True
        for j, col in enumerate(prepared):
            null_gaps[round_, j] = abs(
                _null_share(col.null[in_window]) - _null_share(col.null[~in_window])
            )
            score = col.score(in_window)
            if score is not None:
                scores[round_, j] = score
    return scores, null_gaps


def _column_calibration(
    col: _PreparedColumn,
    scores: FloatArray,
    null_gaps: FloatArray,
    alpha: float,
    config: DriftConfig,
) -> ColumnCalibration:
    valid = scores[~np.isnan(scores)]
    if len(valid) < 2:
        raise CalibrationError(
            f"reference column {col.name!r} has too few non-null values to calibrate "
            f"(scored {len(valid)} of {len(scores)} windows)"
        )
    mean, std = float(valid.mean()), float(valid.std(ddof=1))
    null_mean, null_std = float(null_gaps.mean()), float(null_gaps.std(ddof=1))
    return ColumnCalibration(
        column=col.name,
        kind=col.kind,
        method=col.method,
        mean=mean,
        std=std,
        threshold=max(_upper_bound(mean, std, alpha, config.tail_model), config.threshold_floor),
        reference_null_share=_null_share(col.null),
        null_mean=null_mean,
        null_std=null_std,
        null_threshold=max(
            _upper_bound(null_mean, null_std, alpha, config.tail_model), config.null_share_floor
        ),
    )
