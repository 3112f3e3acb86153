"""The random draws and distribution arithmetic the simulated world is made of.

Counts are drawn in bulk (whole windows of requests per client at once), so a simulation of
thousands of canaries takes minutes, not hours: a multinomial by conditional binomials, bucket
probabilities of log-normal latencies and of binormal scores, and the chi-square draw behind a
sum of squared normals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import special, stats

__all__ = [
    "bucket_probs",
    "chi2_sum",
    "multinomial",
    "score_bucket_probs",
    "separation",
    "tail_threshold",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def multinomial(rng: np.random.Generator, n: IntArray, probs: FloatArray) -> IntArray:
    """Multinomial counts with per-element probabilities, by conditional binomials."""
    k = probs.shape[-1]
    probs = np.broadcast_to(probs, (*n.shape, k))
    out = np.zeros((*n.shape, k), dtype=np.int64)
    live = [j for j in range(k) if np.any(probs[..., j] >= 1e-9)]
    remaining = n.astype(np.int64).copy()
    mass_left = np.ones(n.shape)
    for j in live[:-1]:
        p = np.clip(probs[..., j] / np.maximum(mass_left, 1e-300), 0.0, 1.0)
        counts = rng.binomial(remaining, p)
        out[..., j] = counts
        remaining -= counts
        mass_left = mass_left - probs[..., j]
    out[..., live[-1]] = remaining
    return out


def bucket_probs(bounds: Sequence[float], log_median: FloatArray, sd: float) -> FloatArray:
    """P(latency in each bucket) for log-normal latencies; the last bucket is ``+Inf``."""
    edges = np.log(np.asarray(bounds, dtype=np.float64))
    cdf = special.ndtr((edges - log_median[..., None]) / sd)
    pad = np.zeros((*cdf.shape[:-1], 1))
    return np.diff(np.concatenate([pad, cdf, pad + 1.0], axis=-1), axis=-1)


def separation(auc: float) -> float:
    """Binormal mean separation ``mu`` with ``Phi(mu / sqrt 2) = auc``."""
    return float(math.sqrt(2.0) * stats.norm.ppf(auc))


def score_bucket_probs(
    upper_bounds: Sequence[float], mu: float, default_rate: float, shift: float
) -> FloatArray:
    """P(served score in each bucket), buckets starting at 0.

    The model is calibrated at ``default_rate``; the inputs' positive share has moved by
    ``shift`` on the log-odds scale.
    """
    bounds = np.asarray(upper_bounds, dtype=np.float64)
    c = special.logit(default_rate)
    positives = special.expit(c + shift)
    with np.errstate(divide="ignore"):
        latent = (special.logit(np.clip(bounds, 0.0, 1.0)) - c + mu * mu / 2.0) / mu
    cdf = (1.0 - positives) * special.ndtr(latent) + positives * special.ndtr(latent - mu)
    return np.diff(np.concatenate([[0.0], cdf]))


def tail_threshold(
    shares: FloatArray, log_medians: FloatArray, sd: float, quantile: float
) -> FloatArray:
    """The ``quantile`` of the champion's latency over all its clients, per run (bisection)."""
    low = log_medians.min(axis=1) - 10.0 * sd
    high = log_medians.max(axis=1) + 10.0 * sd
    for _ in range(60):
        mid = (low + high) / 2.0
        cdf = (shares * special.ndtr((mid[:, None] - log_medians) / sd)).sum(axis=1)
        below = cdf < quantile
        low = np.where(below, mid, low)
        high = np.where(below, high, mid)
    return np.asarray(np.exp((low + high) / 2.0), dtype=np.float64)


def chi2_sum(rng: np.random.Generator, df: FloatArray) -> FloatArray:
    """A chi-square draw where ``df >= 1``, else 0."""
    return np.where(df >= 1, rng.chisquare(np.maximum(df, 1.0)), 0.0)
