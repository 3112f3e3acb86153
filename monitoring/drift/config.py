"""The drift checks' parameters, their vocabulary and their errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features import FEATURE_NAMES, CategoricalFeature, feature

__all__ = [
    "CalibrationError",
    "CalibrationMismatchError",
    "ColumnKind",
    "DriftAction",
    "DriftConfig",
    "DriftError",
    "DriftInputError",
    "DriftStatus",
    "Severity",
    "TailModel",
    "column_kind",
    "require_columns",
]

ColumnKind = Literal["numeric", "categorical"]
NumericMethod = Literal["wasserstein", "jensenshannon", "psi"]
CategoricalMethod = Literal["jensenshannon", "psi"]
DriftStatus = Literal["ok", "drift", "insufficient-data"]
DriftAction = Literal["alert", "retrain", "inform-judge"]
"""What a drift result may ask for. There is deliberately no ``rollback``: see :func:`recommend`."""
Severity = Literal["none", "warning", "critical"]
TailModel = Literal["gamma", "normal"]


class DriftError(ValueError):
    """A drift check cannot run as asked; the message names the input and the rule."""


class DriftInputError(DriftError):
    """A reference or window frame is unusable (a missing column, a wrong type, no rows)."""


class CalibrationError(DriftError):
    """The reference cannot support a calibration of the requested window size."""


class CalibrationMismatchError(DriftError):
    """A calibration is used with another reference, other methods or a smaller window."""


class DriftConfig(BaseModel):
    """Parameters of the drift checks.

    Attributes:
        features: Contract features to check; ``None`` means every feature of the contract.
        min_window_rows: Windows with fewer rows get status ``insufficient-data``.
        calibration_chunks: "Nothing changed" windows drawn from the reference per calibration.
            Around 100 keeps the standard error of the estimated std near 7%; with 30 it is 13%,
            enough to move a threshold by half a sigma.
        sigmas: Family-wise strictness: a window with no change should be flagged about as
            often as a normal variable exceeds ``sigmas`` standard deviations (one-sided;
            0.13% for 3), split evenly over the checked columns (Bonferroni).
        tail_model: How a column's no-change scores are extrapolated to that tail: ``gamma``
            (default; a Gamma with the calibration's mean and std, since distances are
            non-negative and right-skewed) or ``normal`` (``mean + z * std``, the textbook
            "3 sigma" rule, which under-states the tail of a skewed score).
        threshold_floor: Smallest distance threshold: below it a change is never called drift.
        null_share_floor: Smallest threshold on ``|null share - reference null share|``.
        share_threshold: Share of features that must drift for ``dataset_drifted`` (broad drift).
        numeric_method: Distance for numeric features.
        categorical_method: Distance for categorical features.
        prediction_method: Distance for the prediction (probability) column.
        reference_prediction_column: The model's probability in the reference sample
            (``pipeline/tracking.py::PREDICTION_COLUMN``); no prediction check when absent.
        window_prediction_column: The model's probability in a window of the inference log
            (``interfaces/inference_log.py`` calls it ``probability``; its ``prediction`` is 0/1).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    features: tuple[str, ...] | None = None
    min_window_rows: int = Field(default=200, ge=20)
    calibration_chunks: int = Field(default=100, ge=10, le=10_000)
    sigmas: float = Field(default=3.0, gt=0.0, le=10.0)
    tail_model: TailModel = "gamma"
    threshold_floor: float = Field(default=0.01, ge=0.0)
    null_share_floor: float = Field(default=0.01, ge=0.0, le=1.0)
    share_threshold: float = Field(default=0.3, gt=0.0, le=1.0)
    numeric_method: NumericMethod = "wasserstein"
    categorical_method: CategoricalMethod = "jensenshannon"
    prediction_method: NumericMethod = "wasserstein"
    reference_prediction_column: str = "prediction"
    window_prediction_column: str = "probability"

    @model_validator(mode="after")
    def _known_features(self) -> DriftConfig:
        if self.features is not None:
            if not self.features:
                raise ValueError("features: give at least one feature, or None for all")
            for name in self.features:
                if name not in FEATURE_NAMES:
                    raise ValueError(
                        f"features: {name!r} is not a contract feature; "
                        f"valid: {', '.join(FEATURE_NAMES)}"
                    )
        return self

    def checked_features(self) -> tuple[str, ...]:
        """Return the features the checks cover, in contract order."""
        if self.features is None:
            return FEATURE_NAMES
        return tuple(name for name in FEATURE_NAMES if name in self.features)

    def method_for(self, column: str) -> str:
        """Return the distance used for ``column`` (a feature or the prediction column)."""
        if column == self.reference_prediction_column:
            return self.prediction_method
        if column_kind(column) == "categorical":
            return self.categorical_method
        return self.numeric_method


def column_kind(column: str) -> ColumnKind:
    """Return the kind of a contract feature; anything else (the prediction) is numeric."""
    if column in FEATURE_NAMES:
        return "categorical" if isinstance(feature(column), CategoricalFeature) else "numeric"
    return "numeric"


def require_columns(frame: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    """Refuse ``frame`` when it lacks one of ``columns``, naming them and ``where``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DriftInputError(f"{where} lacks column(s) {', '.join(map(repr, missing))}")
