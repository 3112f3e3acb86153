"""Alertmanager's canary alerts: a reason for the judge to look now, or the circuit breaker.

Only the judge decides: a firing ``component="canary"`` alert makes it look at the live canary
at once, through the path of every window's judgement
(:meth:`~monitoring.controller.canary.CanaryWatch.judge_now`). The one exception is the circuit
breaker (``breaker="true"``), a catastrophic failure that needs no statistics, which rolls the
canary back without the judge and works while the controller holds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from monitoring.controller.alerts import (
    ALERT_ACTION,
    AlertNotice,
    AlertOutcome,
    held,
    ignored,
    is_circuit_breaker,
)
from monitoring.controller.canary import CanaryWatch
from monitoring.controller.reports import Clock, Cycle, iso
from monitoring.metrics import AlertAction, ControllerMetrics
from monitoring.sources.base import SourceUnavailable
from registry import DeploymentState, ModelRegistry

__all__ = ["AlertHandler"]

logger = logging.getLogger(__name__)


class AlertHandler:
    """Acts on Alertmanager notifications about the live canary.

    Args:
        registry: The model registry.
        canary: The live canary's watch (its judge path and its look bookkeeping).
        metrics: Where alert outcomes are counted.
        clock: The current time, timezone-aware.
        lock: Serialises registry moves with the loop's.
        wake: Set when an alert moved the registry, so the loop runs its next cycle at once.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        canary: CanaryWatch,
        metrics: ControllerMetrics,
        clock: Clock,
        lock: threading.RLock,
        wake: threading.Event,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.clock = clock
        self._canary = canary
        self._lock = lock
        self._wake = wake

    def handle(self, alerts: Sequence[AlertNotice]) -> list[AlertOutcome]:
        """Act on one Alertmanager notification: look at the live canary now, or trip the breaker.

        A firing ``component="canary"`` alert asks the judge to look at the live canary *now*
        (:meth:`CanaryWatch.judge_now`, the path of every window's judgement); all such alerts of
        one notification share one look, and alerts add at most one look per window index (a later
        one in the same window is acknowledged and ignored: the loop judges the next window
        anyway). If the judge says CONTINUE nothing moves. A circuit-breaker alert
        (``breaker="true"``) rolls the canary back without the judge; it must name the canary's
        ``model_version``, and it works while the controller holds (only the registry is
        needed). Resolved notifications and other components change nothing. An alert that
        started firing before the current canary took traffic, or that names another
        ``model_version``, belongs to an earlier canary and is ignored. Idempotent:
        Alertmanager repeats notifications, and a repeat finds the canary gone or the window
        looked at.

        Raises:
            RegistryError: If the registry cannot be read (the webhook answers 503 and
                Alertmanager retries).
        """
        outcomes: list[AlertOutcome | None] = []
        breakers: list[int] = []
        looks: list[int] = []
        for index, alert in enumerate(alerts):
            if alert.status != "firing":
                outcomes.append(ignored(alert, f"{alert.status} notifications change nothing"))
            elif alert.labels.get("component") != "canary":
                outcomes.append(ignored(alert, "not a canary alert (component is not 'canary')"))
            else:
                outcomes.append(None)
                (breakers if is_circuit_breaker(alert) else looks).append(index)
        if breakers or looks:
            with self._lock:
                for index in breakers:
                    outcomes[index] = self._trip_breaker(alerts[index])
                if looks:
                    judged = self._look_on_alerts([alerts[index] for index in looks])
                    for index, outcome in zip(looks, judged, strict=True):
                        outcomes[index] = outcome
        done = [outcome for outcome in outcomes if outcome is not None]
        for outcome in done:
            self.metrics.record_alert(outcome.decided_by, outcome.action)
            logger.info(
                "alert %s (%s): %s — %s",
                outcome.alertname, outcome.fingerprint, outcome.outcome, outcome.reason,
            )  # fmt: skip
        if any(o.action in ("rolled_back", "paused", "promoted") for o in done):
            self._wake.set()  # the loop writes the canary's report and publishes its state now
        return done

    def _stale(
        self, alert: AlertNotice, version: int, started: datetime | None, *, need_version: bool
    ) -> str | None:
        """Why ``alert`` is not about the live canary ``version``, or ``None`` if it is."""
        named = alert.labels.get("model_version")
        if named is None and need_version:
            return "a circuit-breaker alert must name the model_version it is about"
        if named is not None and named != str(version):
            return f"the alert is about version {named}; the canary is {version}"
        if started is not None and alert.starts_at < started:
            return (
                f"the alert started firing at {alert.starts_at.isoformat()}, before canary "
                f"{version} took traffic at {started.isoformat()}"
            )
        return None

    def _trip_breaker(self, alert: AlertNotice) -> AlertOutcome:
        """Reject the live canary on a circuit-breaker alert, without the judge."""
        state = self.registry.state()
        version = state.challenger
        if version is None or not state.canary_active:
            return ignored(
                alert, "no canary takes traffic (already rolled back, paused or promoted)"
            )
        started = self._canary.started_at(version)
        why = self._stale(alert, version, started, need_version=True)
        if why is not None:
            return ignored(alert, why, version)
        now = self.clock()
        signal = alert.labels.get("signal", "unknown signal")
        summary = alert.annotations.get("summary", "")
        event = self.registry.reject(
            version,
            reason=f"circuit breaker {alert.name} tripped ({signal}): {summary}".rstrip(": "),
            evidence=f"alert {alert.name} fingerprint {alert.fingerprint}: {alert.generator_url}",
            details={
                "decided_by": "circuit_breaker",
                "signals": [signal],
                "triggered_by": f"alert {alert.name}",
                "outcome": "rolled_back",
                "canary_started_at": iso(started),
                "alert": alert.to_dict(),
            },
        )
        self._canary.finished(
            version, "rolled_back", started or now, now, f"circuit breaker {alert.name}"
        )
        why = f"canary {version} rolled back by the circuit breaker {alert.name} ({signal})"
        if event is None:
            why = f"canary {version} was already rolled back"
        logger.warning("%s", why)
        return AlertOutcome(
            alert.name, alert.fingerprint, "rolled_back", why, version,
            None if event is None else event.id, "circuit_breaker", signals=(signal,),
        )  # fmt: skip

    def _look_on_alerts(self, alerts: Sequence[AlertNotice]) -> list[AlertOutcome]:
        """One judge look at the live canary for the alerts of a notification."""
        state = self.registry.state()
        version = state.challenger
        if version is None or not state.canary_active:
            why = "no canary takes traffic (already rolled back, paused or promoted)"
            return [ignored(a, why) for a in alerts]
        if state.champion is None:
            return [ignored(a, "no champion to compare the canary with", version) for a in alerts]
        started = self._canary.started_at(version)
        outcomes: dict[int, AlertOutcome] = {}
        live: list[AlertNotice] = []
        for index, alert in enumerate(alerts):
            stale = self._stale(alert, version, started, need_version=False)
            if stale is None:
                live.append(alert)
            else:
                outcomes[index] = ignored(alert, stale, version)
        if live:
            judged = iter(self._look(state, version, started, live))
            for index in range(len(alerts)):
                if index not in outcomes:
                    outcomes[index] = next(judged)
        return [outcomes[index] for index in range(len(alerts))]

    def _look(
        self,
        state: DeploymentState,
        version: int,
        started: datetime | None,
        alerts: Sequence[AlertNotice],
    ) -> list[AlertOutcome]:
        """The judge's look at the live canary for ``alerts``, at most one per window index."""
        now = self.clock()
        if started is None:
            why = f"the event log does not say when canary {version} started taking traffic"
            return [held(a, why, version) for a in alerts]
        # The current index, never the next one: the look sees the data up to now without
        # shifting the window schedule, hurrying a promotion or nearing the window cap.
        window = max(1, self._canary.window_index(started, now))
        if self._canary.alert_looked.get(version) == window:
            why = (
                f"window {window} was already looked at on an alert (at most one extra look per "
                f"window); the loop judges window {window + 1} when it completes"
            )
            return [ignored(a, why, version) for a in alerts]
        champion = state.champion
        assert champion is not None  # _look_on_alerts checks
        cycle = Cycle(now)
        trigger = "alert " + ", ".join(sorted({a.name for a in alerts}))
        try:
            counts = self._canary.metrics_source.counts(champion, version, started, now)
        except SourceUnavailable as exc:
            cycle.hold(exc.hold_reason, f"cannot judge canary {version}: {exc}")
            report = None
        else:

            def mark() -> None:
                self._canary.alert_looked[version] = window

            report = self._canary.judge_now(
                state, version, started, window, counts, cycle, trigger, mark, alerts
            )
        if report is None or report.verdict is None or cycle.holds:
            why = "; ".join(w for whys in cycle.holds.values() for w in whys)
            why = (
                f"the judge could not look at canary {version}: {why}; the loop judges it "
                "again when its inputs answer, and the circuit breaker still acts"
            )
            return [held(a, why, version) for a in alerts]
        action: AlertAction = ALERT_ACTION.get(report.action or "", "unchanged")
        why = f"judged canary {version} at window {window} on the data up to now: {report.reason}"
        judged = AlertOutcome(
            "", "", action, why, version, report.event_id, "judge", report.verdict, window,
            report.signals,
        )  # fmt: skip
        return [replace(judged, alertname=a.name, fingerprint=a.fingerprint) for a in alerts]
