"""Drift distances, ported from Evidently 0.7's stattests so calibration and check share them.

``wasserstein`` (normed by the reference's standard deviation), ``jensenshannon`` and ``psi``:
the same normalisation, binning and treatment of nulls and infinities as Evidently's, computed
with numpy/scipy because calibration scores a hundred pseudo-windows per column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.spatial import distance as scipy_distance

from monitoring.drift.config import ColumnKind, DriftError, DriftInputError, column_kind

__all__ = [
    "bin_counts",
    "binned_distance",
    "column_distance",
    "column_values",
    "distance",
    "wasserstein_sorted",
]

FloatArray = npt.NDArray[np.float64]


# Evidently's binned distances switch from value counts to a histogram above this many distinct
# reference values (``get_binned_data``); the port keeps the same switch.
_HISTOGRAM_MIN_DISTINCT = 20
# Evidently's floor on the Wasserstein norm, so a constant reference column does not divide by 0.
_MIN_NORM = 0.001


def wasserstein_sorted(
    values: FloatArray, is_current: npt.NDArray[np.bool_], reference_std: float
) -> float:
    """Normed Wasserstein-1 distance between the two groups of one sorted array.

    ``W1 = integral |F_cur - F_ref| dx``, summed between consecutive sorted values (within a
    run of ties the step is zero, so only the cumulative count at its end matters). It is the
    integral ``scipy.stats.wasserstein_distance`` computes, divided by the reference's standard
    deviation as Evidently's ``wasserstein`` stattest does; the check sorts the two samples
    together, the calibration sorts the reference once and reuses it for every split.
    """
    current_seen = np.cumsum(is_current)[:-1]
    n_current = int(current_seen[-1] + is_current[-1]) if len(is_current) else 0
    n_reference = len(is_current) - n_current
    reference_seen = np.arange(1, len(is_current)) - current_seen
    gaps = np.abs(current_seen / n_current - reference_seen / n_reference) * np.diff(values)
    return float(np.sum(gaps) / max(reference_std, _MIN_NORM))


def binned_distance(reference_counts: FloatArray, current_counts: FloatArray, method: str) -> float:
    """Jensen-Shannon distance or PSI between two vectors of counts over the same bins.

    Bins empty on both sides are dropped (they change neither distance). PSI fills the bins
    empty on one side as Evidently's ``get_binned_data`` does: a ten-thousandth, or a millionth
    of the smallest share when that is smaller still.
    """
    keep = (reference_counts + current_counts) > 0
    ref = reference_counts[keep] / reference_counts.sum()
    cur = current_counts[keep] / current_counts.sum()
    if method == "jensenshannon":
        return float(scipy_distance.jensenshannon(ref, cur))
    ref, cur = _fill_zeroes(ref), _fill_zeroes(cur)
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def _fill_zeroes(percents: FloatArray) -> FloatArray:
    smallest = float(percents[percents != 0].min())
    return np.where(percents == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001, percents)


def bin_counts(
    reference: npt.NDArray[Any], current: npt.NDArray[Any], kind: ColumnKind
) -> tuple[FloatArray, FloatArray]:
    """Port of Evidently's ``get_binned_data``: counts per bin, as floats.

    A numeric column with more than 20 distinct reference values gets Sturges histogram bins
    over both samples together; anything else is counted per distinct value.
    """
    if kind == "numeric" and len(np.unique(reference)) > _HISTOGRAM_MIN_DISTINCT:
        edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
        return (
            np.histogram(reference, edges)[0].astype(float),
            np.histogram(current, edges)[0].astype(float),
        )
    codes, keys = pd.factorize(np.concatenate([reference, current]))
    size = len(keys)
    return (
        np.bincount(codes[: len(reference)], minlength=size).astype(float),
        np.bincount(codes[len(reference) :], minlength=size).astype(float),
    )


def distance(
    reference: npt.NDArray[Any], current: npt.NDArray[Any], kind: ColumnKind, method: str
) -> float:
    """Score two non-empty arrays of non-null, finite values."""
    if method == "wasserstein":
        values = np.concatenate([reference, current]).astype(float)
        is_current = np.concatenate(
            [np.zeros(len(reference), dtype=bool), np.ones(len(current), dtype=bool)]
        )
        order = np.argsort(values, kind="stable")
        return wasserstein_sorted(values[order], is_current[order], float(np.std(reference)))
    if method in ("jensenshannon", "psi"):
        return binned_distance(*bin_counts(reference, current, kind), method)
    raise DriftError(f"method {method!r} is not supported; use wasserstein, jensenshannon or psi")


def column_values(series: pd.Series, kind: ColumnKind, where: str) -> tuple[npt.NDArray[Any], int]:
    """Return the non-null values of a column and the number of nulls.

    Raises:
        DriftInputError: A numeric column holds something that is not a number.
    """
    if kind == "numeric":
        try:
            values = pd.to_numeric(series, errors="raise").to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise DriftInputError(
                f"{where} column {series.name!r} must be numeric ({exc})"
            ) from None
        nulls = int(np.isnan(values).sum())
        # Evidently drops NaN and +-inf before scoring; only NaN counts as a null.
        return values[np.isfinite(values)], nulls
    mask = series.isna().to_numpy()
    # Strings compare and sort the same way on both sides, whatever the frames' dtypes.
    return series[~mask].astype(str).to_numpy(dtype=object), int(mask.sum())


def column_distance(
    reference: pd.Series, current: pd.Series, method: str, kind: ColumnKind | None = None
) -> float | None:
    """Return the drift distance between two columns, exactly as the checks compute it.

    Nulls and infinities are dropped first, as Evidently does; the null share is judged
    separately by the checks.

    Args:
        reference: The reference column.
        current: The window's column.
        method: ``wasserstein`` (numeric only), ``jensenshannon`` or ``psi``.
        kind: ``numeric`` or ``categorical``; by default from the feature contract (a column
            outside the contract, such as the prediction, is numeric).

    Returns:
        The distance, or ``None`` when either side has no non-null value.

    Raises:
        DriftInputError: A numeric column holds non-numbers.
        DriftError: ``method`` is unknown or does not apply to ``kind``.
    """
    kind = kind or column_kind(str(reference.name))
    if kind == "categorical" and method == "wasserstein":
        raise DriftError("method 'wasserstein' applies to numeric columns only")
    ref, _ = column_values(reference, kind, "reference")
    cur, _ = column_values(current, kind, "window")
    if len(ref) == 0 or len(cur) == 0:
        return None
    return distance(ref, cur, kind, method)
