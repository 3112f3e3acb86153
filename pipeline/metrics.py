"""Vectorised classification metrics on NumPy arrays (the tests pin them to scikit-learn's)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

_EPS = 1e-15


def _arrays(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_score, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.size} values but y_score has {p.size}")
    if y.size == 0:
        raise ValueError("metrics need at least one row")
    return y, p


def roc_auc(y_true: Any, y_score: Any) -> float:
    """Return the ROC AUC, computed from average ranks (Mann-Whitney U), ties counting half.

    Raises:
        ValueError: Only one class is present, so the AUC is undefined.
    """
    y, p = _arrays(y_true, y_score)
    positives = float(y.sum())
    negatives = float(y.size - positives)
    if positives == 0 or negatives == 0:
        raise ValueError("ROC AUC is undefined when only one class is present")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def log_loss(y_true: Any, y_score: Any) -> float:
    """Return the mean binary cross-entropy, probabilities clipped away from 0 and 1."""
    y, p = _arrays(y_true, y_score)
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def brier(y_true: Any, y_score: Any) -> float:
    """Return the Brier score: mean squared error of the predicted probability."""
    y, p = _arrays(y_true, y_score)
    return float(np.mean((p - y) ** 2))


def expected_calibration_error(y_true: Any, y_score: Any, bins: int = 10) -> float:
    """Return the expected calibration error over ``bins`` equal-width probability bins.

    The weighted mean, over non-empty bins, of ``|mean predicted - observed rate|``; the last
    bin includes 1.0.
    """
    y, p = _arrays(y_true, y_score)
    index = np.minimum((p * bins).astype(int), bins - 1)
    counts = np.bincount(index, minlength=bins)
    predicted = np.bincount(index, weights=p, minlength=bins)
    observed = np.bincount(index, weights=y, minlength=bins)
    filled = counts > 0
    gaps = np.abs(predicted[filled] - observed[filled])  # per-bin sums: |n*mean_p - n*rate|
    return float(gaps.sum() / y.size)


@dataclass(frozen=True)
class ClassificationMetrics:
    """Quality of probabilities on one set of rows.

    Attributes:
        rows: Rows scored.
        positive_rate: Observed default rate.
        mean_prediction: Mean predicted probability.
        auc: ROC AUC; ``None`` when a single class is present.
        log_loss: Mean cross-entropy.
        brier: Brier score.
        ece: Expected calibration error.
    """

    rows: int
    positive_rate: float
    mean_prediction: float
    auc: float | None
    log_loss: float
    brier: float
    ece: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form."""
        return asdict(self)


def classification_metrics(y_true: Any, y_score: Any, bins: int = 10) -> ClassificationMetrics:
    """Return every metric of :class:`ClassificationMetrics` for one set of rows."""
    y, p = _arrays(y_true, y_score)
    single_class = y.min() == y.max()
    return ClassificationMetrics(
        rows=int(y.size),
        positive_rate=float(y.mean()),
        mean_prediction=float(p.mean()),
        auc=None if single_class else roc_auc(y, p),
        log_loss=log_loss(y, p),
        brier=brier(y, p),
        ece=expected_calibration_error(y, p, bins),
    )


def slice_metrics(
    y_true: Any, y_score: Any, slices: Any, bins: int = 10
) -> dict[str, ClassificationMetrics]:
    """Return :func:`classification_metrics` per distinct value of ``slices``, sorted by key."""
    y, p = _arrays(y_true, y_score)
    keys = np.asarray(slices).astype(str).ravel()
    if keys.shape != y.shape:
        raise ValueError(f"slices has {keys.size} values but y_true has {y.size}")
    return {
        key: classification_metrics(y[keys == key], p[keys == key], bins)
        for key in sorted(set(keys.tolist()))
    }
