"""The names of the eight serving metrics and their supporting series, labels and buckets.

The service exports them (``serving/metrics.py``), the controller and the canary judge read
them (``monitoring/``), the Prometheus rules and the Grafana dashboard query them: this module
is the one place they are written down, so no component imports another to learn them.

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
(``serving/multiprocess.py::mark_worker_dead``), and ``mlplat serve`` sweeps those of workers
that were killed (``serving/multiprocess.py::mark_dead_workers``).
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "BATCHER_QUEUE_ROWS",
    "BATCH_BUCKETS",
    "BATCH_SIZE_ROWS",
    "CANARY_WEIGHT_RATIO",
    "DRIFTED_FEATURES_RATIO",
    "DRIFT_CHECK_TIMESTAMP",
    "EIGHT_METRICS",
    "ERRORS_TOTAL",
    "ERROR_CLASSES",
    "FEATURE_DRIFT_SCORE",
    "FEEDBACK_TOTAL",
    "INFERENCE_LOG_DROPPED_TOTAL",
    "INFERENCE_LOG_QUEUE_DEPTH",
    "INFERENCE_LOG_WRITE_FAILURES_TOTAL",
    "INFERENCE_LOG_WRITTEN_TOTAL",
    "INFLIGHT_REQUESTS",
    "INPUT_ISSUES_TOTAL",
    "INPUT_RECORDS_TOTAL",
    "LABELED_PREDICTIONS_TOTAL",
    "LATENCY_BUCKETS",
    "MODEL_INFO",
    "MODEL_LOAD_FAILING",
    "MODEL_LOAD_FAILURES_TOTAL",
    "MODEL_LOAD_REFUSALS_TOTAL",
    "MODEL_LOAD_REFUSING",
    "NO_VARIANT",
    "PREDICTIONS_TOTAL",
    "PREDICTION_LATENCY_SECONDS",
    "PREDICTION_PROBABILITY",
    "PROBABILITY_BUCKETS",
    "RECORD_LEVEL",
    "REGISTRY_LAST_SUCCESS_TIMESTAMP",
    "UNKNOWN_FEATURE",
    "ErrorClass",
    "FeedbackResult",
    "InputIssue",
    "Outcome",
]

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
