"""The judge's input from cumulative counters: requests, errors and the latency histogram.

A metrics source (Prometheus, or a scrape of the service's ``/metrics``;
``monitoring/sources/``) counts each variant's requests, server-side errors and latency buckets
since the canary started (:class:`VariantCounts`). :func:`build_observation` turns those counts,
with the logged scores and labels, into a :class:`~monitoring.judge.observation.CanaryObservation`:
one stratum of independent requests, the fallback when the inference log cannot give the
judge's time-matched, cluster-robust evidence (``monitoring/judge/log_evidence.py``). Client
errors (``invalid_input``, ``payload_too_large``) are not counted: a bad caller is not the
model's fault.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from interfaces.metric_names import ERROR_CLASSES, LATENCY_BUCKETS, PROBABILITY_BUCKETS
from interfaces.routing import CANARY, CHAMPION, Variant
from monitoring.judge.evidence import TAIL_QUANTILE
from monitoring.judge.observation import (
    CanaryObservation,
    LatencySummary,
    LossSummary,
    ScoreHistogram,
    VariantWindow,
)

__all__ = [
    "LATENCY_BOUNDS",
    "SCORE_EDGES",
    "SERVER_ERROR_CLASSES",
    "VariantCounts",
    "build_observation",
    "counts_from_buckets",
    "tail_threshold",
]

SERVER_ERROR_CLASSES: Final[tuple[str, ...]] = tuple(
    c for c in ERROR_CLASSES if c not in ("invalid_input", "payload_too_large")
)
"""Error classes that count against a model: the service failed, not the caller."""

SCORE_EDGES: Final[tuple[float, ...]] = (0.0, *PROBABILITY_BUCKETS)
"""Bins of the judge's score histogram: the serving probability histogram's buckets."""

LATENCY_BOUNDS: Final[tuple[float, ...]] = (*(float(b) for b in LATENCY_BUCKETS), math.inf)
"""The serving latency histogram's bucket bounds in seconds, ending in inf."""


@dataclass(frozen=True)
class VariantCounts:
    """What the serving metrics say about one model version over the canary's lifetime.

    Attributes:
        requests: Requests that reached the version: answered, or failed on the server side.
        errors: Of those, the ones that failed on the server side.
        latency_upper_bounds: The latency histogram's bucket bounds in seconds, ending in inf.
        latency_cumulative: Cumulative answered requests per bound (Prometheus ``le`` buckets).
    """

    requests: int
    errors: int
    latency_upper_bounds: tuple[float, ...] = LATENCY_BOUNDS
    latency_cumulative: tuple[float, ...] = (0.0,) * len(LATENCY_BOUNDS)

    def latency(self) -> LatencySummary:
        """The judge's latency moments, from the histogram."""
        return LatencySummary.from_histogram(self.latency_upper_bounds, self.latency_cumulative)

    def to_dict(self) -> dict[str, int]:
        """Return the counts for reports and event details."""
        return {"requests": self.requests, "errors": self.errors}


def counts_from_buckets(errors: float, cumulative: Sequence[float]) -> VariantCounts:
    """Counts from an error total and cumulative latency buckets (which may be fractional).

    Args:
        errors: Server-side errors counted (an ``increase()`` may be fractional).
        cumulative: Answered requests per bound of :data:`LATENCY_BOUNDS`, cumulative.
    """
    buckets = [max(0.0, c) for c in cumulative]
    # Cumulative buckets never decrease; increase() estimated per bucket can wobble, so smooth.
    buckets = list(np.maximum.accumulate(np.asarray(buckets, dtype=np.float64)))
    answered = round(buckets[-1])
    failed = round(max(0.0, errors))
    return VariantCounts(
        requests=answered + failed,
        errors=failed,
        latency_upper_bounds=LATENCY_BOUNDS,
        latency_cumulative=tuple(float(b) for b in buckets),
    )


def build_observation(
    window: int,
    counts: Mapping[Variant, VariantCounts],
    scores: Mapping[Variant, npt.NDArray[np.float64]],
    labelled: Mapping[Variant, tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]],
) -> CanaryObservation:
    """The judge's input after ``window`` windows, from the sources' answers.

    Args:
        window: Windows elapsed since the canary started (at least 1).
        counts: Requests, errors and latency per variant (from a metrics source).
        scores: Logged probabilities per variant (binned on :data:`SCORE_EDGES`).
        labelled: ``(probabilities, labels)`` per variant; log loss on them is the quality.
    """
    tail = _tail_bucket(counts[CHAMPION])

    def variant(name: Variant) -> VariantWindow:
        c = counts[name]
        probabilities, labels = labelled[name]
        latency = c.latency()
        exceed = None
        if tail is not None:
            below = c.latency_cumulative[tail]
            exceed = min(latency.count, max(0, round(c.latency_cumulative[-1] - below)))
        return VariantWindow(
            requests=c.requests,
            errors=c.errors,
            latency=latency,
            scores=ScoreHistogram.from_scores(scores[name], SCORE_EDGES),
            quality=LossSummary.from_labelled(probabilities, labels),
            latency_exceedances=exceed,
        )

    return CanaryObservation(
        window=window,
        champion=variant(CHAMPION),
        canary=variant(CANARY),
        tail_threshold_s=None if tail is None else counts[CHAMPION].latency_upper_bounds[tail],
    )


def tail_threshold(champion: VariantCounts) -> float | None:
    """The histogram bound the tail signal counts exceedances of (see :func:`_tail_bucket`)."""
    tail = _tail_bucket(champion)
    return None if tail is None else champion.latency_upper_bounds[tail]


def _tail_bucket(champion: VariantCounts, quantile: float = TAIL_QUANTILE) -> int | None:
    """The first latency bucket bound at or above the champion's ``quantile``.

    The tail signal counts, for both variants, the requests slower than this bound. It is
    chosen from the champion alone, so an unchanged canary exceeds it as often as the champion
    does; a histogram can only count at its bounds, so the share above it is at most
    ``1 - quantile`` (less where the buckets are coarse).
    """
    cumulative = champion.latency_cumulative
    total = cumulative[-1]
    if total <= 0:
        return None
    for index, bound in enumerate(champion.latency_upper_bounds):
        if math.isfinite(bound) and cumulative[index] >= quantile * total:
            return index
    return None
