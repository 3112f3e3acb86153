"""PromQL's ``histogram_quantile``, batched: what a dashboard (and a peer judge) reads as p95.

The peers query latency quantiles the way their documentation's examples do, through Prometheus;
the simulation hands them bucket counts, and this turns the counts into the value Prometheus
would report — bucket interpolation included, which is why it is not the true quantile.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["histogram_quantile"]

FloatArray = npt.NDArray[np.float64]


def histogram_quantile(
    q: float, upper_bounds: Sequence[float] | FloatArray, bucket_counts: npt.ArrayLike
) -> FloatArray:
    """PromQL's ``histogram_quantile`` on per-bucket (non-cumulative) counts, batched.

    Follows Prometheus' ``bucketQuantile``: find the bucket where rank ``q * total`` falls and
    interpolate linearly inside it, the first bucket starting at 0; a rank in the ``+Inf`` bucket
    returns the largest finite bound; an empty histogram returns NaN.

    Args:
        q: Quantile in [0, 1].
        upper_bounds: Finite bucket upper bounds ``le``, increasing (the ``+Inf`` bucket implied).
        bucket_counts: Counts per bucket, shape ``(..., len(upper_bounds) + 1)``, the last
            being the ``+Inf`` bucket.

    Returns:
        The quantile per histogram.
    """
    bounds = np.asarray(upper_bounds, dtype=np.float64)
    counts = np.asarray(bucket_counts, dtype=np.float64)
    if counts.shape[-1] != bounds.size + 1:
        raise ValueError(
            f"bucket_counts needs {bounds.size + 1} buckets (the last is +Inf), got "
            f"{counts.shape[-1]}"
        )
    cumulative = np.cumsum(counts, axis=-1)
    total = cumulative[..., -1]
    rank = q * total
    b = (cumulative < rank[..., None]).sum(axis=-1)
    b_finite = np.minimum(b, bounds.size - 1)
    upper = bounds[b_finite]
    lower = np.where(b_finite > 0, bounds[np.maximum(b_finite - 1, 0)], 0.0)
    below = np.where(
        b_finite > 0,
        np.take_along_axis(cumulative, np.maximum(b_finite - 1, 0)[..., None], axis=-1)[..., 0],
        0.0,
    )
    in_bucket = np.take_along_axis(counts, b_finite[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        inside = lower + (upper - lower) * (rank - below) / in_bucket
    value = np.where(b >= bounds.size, bounds[-1], inside)
    return np.where(total > 0, value, np.nan)
