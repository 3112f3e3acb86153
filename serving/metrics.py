"""The serving metrics: one object owning the eight series and the supporting ones.

The names, labels and buckets are a contract with the rules, the dashboard and the judge; they
live in :mod:`interfaces.metric_names` (read its docstring for why these eight).

Multi-process mode (``uvicorn --workers N``): counters and histograms sum across workers by
construction; each gauge states its ``multiprocess_mode`` below on purpose (``livesum`` for
in-flight work, ``livemax`` for "is any live worker serving it", ``livemostrecent`` for state
every worker follows, ``mostrecent`` for values set by an outside job). "Live" holds only while
a dead worker's gauge files are removed: a worker that stops cleanly removes its own, and
``mlplat serve`` sweeps those of workers that were killed (:mod:`serving.multiprocess`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

from interfaces.drift_gauges import DriftGauges, feature_label
from interfaces.metric_names import (
    BATCH_BUCKETS,
    BATCH_SIZE_ROWS,
    BATCHER_QUEUE_ROWS,
    CANARY_WEIGHT_RATIO,
    ERRORS_TOTAL,
    FEEDBACK_TOTAL,
    INFERENCE_LOG_DROPPED_TOTAL,
    INFERENCE_LOG_QUEUE_DEPTH,
    INFERENCE_LOG_WRITE_FAILURES_TOTAL,
    INFERENCE_LOG_WRITTEN_TOTAL,
    INFLIGHT_REQUESTS,
    INPUT_ISSUES_TOTAL,
    INPUT_RECORDS_TOTAL,
    LABELED_PREDICTIONS_TOTAL,
    LATENCY_BUCKETS,
    MODEL_INFO,
    MODEL_LOAD_FAILING,
    MODEL_LOAD_FAILURES_TOTAL,
    MODEL_LOAD_REFUSALS_TOTAL,
    MODEL_LOAD_REFUSING,
    NO_VARIANT,
    PREDICTION_LATENCY_SECONDS,
    PREDICTION_PROBABILITY,
    PREDICTIONS_TOTAL,
    PROBABILITY_BUCKETS,
    REGISTRY_LAST_SUCCESS_TIMESTAMP,
    ErrorClass,
    FeedbackResult,
    InputIssue,
)

_VM: Final = ("variant", "model_version")
"""The labels of every per-model series."""


@dataclass(frozen=True)
class _VariantSeries:
    """The per-(variant, version) children of the hot-path metrics, bound once."""

    predictions: Counter
    latency: Histogram
    probability: Histogram


class ServingMetrics:
    """Every metric of one service instance, registered on one registry.

    Build one per app (:func:`create_metrics`): tests get a fresh registry and exact values,
    and the hot path binds label children once per (variant, version) instead of per request.

    Args:
        registry: Where the metrics are registered. In multi-process mode the values live in
            the workers' shared folder regardless, and :meth:`exposition_registry` reads them.
        enabled: When false, the per-request series (traffic, latency, errors, saturation, input
            issues, prediction distribution, batch sizes) are not updated; the control-plane
            series (model info, load failures, drift, feedback) always are. It exists to measure
            what instrumentation costs (``mlplat bench serve``).
        multiprocess_dir: The workers' shared folder in prometheus-client's multi-process mode
            (:func:`serving.multiprocess.multiprocess_dir`); ``None`` for a single process.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        enabled: bool = True,
        multiprocess_dir: Path | None = None,
    ) -> None:
        self.registry = registry
        self.enabled = enabled
        self.multiprocess_dir = multiprocess_dir
        self._register_traffic(registry)
        self._register_quality(registry)
        self._register_model_state(registry)
        self._register_queues(registry)
        self._accepted = self.input_records.labels("accepted")
        self._series: dict[tuple[str, str], _VariantSeries] = {}
        self._series_lock = threading.Lock()

    # --- registration, one group of series at a time ---------------------------------------
    def _register_traffic(self, r: CollectorRegistry) -> None:
        """The golden signals of the request path: traffic, latency, errors, saturation, inputs."""
        self.predictions = Counter(
            PREDICTIONS_TOTAL, "Rows scored, by variant and model version.", _VM, registry=r
        )
        self.latency = Histogram(
            PREDICTION_LATENCY_SECONDS,
            "Seconds from request arrival to scores from one variant (includes batching wait).",
            _VM,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            ERRORS_TOTAL,
            "Failed prediction requests by error class; variant is 'none' before routing.",
            ("error_class", *_VM),
            registry=r,
        )
        self.inflight = Gauge(
            INFLIGHT_REQUESTS,
            "Prediction requests being handled right now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.input_issues = Counter(
            INPUT_ISSUES_TOTAL,
            "Feature values rejected by the contract, or accepted as null, by feature and issue.",
            ("feature", "issue"),
            registry=r,
        )
        self.input_records = Counter(
            INPUT_RECORDS_TOTAL,
            "Feature records received, by outcome (accepted or rejected).",
            ("outcome",),
            registry=r,
        )
        self.probability = Histogram(
            PREDICTION_PROBABILITY,
            "Predicted probability of default, by variant and model version.",
            _VM,
            buckets=PROBABILITY_BUCKETS,
            registry=r,
        )

    def _register_quality(self, r: CollectorRegistry) -> None:
        """What the delayed labels and the drift checks say about the models."""
        self.drift = DriftGauges(r)
        self.labeled = Counter(
            LABELED_PREDICTIONS_TOTAL,
            "Predictions joined to their delayed true label, by confusion-matrix outcome.",
            (*_VM, "outcome"),
            registry=r,
        )
        self.feedback = Counter(
            FEEDBACK_TOTAL,
            "Delayed labels received, by join result.",
            ("result",),
            registry=r,
        )

    def _register_model_state(self, r: CollectorRegistry) -> None:
        """Which models serve, which the registry asks for in vain, and how fresh that is."""
        self.model_info = Gauge(
            MODEL_INFO,
            "1 while a worker serves this model version as this variant, else 0.",
            _VM,
            registry=r,
            multiprocess_mode="livemax",
        )
        self.canary_weight = Gauge(
            CANARY_WEIGHT_RATIO,
            "Share of routing keys sent to the canary (0 when no canary is being served).",
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.load_failures = Counter(
            MODEL_LOAD_FAILURES_TOTAL,
            "Model versions that failed to load or to pass the smoke prediction.",
            _VM,
            registry=r,
        )
        self.load_failing = Gauge(
            MODEL_LOAD_FAILING,
            "1 while the registry's version for this variant cannot be loaded (older one serves).",
            ("variant",),
            registry=r,
            multiprocess_mode="livemax",
        )
        self.load_refusals = Counter(
            MODEL_LOAD_REFUSALS_TOTAL,
            "Registry choices the service refused to serve as asked (a rejected or ungated "
            "version, a canary weight above the cap), by reason.",
            (*_VM, "reason"),
            registry=r,
        )
        self.load_refusing = Gauge(
            MODEL_LOAD_REFUSING,
            "1 while the registry's choice for this variant is refused for this reason.",
            ("variant", "reason"),
            registry=r,
            multiprocess_mode="livemax",
        )
        self.registry_last_success = Gauge(
            REGISTRY_LAST_SUCCESS_TIMESTAMP,
            "Unix time of the last successful registry poll (the oldest among live workers).",
            registry=r,
            multiprocess_mode="livemin",
        )

    def _register_queues(self, r: CollectorRegistry) -> None:
        """The micro-batcher's and the inference log's queues."""
        self.batch_size = Histogram(
            BATCH_SIZE_ROWS,
            "Rows per model call made by the micro-batcher.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batcher_queue = Gauge(
            BATCHER_QUEUE_ROWS,
            "Rows waiting for the model thread.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.log_queue = Gauge(
            INFERENCE_LOG_QUEUE_DEPTH,
            "Inference-log records waiting to be written.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.log_written = Counter(
            INFERENCE_LOG_WRITTEN_TOTAL, "Inference-log records written.", registry=r
        )
        self.log_dropped = Counter(
            INFERENCE_LOG_DROPPED_TOTAL,
            "Inference-log records dropped because the queue was full.",
            registry=r,
        )
        self.log_write_failures = Counter(
            INFERENCE_LOG_WRITE_FAILURES_TOTAL,
            "Inference-log batches that failed to write (their records are lost).",
            registry=r,
        )

    # --- hot path ------------------------------------------------------------------------
    def _bound(self, variant: str, model_version: str) -> _VariantSeries:
        series = self._series.get((variant, model_version))
        if series is None:
            with self._series_lock:
                series = _VariantSeries(
                    self.predictions.labels(variant, model_version),
                    self.latency.labels(variant, model_version),
                    self.probability.labels(variant, model_version),
                )
                self._series[(variant, model_version)] = series
        return series

    def request_started(self) -> None:
        """Count a prediction request in flight (saturation)."""
        if self.enabled:
            self.inflight.inc()

    def request_finished(self) -> None:
        """Count a prediction request out."""
        if self.enabled:
            self.inflight.dec()

    def observe_scores(
        self,
        variant: str,
        model_version: str,
        latency_seconds: float,
        probabilities: Sequence[float],
    ) -> None:
        """Record one variant's answer to one request: traffic, latency and score distribution."""
        if not self.enabled:
            return
        series = self._bound(variant, model_version)
        series.predictions.inc(len(probabilities))
        series.latency.observe(latency_seconds)
        for p in probabilities:
            series.probability.observe(p)

    def record_error(
        self,
        error_class: ErrorClass,
        variant: str = NO_VARIANT,
        model_version: str = NO_VARIANT,
    ) -> None:
        """Count one failed request."""
        if self.enabled:
            self.errors.labels(error_class, variant, model_version).inc()

    def record_input_issue(self, feature: str, issue: InputIssue, count: int = 1) -> None:
        """Count ``count`` values of ``feature`` that broke (or, for ``null``, used) a rule."""
        if self.enabled:
            self.input_issues.labels(feature_label(feature), issue).inc(count)

    def record_input_records(self, accepted: int, rejected: int = 0) -> None:
        """Count records received, the denominator of the input-issue rates."""
        if not self.enabled:
            return
        if accepted:
            self._accepted.inc(accepted)
        if rejected:
            self.input_records.labels("rejected").inc(rejected)

    def observe_batch(self, rows: int, queued_rows: int) -> None:
        """Record one model call of the micro-batcher and the rows still waiting after it."""
        if self.enabled:
            self.batch_size.observe(rows)
            self.batcher_queue.set(queued_rows)

    # --- control plane -------------------------------------------------------------------
    def set_serving(self, variant: str, model_version: str, serving: bool) -> None:
        """Mark a (variant, version) as served or retired, and pre-create its series at zero."""
        self.model_info.labels(variant, model_version).set(1 if serving else 0)
        if serving:
            # Series that exist from the first scrape give rate() a starting point.
            self._bound(variant, model_version)
            for outcome in ("tp", "fp", "tn", "fn"):
                self.labeled.labels(variant, model_version, outcome)

    def set_canary_weight(self, weight: float) -> None:
        """Publish the canary weight in effect."""
        self.canary_weight.set(weight)

    def record_load_failure(self, variant: str, model_version: str) -> None:
        """Count one failed load and raise the variant's failing flag."""
        self.load_failures.labels(variant, model_version).inc()
        self.load_failing.labels(variant).set(1)

    def clear_load_failure(self, variant: str) -> None:
        """Lower the variant's failing flag (the desired version now serves)."""
        self.load_failing.labels(variant).set(0)

    def record_refusal(self, variant: str, model_version: str, reason: str) -> None:
        """Count one new refusal of the registry's choice and raise its flag."""
        self.load_refusals.labels(variant, model_version, reason).inc()
        self.load_refusing.labels(variant, reason).set(1)

    def set_refusing(self, variant: str, reason: str, refusing: bool) -> None:
        """Raise or lower the flag of a refusal reason for a variant."""
        self.load_refusing.labels(variant, reason).set(1 if refusing else 0)

    def set_registry_success(self, timestamp: float) -> None:
        """Publish the Unix time of the last successful registry poll."""
        self.registry_last_success.set(timestamp)

    def record_feedback(
        self, result: FeedbackResult, variant: str = "", model_version: str = "", outcome: str = ""
    ) -> None:
        """Count one delayed label; a joined one also feeds the quality metric."""
        self.feedback.labels(result).inc()
        if result == "joined":
            self.labeled.labels(variant, model_version, outcome).inc()

    def record_drift(
        self,
        variant: str,
        model_version: str,
        scores: Mapping[str, float],
        drifted_ratio: float,
        checked_at: float,
    ) -> None:
        """Publish one drift check's result (called by ``POST /admin/drift``).

        The arguments are those of :meth:`interfaces.drift_gauges.DriftGauges.record`, which
        publishes them on the same series monitoring uses.
        """
        self.drift.record(variant, model_version, scores, drifted_ratio, checked_at)

    def set_log_queue_depth(self, depth: int) -> None:
        """Publish the inference-log queue depth."""
        if self.enabled:
            self.log_queue.set(depth)

    def exposition_registry(self) -> CollectorRegistry:
        """Return the registry a scrape should read: all workers' values in multi-process mode."""
        if self.multiprocess_dir is None:
            return self.registry
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return merged


def create_metrics(*, enabled: bool = True, multiprocess_dir: Path | None = None) -> ServingMetrics:
    """Build the metrics of one app on a fresh registry (``multiprocess_dir``: see the class)."""
    return ServingMetrics(
        CollectorRegistry(auto_describe=True), enabled=enabled, multiprocess_dir=multiprocess_dir
    )
