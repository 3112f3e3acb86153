"""The eight serving metrics, and the few supporting series that explain them.

The names below are a public contract: Prometheus rules, Grafana dashboards and the canary judge
query them. Change a name here and you break them; add, don't rename.

Why these eight (each answers one question an on-call engineer asks first):

1. **Traffic** — ``mlplat_predictions_total{variant, model_version}`` (counter, rows scored).
   A drop to zero is an outage upstream; the split between ``champion`` and ``canary`` is read
   from it, so it is also the proof that the canary gets the weight the registry asked for.
   Rows rather than HTTP requests, because a batch of 64 rows is 64 decisions.
2. **Latency** — ``mlplat_prediction_latency_seconds{variant, model_version}`` (histogram).
   Time from the request's arrival to its scores from one variant, including the micro-batch
   wait; p99 by variant spots a slower canary before users do.
3. **Errors** — ``mlplat_errors_total{error_class, variant, model_version}`` (counter).
   ``error_class`` is a closed set (:data:`ERROR_CLASSES`): client faults (``invalid_input``,
   ``payload_too_large``) and server faults (``model_unavailable``, ``overloaded``,
   ``inference_failure``, ``internal``) are told apart, so a bad client never pages anyone and
   a broken canary does. Failures before routing carry ``variant="none"``.
4. **Saturation** — ``mlplat_inflight_requests`` (gauge, summed over workers).
   Requests inside the service right now. Rising in-flight with flat traffic means the service
   is slower than its arrival rate: queueing, the step before timeouts. The queue depths of the
   micro-batcher and the inference log are supporting series.
5. **Input data quality** — ``mlplat_input_issues_total{feature, issue}`` (counter).
   Rejected values by contract rule (``missing``, ``wrong_type``, ``out_of_range``,
   ``unknown_category``, ``unknown_field``, ``malformed``) and accepted nulls (``null``), per
   feature. Divided by ``mlplat_input_records_total`` it is the null/unknown rate per feature:
   an upstream schema change shows here minutes before it shows in model quality.
6. **Prediction distribution** — ``mlplat_prediction_probability{variant, model_version}``
   (histogram of P(default)). The cheapest drift signal there is: it needs no labels and no
   reference data, and a canary whose score distribution departs from the champion's on the
   same traffic is suspect at once.
7. **Feature drift** — ``mlplat_feature_drift_score{feature, variant, model_version}`` (gauge).
   Set by the monitoring drift checks, never by request handling: the monitoring controller
   exports it under this name from its own ``/metrics``, and a drift job without an exporter
   can ``POST /admin/drift`` so the service publishes it (:meth:`ServingMetrics.record_drift`).
   Definition: a distance between the training reference and a recent window of the inference
   log for one feature, **higher = more drift, 0 = identical** (e.g. normed Wasserstein for
   numeric and Jensen-Shannon for categorical features; never a p-value, whose direction is the
   opposite). The companion ``mlplat_drifted_features_ratio`` is the share of features the
   check flagged, the series alert rules use.
8. **Model quality from delayed labels** —
   ``mlplat_labeled_predictions_total{variant, model_version, outcome}`` (counter;
   ``outcome`` in ``tp``, ``fp``, ``tn``, ``fn``). Incremented when ``POST /feedback`` joins a
   true label to a logged prediction. Accuracy, precision, recall and default rate per variant
   are ratios of its rates over any window, which is what an automatic rollback compares.

Cardinality stays bounded: ``variant`` has three values, ``model_version`` grows by one per
deployment, ``feature`` comes from the contract (unknown names fold into ``_unknown``),
``error_class``, ``issue`` and ``outcome`` are closed sets. No request or entity ids.

Multi-process mode (``uvicorn --workers N``): counters and histograms sum across workers by
construction; each gauge states its ``multiprocess_mode`` below on purpose (``livesum`` for
in-flight work, ``livemax`` for "is any live worker serving it", ``livemostrecent`` for state
every worker follows, ``mostrecent`` for values set by an outside job). "Live" holds only while
a dead worker's gauge files are removed: a worker that stops cleanly removes its own
(:func:`mark_worker_dead`), and ``mlplat serve`` sweeps those of workers that were killed
(:func:`mark_dead_workers`).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

from features import FEATURE_NAMES

# --- the eight -------------------------------------------------------------------------------
PREDICTIONS_TOTAL: Final = "mlplat_predictions_total"
PREDICTION_LATENCY_SECONDS: Final = "mlplat_prediction_latency_seconds"
ERRORS_TOTAL: Final = "mlplat_errors_total"
INFLIGHT_REQUESTS: Final = "mlplat_inflight_requests"
INPUT_ISSUES_TOTAL: Final = "mlplat_input_issues_total"
PREDICTION_PROBABILITY: Final = "mlplat_prediction_probability"
FEATURE_DRIFT_SCORE: Final = "mlplat_feature_drift_score"
LABELED_PREDICTIONS_TOTAL: Final = "mlplat_labeled_predictions_total"

EIGHT_METRICS: Final[tuple[str, ...]] = (
    PREDICTIONS_TOTAL,
    PREDICTION_LATENCY_SECONDS,
    ERRORS_TOTAL,
    INFLIGHT_REQUESTS,
    INPUT_ISSUES_TOTAL,
    PREDICTION_PROBABILITY,
    FEATURE_DRIFT_SCORE,
    LABELED_PREDICTIONS_TOTAL,
)
"""The eight metric names, in the order of the module docstring."""

# --- supporting series -----------------------------------------------------------------------
INPUT_RECORDS_TOTAL: Final = "mlplat_input_records_total"
DRIFTED_FEATURES_RATIO: Final = "mlplat_drifted_features_ratio"
DRIFT_CHECK_TIMESTAMP: Final = "mlplat_drift_check_timestamp_seconds"
MODEL_INFO: Final = "mlplat_model_info"
CANARY_WEIGHT_RATIO: Final = "mlplat_canary_weight_ratio"
MODEL_LOAD_FAILURES_TOTAL: Final = "mlplat_model_load_failures_total"
MODEL_LOAD_FAILING: Final = "mlplat_model_load_failing"
MODEL_LOAD_REFUSALS_TOTAL: Final = "mlplat_model_load_refusals_total"
MODEL_LOAD_REFUSING: Final = "mlplat_model_load_refusing"
REGISTRY_LAST_SUCCESS_TIMESTAMP: Final = "mlplat_registry_last_success_timestamp_seconds"
BATCH_SIZE_ROWS: Final = "mlplat_batch_size_rows"
BATCHER_QUEUE_ROWS: Final = "mlplat_batcher_queue_rows"
INFERENCE_LOG_QUEUE_DEPTH: Final = "mlplat_inference_log_queue_depth"
INFERENCE_LOG_WRITTEN_TOTAL: Final = "mlplat_inference_log_written_total"
INFERENCE_LOG_DROPPED_TOTAL: Final = "mlplat_inference_log_dropped_total"
INFERENCE_LOG_WRITE_FAILURES_TOTAL: Final = "mlplat_inference_log_write_failures_total"
FEEDBACK_TOTAL: Final = "mlplat_feedback_total"

ErrorClass = Literal[
    "invalid_input",
    "payload_too_large",
    "model_unavailable",
    "overloaded",
    "inference_failure",
    "internal",
]
ERROR_CLASSES: Final[tuple[ErrorClass, ...]] = (
    "invalid_input",
    "payload_too_large",
    "model_unavailable",
    "overloaded",
    "inference_failure",
    "internal",
)
"""Every value of the ``error_class`` label."""

InputIssue = Literal[
    "missing",
    "null",
    "wrong_type",
    "out_of_range",
    "unknown_category",
    "unknown_field",
    "malformed",
]
Outcome = Literal["tp", "fp", "tn", "fn"]
FeedbackResult = Literal["joined", "unknown_request", "duplicate"]

NO_VARIANT: Final = "none"
"""Label value of ``variant`` and ``model_version`` for events that happen before routing."""
UNKNOWN_FEATURE: Final = "_unknown"
"""Label value of ``feature`` for names outside the contract (never the caller's string)."""
RECORD_LEVEL: Final = "_record"
"""Label value of ``feature`` for problems with a whole record or the request body."""

LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
PROBABILITY_BUCKETS: Final = tuple(round(0.05 * i, 2) for i in range(1, 21))
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

_FEATURES: Final = frozenset(FEATURE_NAMES)


def multiprocess_dir() -> str | None:
    """Return ``PROMETHEUS_MULTIPROC_DIR`` when the process runs in multi-process mode."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def feature_label(name: str) -> str:
    """Map a field name to a bounded ``feature`` label value (``_record`` stays itself)."""
    return name if name in _FEATURES or name == RECORD_LEVEL else UNKNOWN_FEATURE


@dataclass(frozen=True)
class _VariantSeries:
    """The per-(variant, version) children of the hot-path metrics, bound once."""

    predictions: Counter
    latency: Histogram
    probability: Histogram


class DriftGauges:
    """Metric 7, the drift checks' results: one definition for every process that publishes them.

    The monitoring controller runs the checks and publishes them on its own ``/metrics``; the
    service publishes them when ``POST /admin/drift`` is called. Same names, labels and help in
    both, so one rule or panel reads drift whichever process published it.

    Args:
        registry: Where the three gauges are registered.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        vm = ("variant", "model_version")
        self.score = Gauge(
            FEATURE_DRIFT_SCORE,
            "Drift of one feature between the training reference and recent traffic "
            "(distance; higher = more drift, 0 = identical). Set by the monitoring drift checks.",
            ("feature", *vm),
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.drifted_ratio = Gauge(
            DRIFTED_FEATURES_RATIO,
            "Share of features the latest drift check flagged as drifted.",
            vm,
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.checked_at = Gauge(
            DRIFT_CHECK_TIMESTAMP,
            "Unix time of the latest drift check (alert when it goes stale).",
            vm,
            registry=registry,
            multiprocess_mode="mostrecent",
        )

    def record(
        self,
        variant: str,
        model_version: str,
        scores: Mapping[str, float],
        drifted_ratio: float,
        checked_at: float,
    ) -> None:
        """Publish one drift check's result.

        Args:
            variant: The variant whose traffic was checked.
            model_version: The model version that served that traffic.
            scores: Drift score per contract feature (higher = more drift).
            drifted_ratio: Share of features flagged as drifted, in [0, 1].
            checked_at: Unix time of the check.

        Raises:
            ValueError: If ``drifted_ratio`` is outside [0, 1].
        """
        if not 0.0 <= drifted_ratio <= 1.0:
            raise ValueError(f"drifted_ratio must be within [0, 1]; got {drifted_ratio!r}")
        for feature, score in scores.items():
            self.score.labels(feature_label(feature), variant, model_version).set(score)
        self.drifted_ratio.labels(variant, model_version).set(drifted_ratio)
        self.checked_at.labels(variant, model_version).set(checked_at)


class ServingMetrics:
    """Every metric of one service instance, registered on one registry.

    Build one per app (:func:`create_metrics`): tests get a fresh registry and exact values,
    and the hot path binds label children once per (variant, version) instead of per request.

    Args:
        registry: Where the metrics are registered. In multi-process mode the values live in
            ``PROMETHEUS_MULTIPROC_DIR`` regardless, and :meth:`exposition_registry` reads them.
        enabled: When false, the per-request series (traffic, latency, errors, saturation, input
            issues, prediction distribution, batch sizes) are not updated; the control-plane
            series (model info, load failures, drift, feedback) always are. It exists to measure
            what instrumentation costs (``mlplat bench serve``).
    """

    def __init__(self, registry: CollectorRegistry, *, enabled: bool = True) -> None:
        self.registry = registry
        self.enabled = enabled
        r = registry
        vm = ("variant", "model_version")
        self.predictions = Counter(
            PREDICTIONS_TOTAL, "Rows scored, by variant and model version.", vm, registry=r
        )
        self.latency = Histogram(
            PREDICTION_LATENCY_SECONDS,
            "Seconds from request arrival to scores from one variant (includes batching wait).",
            vm,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            ERRORS_TOTAL,
            "Failed prediction requests by error class; variant is 'none' before routing.",
            ("error_class", *vm),
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
        self.probability = Histogram(
            PREDICTION_PROBABILITY,
            "Predicted probability of default, by variant and model version.",
            vm,
            buckets=PROBABILITY_BUCKETS,
            registry=r,
        )
        self.drift = DriftGauges(r)
        self.labeled = Counter(
            LABELED_PREDICTIONS_TOTAL,
            "Predictions joined to their delayed true label, by confusion-matrix outcome.",
            (*vm, "outcome"),
            registry=r,
        )
        # Supporting series.
        self.input_records = Counter(
            INPUT_RECORDS_TOTAL,
            "Feature records received, by outcome (accepted or rejected).",
            ("outcome",),
            registry=r,
        )
        self.model_info = Gauge(
            MODEL_INFO,
            "1 while a worker serves this model version as this variant, else 0.",
            vm,
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
            vm,
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
            (*vm, "reason"),
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
        self.feedback = Counter(
            FEEDBACK_TOTAL,
            "Delayed labels received, by join result.",
            ("result",),
            registry=r,
        )
        self._accepted = self.input_records.labels("accepted")
        self._series: dict[tuple[str, str], _VariantSeries] = {}
        self._series_lock = threading.Lock()

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

        Args:
            variant: The variant whose traffic was checked.
            model_version: The model version that served that traffic.
            scores: Drift score per contract feature (higher = more drift).
            drifted_ratio: Share of features flagged as drifted, in [0, 1].
            checked_at: Unix time of the check.
        """
        self.drift.record(variant, model_version, scores, drifted_ratio, checked_at)

    def set_log_queue_depth(self, depth: int) -> None:
        """Publish the inference-log queue depth."""
        if self.enabled:
            self.log_queue.set(depth)

    def exposition_registry(self) -> CollectorRegistry:
        """Return the registry a scrape should read: all workers' values in multi-process mode."""
        path = multiprocess_dir()
        if path is None:
            return self.registry
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=path)  # type: ignore[no-untyped-call]
        return merged


def create_metrics(*, enabled: bool = True) -> ServingMetrics:
    """Build the metrics of one app on a fresh registry."""
    return ServingMetrics(CollectorRegistry(auto_describe=True), enabled=enabled)


def mark_worker_dead(pid: int) -> None:
    """Drop a stopping worker's live gauges from the multi-process aggregate."""
    path = multiprocess_dir()
    if path is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


_LIVE_GAUGE_FILE: Final = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")
"""prometheus-client's file of one process's ``live*`` gauges: ``gauge_livesum_<pid>.db``."""


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (an exited one that is not yet reaped still does)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def mark_dead_workers(
    path: str | os.PathLike[str], alive: Callable[[int], bool] = process_alive
) -> list[int]:
    """Drop the live gauges of every process that left them in ``path`` and has exited.

    A worker that stops cleanly drops its own (:func:`mark_worker_dead`); one that was killed
    (out of memory, SIGKILL, a crash) cannot, and uvicorn starts a replacement beside its files.
    Left there, they keep counting as a live worker's: the requests it had in flight stay in
    ``mlplat_inflight_requests`` and its last registry poll stays the oldest
    (``mlplat_registry_last_success_timestamp_seconds``, ``livemin``), so the registry looks
    stale for good. Counters, histograms and ``mostrecent`` gauges stay: the totals include the
    dead worker's work, as they must.

    Args:
        path: The ``PROMETHEUS_MULTIPROC_DIR`` of the workers.
        alive: Whether a pid is still running (the test seam).

    Returns:
        The pids whose gauges were dropped, in ascending order.
    """
    from prometheus_client import multiprocess

    try:
        names = [entry.name for entry in os.scandir(path)]
    except FileNotFoundError:
        return []
    pids = {int(m.group(1)) for m in map(_LIVE_GAUGE_FILE.match, names) if m is not None}
    dead = sorted(pid for pid in pids if not alive(pid))
    for pid in dead:
        # A file may go meanwhile: the worker's own clean stop, or another sweep.
        with contextlib.suppress(FileNotFoundError):
            multiprocess.mark_process_dead(pid, os.fspath(path))  # type: ignore[no-untyped-call]
    return dead
