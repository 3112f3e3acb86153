"""The metrics of the monitoring controller process (its ``/metrics``, job ``mlplat-controller``).

The serving metrics (:mod:`interfaces.metric_names`) say how the models behave; these say what the
controller concluded and did about it. Names are a public contract, read by
``monitoring/prometheus/rules/*.yml`` and ``monitoring/grafana/dashboards/mlplat-serving.json``:
add, don't rename.

* ``mlplat_canary_verdicts_total{verdict}`` (counter) — one per judgement of a canary: each
  completed window, and each extra look a canary alert asked for;
  ``verdict`` is :class:`monitoring.judge.Verdict` (``continue``, ``promote``, ``rollback``,
  ``inconclusive``). A run of ``rollback`` is the automatic mitigation at work; ``inconclusive``
  means a person was asked to decide.
* ``mlplat_canary_state{model_version, state}`` (gauge, one-hot) — 1 for the state the canary of
  ``model_version`` is in, 0 for the others; ``state`` is one of :data:`CANARY_STATES`. Only the
  latest canary has series, so the cardinality stays at four.
* ``mlplat_canary_signal_estimate{signal}`` (gauge) — the judge's point estimate of canary versus
  champion for each :class:`monitoring.judge.SignalName`, in that signal's units: a difference of
  error rates (``error_rate``), a ratio of geometric-mean latencies (``latency``), a difference
  of mean per-row loss (``quality``), a PSI (``prediction_distribution``). Higher is worse for
  the canary. Absent while the judge has no estimate.
* ``mlplat_canary_signal_bound{signal, bound}`` (gauge) — the anytime-valid confidence bounds
  around that estimate (``bound`` = ``lower`` or ``upper``): the judge rolls back when ``lower``
  clears the signal's floor and counts it *not worse* when ``upper`` is below its margin.
* ``mlplat_controller_holding{reason}`` (gauge) — 1 while the controller is in its fail-safe
  hold for that reason (it neither promotes nor rolls back and leaves the weight as it is,
  because it cannot trust what it sees), else 0. ``reason`` is one of :data:`HOLD_REASONS`;
  every reason exists from the start, so ``max(mlplat_controller_holding) == 0`` means "not
  holding" rather than "no data".
* ``mlplat_controller_last_cycle_timestamp_seconds`` (gauge) — Unix time the controller last
  finished a cycle; an age far above the cycle interval means it is alive but stuck.
* ``mlplat_drift_retrain_triggers_total`` (counter) — retraining runs the drift checks asked
  for. Drift triggers retraining, never a rollback: the canary is judged against the champion on
  the same traffic, so drift in that traffic does not tell them apart.
* ``mlplat_controller_webhook_requests_total{outcome}`` (counter) — Alertmanager notifications
  received at ``POST /alertmanager/webhook``, by ``outcome`` (:data:`WEBHOOK_OUTCOMES`); a
  climbing ``unauthorized`` means a token mismatch between Alertmanager and the controller;
  ``too_large`` and ``timeout`` are bodies refused before they were read in full.
* ``mlplat_controller_alerts_total{decided_by, action}`` (counter) — what became of each canary
  alert the webhook received: ``decided_by`` is ``judge`` (the alert asked the judge to look at
  the live canary now), ``circuit_breaker`` (the one alert that acts without the judge) or
  ``none`` (not acted on); ``action`` is what moved (:data:`ALERT_ACTIONS`). ``judge`` with
  ``unchanged`` is an alert the judge answered with *continue*: the alert path at work, not a
  rollback.

The controller also runs the drift checks, and exports their results under the serving names
(:data:`interfaces.metric_names.FEATURE_DRIFT_SCORE`,
:data:`interfaces.metric_names.DRIFTED_FEATURES_RATIO`,
:data:`interfaces.metric_names.DRIFT_CHECK_TIMESTAMP`, through
:class:`interfaces.drift_gauges.DriftGauges`), with the same labels and meaning, so one rule or
panel reads drift whichever process published it (rules take the ``max`` over jobs).
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Mapping
from typing import Final, Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge

from interfaces.drift_gauges import DriftGauges
from monitoring.judge import JudgeResult, SignalName, Verdict

__all__ = [
    "CANARY_STATES",
    "CANARY_SIGNAL_BOUND",
    "CANARY_SIGNAL_ESTIMATE",
    "CANARY_STATE",
    "CANARY_VERDICTS_TOTAL",
    "CONTROLLER_HOLDING",
    "CONTROLLER_LAST_CYCLE_TIMESTAMP",
    "CONTROLLER_WEBHOOK_REQUESTS_TOTAL",
    "ALERT_ACTIONS",
    "ALERT_DECIDERS",
    "CONTROLLER_ALERTS_TOTAL",
    "DRIFT_RETRAIN_TRIGGERS_TOTAL",
    "HOLD_REASONS",
    "WEBHOOK_OUTCOMES",
    "AlertAction",
    "AlertDecider",
    "CanaryState",
    "ControllerMetrics",
    "HoldReason",
    "WebhookOutcome",
]

CANARY_VERDICTS_TOTAL: Final = "mlplat_canary_verdicts_total"
CANARY_STATE: Final = "mlplat_canary_state"
CANARY_SIGNAL_ESTIMATE: Final = "mlplat_canary_signal_estimate"
CANARY_SIGNAL_BOUND: Final = "mlplat_canary_signal_bound"
CONTROLLER_HOLDING: Final = "mlplat_controller_holding"
CONTROLLER_LAST_CYCLE_TIMESTAMP: Final = "mlplat_controller_last_cycle_timestamp_seconds"
DRIFT_RETRAIN_TRIGGERS_TOTAL: Final = "mlplat_drift_retrain_triggers_total"
CONTROLLER_WEBHOOK_REQUESTS_TOTAL: Final = "mlplat_controller_webhook_requests_total"
CONTROLLER_ALERTS_TOTAL: Final = "mlplat_controller_alerts_total"

CanaryState = Literal["observing", "paused", "promoted", "rolled_back"]
CANARY_STATES: Final[tuple[CanaryState, ...]] = get_args(CanaryState)
"""Every value of ``state``: judged each window, waiting for a person, and the two outcomes."""

HoldReason = Literal[
    "prometheus_unreachable",
    "registry_unreachable",
    "inference_log_unreachable",
    "stale_metrics",
    "action_failed",
]
HOLD_REASONS: Final[tuple[HoldReason, ...]] = get_args(HoldReason)
"""Every value of ``reason``: a data source is down, its data is too old to judge on, or a
promotion or rollback the controller attempted did not take effect."""

WebhookOutcome = Literal["accepted", "unauthorized", "invalid", "too_large", "timeout"]
WEBHOOK_OUTCOMES: Final[tuple[WebhookOutcome, ...]] = get_args(WebhookOutcome)
"""Every value of ``outcome``: processed, wrong or missing bearer token, unparseable body, body
over the size limit, body not received within the time limit."""

AlertDecider = Literal["judge", "circuit_breaker", "none"]
ALERT_DECIDERS: Final[tuple[AlertDecider, ...]] = get_args(AlertDecider)
"""Every value of ``decided_by``: the canary judge, the circuit breaker, nobody."""

AlertAction = Literal["rolled_back", "paused", "promoted", "unchanged", "held", "ignored"]
ALERT_ACTIONS: Final[tuple[AlertAction, ...]] = get_args(AlertAction)
"""Every value of ``action``: what an alert led to. ``unchanged``: judged, nothing moved;
``held``: the judge could not be asked (a source is down) or the move failed; ``ignored``: not
about the live canary, or already looked at in this window."""

_ALERT_PAIRS: Final[tuple[tuple[AlertDecider, AlertAction], ...]] = (
    ("judge", "rolled_back"),
    ("judge", "paused"),
    ("judge", "promoted"),
    ("judge", "unchanged"),
    ("circuit_breaker", "rolled_back"),
    ("none", "held"),
    ("none", "ignored"),
)


def _check(kind: str, value: str, allowed: tuple[str, ...]) -> None:
    # Label values come from code, not users; an unknown one is a bug that would otherwise
    # grow the cardinality silently, so it fails loudly.
    if value not in allowed:
        raise ValueError(f"{kind} must be one of {', '.join(allowed)}; got {value!r}")


def _set_or_remove(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    # A NaN would plot as a gap anyway; no series says "no estimate" without a special value.
    if value is None or not math.isfinite(value):
        gauge.remove(*labels)
    else:
        gauge.labels(*labels).set(value)


class ControllerMetrics:
    """Every metric of the monitoring controller, registered on one registry.

    Build one per process on a registry of its own (tests use a fresh one each), never on the
    default registry: importing this module registers nothing. The controller is one process;
    these metrics do not support ``PROMETHEUS_MULTIPROC_DIR`` (they remove series, which
    multi-process mode cannot).

    Args:
        registry: Where the metrics are registered.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._register_canary(registry)
        self._register_controller(registry)
        # The drift results, under the serving names (see the module docstring).
        self.drift = DriftGauges(registry)
        # Series that exist from the first scrape give rate() and max() a starting point.
        for verdict in Verdict:
            self.verdicts.labels(verdict.value)
        for reason in HOLD_REASONS:
            self.holding.labels(reason).set(0)
        for outcome in WEBHOOK_OUTCOMES:
            self.webhook_requests.labels(outcome)
        for decider, action in _ALERT_PAIRS:
            self.alerts.labels(decider, action)

    def _register_canary(self, r: CollectorRegistry) -> None:
        """The judge's verdicts, the canary's state and each signal's numbers."""
        self.verdicts = Counter(
            CANARY_VERDICTS_TOTAL,
            "Canary judgements (one per judged window or alert-triggered look), by verdict.",
            ("verdict",),
            registry=r,
        )
        self.canary_state = Gauge(
            CANARY_STATE,
            "1 for the state the latest canary is in (observing, paused, promoted, rolled_back).",
            ("model_version", "state"),
            registry=r,
        )
        self.signal_estimate = Gauge(
            CANARY_SIGNAL_ESTIMATE,
            "The judge's estimate of canary versus champion per signal (higher = canary worse).",
            ("signal",),
            registry=r,
        )
        self.signal_bound = Gauge(
            CANARY_SIGNAL_BOUND,
            "Anytime-valid lower and upper bounds of the judge's estimate per signal.",
            ("signal", "bound"),
            registry=r,
        )

    def _register_controller(self, r: CollectorRegistry) -> None:
        """The controller's own health: holds, cycles, retrain triggers, webhook and alerts."""
        self.holding = Gauge(
            CONTROLLER_HOLDING,
            "1 while the controller holds the canary as it is (fail-safe), by reason.",
            ("reason",),
            registry=r,
        )
        self.last_cycle = Gauge(
            CONTROLLER_LAST_CYCLE_TIMESTAMP,
            "Unix time the controller last finished a cycle.",
            registry=r,
        )
        self.retrain_triggers = Counter(
            DRIFT_RETRAIN_TRIGGERS_TOTAL,
            "Retraining runs triggered by the drift checks.",
            registry=r,
        )
        self.webhook_requests = Counter(
            CONTROLLER_WEBHOOK_REQUESTS_TOTAL,
            "Alertmanager notifications received, by outcome.",
            ("outcome",),
            registry=r,
        )
        self.alerts = Counter(
            CONTROLLER_ALERTS_TOTAL,
            "Canary alerts received, by who decided (judge, circuit_breaker, none) and what moved.",
            ("decided_by", "action"),
            registry=r,
        )

    # --- canary --------------------------------------------------------------------------
    def record_verdict(self, verdict: Verdict) -> None:
        """Count one judgement."""
        _check("verdict", verdict.value, tuple(v.value for v in Verdict))
        self.verdicts.labels(verdict.value).inc()

    def set_signal(
        self, signal: SignalName, estimate: float | None, lower: float | None, upper: float | None
    ) -> None:
        """Publish one signal's estimate and bounds; a missing or non-finite one is removed."""
        name = SignalName(signal).value
        _set_or_remove(self.signal_estimate, (name,), estimate)
        _set_or_remove(self.signal_bound, (name, "lower"), lower)
        _set_or_remove(self.signal_bound, (name, "upper"), upper)

    def record_judgement(self, result: JudgeResult) -> None:
        """Count the verdict of one judged window and publish every signal behind it."""
        self.record_verdict(result.verdict)
        for signal in result.signals:
            self.set_signal(signal.name, signal.estimate, signal.ci_low, signal.ci_high)

    def clear_signals(self) -> None:
        """Remove every signal estimate and bound (no canary is being judged)."""
        self.signal_estimate.clear()
        self.signal_bound.clear()

    def set_canary_state(self, model_version: str | None, state: CanaryState | None) -> None:
        """Publish the latest canary's state; ``None`` for both removes it (there never was one).

        Args:
            model_version: The canary's model version.
            state: Where it is; one of :data:`CANARY_STATES`.

        Raises:
            ValueError: If only one of the two is given, or ``state`` is unknown.
        """
        if (model_version is None) != (state is None):
            raise ValueError("model_version and state must be given together, or both be None")
        # Older canaries' series go: the dashboard shows the current one, and the
        # cardinality cannot grow with every deployment.
        self.canary_state.clear()
        if model_version is None or state is None:
            return
        _check("state", state, CANARY_STATES)
        for candidate in CANARY_STATES:
            self.canary_state.labels(model_version, candidate).set(1 if candidate == state else 0)

    # --- controller health ---------------------------------------------------------------
    def set_holding(self, reasons: Collection[HoldReason]) -> None:
        """Publish the fail-safe hold: 1 for each reason given, 0 for the others.

        Args:
            reasons: Why the controller holds; empty when it does not.

        Raises:
            ValueError: If a reason is not one of :data:`HOLD_REASONS`.
        """
        for reason in reasons:
            _check("reason", reason, HOLD_REASONS)
        for reason in HOLD_REASONS:
            self.holding.labels(reason).set(1 if reason in reasons else 0)

    def record_cycle(self, finished_at: float | None = None) -> None:
        """Mark a finished cycle at ``finished_at`` (Unix time; now by default)."""
        self.last_cycle.set(time.time() if finished_at is None else finished_at)

    def record_webhook(self, outcome: WebhookOutcome) -> None:
        """Count one Alertmanager notification."""
        _check("outcome", outcome, WEBHOOK_OUTCOMES)
        self.webhook_requests.labels(outcome).inc()

    def record_alert(self, decided_by: AlertDecider, action: AlertAction) -> None:
        """Count one canary alert by who decided and what it led to.

        Raises:
            ValueError: If either value is outside its closed set.
        """
        _check("decided_by", decided_by, ALERT_DECIDERS)
        _check("action", action, ALERT_ACTIONS)
        self.alerts.labels(decided_by, action).inc()

    # --- drift ---------------------------------------------------------------------------
    def record_retrain_trigger(self) -> None:
        """Count one retraining run asked for by the drift checks."""
        self.retrain_triggers.inc()

    def record_drift(
        self,
        variant: str,
        model_version: str,
        scores: Mapping[str, float],
        drifted_ratio: float,
        checked_at: float,
    ) -> None:
        """Publish one drift check's result under the serving names.

        The arguments and the ``ValueError`` are those of
        ``interfaces/drift_gauges.py::DriftGauges.record``.
        """
        self.drift.record(variant, model_version, scores, drifted_ratio, checked_at)
