"""The demo's samples: per-second readings of the service and the controller, and their rates.

A :class:`Sample` holds *cumulative* counters read from the inference service's own ``/metrics``
(rows scored, server errors and delayed labels per variant, the canary weight it serves) and the
controller's latest drift score. :func:`build_series` turns consecutive samples into rates over
a short rolling window for the timeline (:mod:`demo.timeline`); :func:`traffic_stats` gives the
live display its latest rates. All pure functions, tested without a server.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from prometheus_client.parser import text_string_to_metric_families

from interfaces.metric_names import (
    CANARY_WEIGHT_RATIO,
    ERRORS_TOTAL,
    FEATURE_DRIFT_SCORE,
    LABELED_PREDICTIONS_TOTAL,
    PREDICTIONS_TOTAL,
)
from interfaces.routing import CANARY, CHAMPION, VARIANTS
from monitoring import Controller
from monitoring.judge.counters import SERVER_ERROR_CLASSES

__all__ = [
    "Sample",
    "Series",
    "TrafficStats",
    "build_series",
    "champion_drift_score",
    "parse_service_metrics",
    "traffic_stats",
]

WRONG_OUTCOMES: Final = ("fp", "fn")


@dataclass(frozen=True)
class Sample:
    """Cumulative counters at one moment.

    Attributes:
        t: Seconds since the demo started.
        predictions: Rows scored per variant, all model versions summed.
        server_errors: Failed requests per variant that were the service's fault.
        labels: Delayed labels joined per variant.
        label_errors: Of those, the wrong predictions (false positives and negatives).
        canary_weight: The canary weight the service applies now.
        drift_score: The champion's largest feature drift score at the latest check, if any.
    """

    t: float
    predictions: Mapping[str, float] = field(default_factory=dict)
    server_errors: Mapping[str, float] = field(default_factory=dict)
    labels: Mapping[str, float] = field(default_factory=dict)
    label_errors: Mapping[str, float] = field(default_factory=dict)
    canary_weight: float = 0.0
    drift_score: float | None = None


def parse_service_metrics(text: str, t: float, drift_score: float | None = None) -> Sample:
    """Read one scrape of the service's ``/metrics`` into a :class:`Sample`.

    Args:
        text: Prometheus text exposition.
        t: Seconds since the demo started.
        drift_score: The controller's latest drift score, passed through.

    Raises:
        ValueError: If ``text`` is not Prometheus text.
    """
    predictions: dict[str, float] = {}
    errors: dict[str, float] = {}
    labels: dict[str, float] = {}
    wrong: dict[str, float] = {}
    weight = 0.0

    def add(into: dict[str, float], variant: str, value: float) -> None:
        into[variant] = into.get(variant, 0.0) + value

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            variant = sample.labels.get("variant", "")
            if sample.name == CANARY_WEIGHT_RATIO:
                weight = float(sample.value)
            elif variant not in VARIANTS:
                continue
            elif sample.name == PREDICTIONS_TOTAL:
                add(predictions, variant, sample.value)
            elif sample.name == ERRORS_TOTAL:
                if sample.labels.get("error_class") in SERVER_ERROR_CLASSES:
                    add(errors, variant, sample.value)
            elif sample.name == LABELED_PREDICTIONS_TOTAL:
                add(labels, variant, sample.value)
                if sample.labels.get("outcome") in WRONG_OUTCOMES:
                    add(wrong, variant, sample.value)
    return Sample(t, predictions, errors, labels, wrong, weight, drift_score)


@dataclass(frozen=True)
class Series:
    """Rates over a rolling window, one value per sample (``nan`` where undefined).

    Attributes:
        t: Seconds since the demo started.
        request_rate: Rows scored per second, per variant.
        server_error_rate: Server errors over requests, per variant.
        label_error_rate: Wrong predictions over delayed labels, per variant.
        canary_weight: The weight the service applied.
        drift_score: The champion's largest feature drift score.
    """

    t: tuple[float, ...]
    request_rate: Mapping[str, tuple[float, ...]]
    server_error_rate: Mapping[str, tuple[float, ...]]
    label_error_rate: Mapping[str, tuple[float, ...]]
    canary_weight: tuple[float, ...]
    drift_score: tuple[float, ...]


def _ratio(numerator: float, denominator: float, minimum: float) -> float:
    return numerator / denominator if denominator >= minimum and denominator > 0 else math.nan


def build_series(
    samples: Sequence[Sample], window_s: float = 5.0, min_labels: float = 20.0
) -> Series:
    """Rates over the last ``window_s`` seconds at each sample.

    Counters that drop (a restarted service) restart the window instead of going negative.

    Args:
        samples: Samples in time order.
        window_s: Length of the rolling window.
        min_labels: Fewer labels in a window leave its label error rate undefined (``nan``).

    Raises:
        ValueError: If ``window_s`` is not positive or the samples are out of order.
    """
    if window_s <= 0:
        raise ValueError(f"window_s must be > 0 seconds, got {window_s}")
    if any(b.t < a.t for a, b in itertools.pairwise(samples)):
        raise ValueError("samples must be in time order")
    rate: dict[str, list[float]] = {v: [] for v in VARIANTS}
    server: dict[str, list[float]] = {v: [] for v in VARIANTS}
    labelled: dict[str, list[float]] = {v: [] for v in VARIANTS}
    reset = base_index = 0
    for i, now in enumerate(samples):
        if i and _dropped(samples[i - 1], now):
            reset = i
        # The window's left edge: the newest sample at least window_s old (since any reset).
        base_index = max(base_index, reset)
        while base_index + 1 < i and samples[base_index + 1].t <= now.t - window_s:
            base_index += 1
        base = samples[base_index]
        span = now.t - base.t
        for v in VARIANTS:
            done = _delta(now.predictions, base.predictions, v)
            failed = _delta(now.server_errors, base.server_errors, v)
            rate[v].append(done / span if span > 0 else math.nan)
            server[v].append(_ratio(failed, done + failed, 1.0))
            wrong = _delta(now.label_errors, base.label_errors, v)
            labelled[v].append(_ratio(wrong, _delta(now.labels, base.labels, v), min_labels))
    return Series(
        t=tuple(s.t for s in samples),
        request_rate={v: tuple(x) for v, x in rate.items()},
        server_error_rate={v: tuple(x) for v, x in server.items()},
        label_error_rate={v: tuple(x) for v, x in labelled.items()},
        canary_weight=tuple(s.canary_weight for s in samples),
        drift_score=tuple(math.nan if s.drift_score is None else s.drift_score for s in samples),
    )


def _delta(now: Mapping[str, float], base: Mapping[str, float], variant: str) -> float:
    return max(0.0, now.get(variant, 0.0) - base.get(variant, 0.0))


def _dropped(before: Sample, after: Sample) -> bool:
    return any(after.predictions.get(v, 0.0) < before.predictions.get(v, 0.0) for v in VARIANTS)


@dataclass
class TrafficStats:
    """The latest rates the sampler saw (for the live display).

    Attributes:
        requests_per_s: Rows scored per second over the last few seconds.
        canary_share: Share of them the canary scored.
        labels_per_s: Delayed labels joined per second.
        server_errors: Server errors since the service started.
        total: Rows scored since the service started.
    """

    requests_per_s: float = 0.0
    canary_share: float = 0.0
    labels_per_s: float = 0.0
    server_errors: float = 0.0
    total: float = 0.0


def traffic_stats(recent: Sequence[Sample]) -> TrafficStats:
    """Rates over the samples of the last few seconds."""
    last = recent[-1]
    first = recent[0]
    span = last.t - first.t
    done = {
        v: last.predictions.get(v, 0.0) - first.predictions.get(v, 0.0) for v in (CHAMPION, CANARY)
    }
    labels = sum(last.labels.values()) - sum(first.labels.values())
    total_done = sum(done.values())
    return TrafficStats(
        requests_per_s=total_done / span if span > 0 else 0.0,
        canary_share=done[CANARY] / total_done if total_done > 0 else 0.0,
        labels_per_s=labels / span if span > 0 else 0.0,
        server_errors=sum(last.server_errors.values()),
        total=sum(last.predictions.values()),
    )


def champion_drift_score(controller: Controller | None) -> float | None:
    """The champion's largest feature drift score at its latest check, if it was checked."""
    last = None if controller is None else controller.last_report
    champion = None if last is None or last.deployment is None else last.deployment.get("champion")
    if controller is None or champion is None:
        return None
    scores = [
        sample.value
        for family in controller.metrics.registry.collect()
        if family.name == FEATURE_DRIFT_SCORE
        for sample in family.samples
        if sample.labels.get("variant") == CHAMPION
        and sample.labels.get("model_version") == str(champion)
    ]
    return max(scores) if scores else None
