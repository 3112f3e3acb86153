"""The statistics inside Kayenta's Mann-Whitney classifier, batched over rows.

Kayenta's Mann-Whitney interval is found in its source with Brent's root finder on a step
function; the root it converges to is a pairwise difference ``x_i - y_j``, which
:func:`mann_whitney_shift_interval` finds exactly by counting, and the Hodges-Lehmann estimate is
the median of the pairwise differences (the zero of the same statistic). :func:`clean` is its
outlier removal, :func:`nanmean` the mean ratio's ingredient.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import stats

__all__ = ["clean", "mann_whitney_shift_interval", "nanmean"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _apache_percentile(sorted_values: FloatArray, count: IntArray, p: float) -> FloatArray:
    """Apache Commons Math ``StatUtils.percentile`` (legacy estimator) on NaN-padded sorted rows."""
    n = count.astype(np.float64)
    pos = p * (n + 1.0) / 100.0
    floor = np.floor(pos)
    d = pos - floor
    lo_idx = np.clip(floor.astype(np.int64) - 1, 0, None)
    hi_idx = np.minimum(floor.astype(np.int64), np.maximum(count - 1, 0))
    lo_idx = np.minimum(lo_idx, np.maximum(count - 1, 0))
    lo = np.take_along_axis(sorted_values, lo_idx[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(sorted_values, hi_idx[..., None], axis=-1)[..., 0]
    first = sorted_values[..., 0]
    last = np.take_along_axis(sorted_values, np.maximum(count - 1, 0)[..., None], axis=-1)[..., 0]
    value = lo + d * (hi - lo)
    value = np.where(pos < 1.0, first, value)
    return np.where(pos >= n, last, value)


def clean(values: FloatArray) -> FloatArray:
    """NaN removal and ``IQRDetector(factor=3.0, reduceSensitivity=true)`` outlier removal.

    Removed points become NaN (rows keep their length). With fewer than 99 points the 1st and
    99th percentiles are the minimum and maximum, so nothing is ever removed.
    """
    ordered = np.sort(values, axis=-1)
    count = np.isfinite(values).sum(axis=-1)
    p25 = _apache_percentile(ordered, count, 25.0)
    p75 = _apache_percentile(ordered, count, 75.0)
    p01 = _apache_percentile(ordered, count, 1.0)
    p99 = _apache_percentile(ordered, count, 99.0)
    iqr = p75 - p25
    lower = np.minimum(p01, p25 - 3.0 * iqr)
    upper = np.maximum(p99, p75 + 3.0 * iqr)
    keep = (values >= lower[..., None]) & (values <= upper[..., None])
    return np.where(keep, values, np.nan)


def _tie_term(values: FloatArray) -> FloatArray:
    """Sum of ``t**3 - t`` over groups of tied values in each row (NaNs ignored)."""
    equal = values[..., :, None] == values[..., None, :]  # NaN never equals anything
    t = equal.sum(axis=-1).astype(np.float64)
    valid = np.isfinite(values)
    return np.asarray(np.where(valid, t * t - 1.0, 0.0).sum(axis=-1), dtype=np.float64)


def mann_whitney_shift_interval(
    experiment: npt.ArrayLike, control: npt.ArrayLike, *, confidence: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Kayenta's Mann-Whitney confidence interval and estimate of ``experiment - control``.

    The asymptotic interval of R's ``wilcox.test(conf.int = TRUE, correct = TRUE)`` as Kayenta
    ports it: the interval's ends are where the tie-corrected, continuity-corrected standardised
    rank-sum statistic of ``experiment - mu`` against ``control`` crosses ``+-z``. Between
    consecutive pairwise differences the statistic is constant, so each end is a pairwise
    difference, found by counting. Rows are independent problems; NaN marks a missing point.

    Args:
        experiment: Canary values, shape ``(batch, n)`` (NaN-padded).
        control: Baseline values, shape ``(batch, m)`` (NaN-padded).
        confidence: Two-sided confidence level.

    Returns:
        ``(lower, upper, estimate)`` per row; NaN where a sample is empty or all points tie.
    """
    x = np.atleast_2d(np.asarray(experiment, dtype=np.float64))
    y = np.atleast_2d(np.asarray(control, dtype=np.float64))
    nx = np.isfinite(x).sum(axis=-1).astype(np.float64)
    ny = np.isfinite(y).sum(axis=-1).astype(np.float64)
    diffs = (x[:, :, None] - y[:, None, :]).reshape(x.shape[0], -1)
    diffs = np.sort(diffs, axis=-1)  # NaNs last
    m = nx * ny
    big_n = nx + ny
    ties = _tie_term(x) + _tie_term(y)
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = (nx * ny / 12.0) * ((big_n + 1.0) - ties / (big_n * (big_n - 1.0)))
        sigma = np.sqrt(variance)
    z = stats.norm.isf((1.0 - confidence) / 2.0)

    def root(c: FloatArray) -> FloatArray:
        # Smallest j (pairs at or below mu) where (dz - 0.5 sign dz) <= c, dz = m/2 - j.
        half = m / 2.0
        j1 = np.maximum(0.0, np.ceil(half - 0.5 - c - 1e-9))
        cand1 = np.where(j1 < half, j1, np.inf)
        even = np.mod(m, 2.0) == 0
        cand2 = np.where(even & (c >= 0), half, np.inf)
        j3 = np.maximum(np.ceil(half + 0.5 - c - 1e-9), np.floor(half) + 1.0)
        cand3 = np.where(j3 <= m, j3, np.inf)
        j = np.minimum(np.minimum(cand1, cand2), cand3)
        j = np.where(np.isfinite(j), j, m)  # never crosses: muMax
        index = np.clip(np.maximum(j, 1.0) - 1.0, 0, np.maximum(m - 1.0, 0)).astype(np.int64)
        return np.take_along_axis(diffs, index[:, None], axis=-1)[:, 0]

    ok = (nx > 0) & (ny > 0) & (sigma > 0)
    lower = np.where(ok, root(z * sigma), np.nan)
    upper = np.where(ok, root(-z * sigma), np.nan)
    # Hodges-Lehmann: the median of the m valid (sorted, NaN-last) pairwise differences.
    m_int = np.maximum(m, 1.0).astype(np.int64)
    below = np.take_along_axis(diffs, ((m_int - 1) // 2)[:, None], axis=-1)[:, 0]
    above = np.take_along_axis(diffs, (m_int // 2)[:, None], axis=-1)[:, 0]
    estimate = np.where(ok, (below + above) / 2.0, np.nan)
    return lower, upper, estimate


def nanmean(values: FloatArray) -> FloatArray:
    """The mean of each row's finite values (NaN for a row with none)."""
    count = np.isfinite(values).sum(axis=-1)
    total = np.where(np.isfinite(values), values, 0.0).sum(axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)
