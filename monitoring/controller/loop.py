"""The controller's loop: one cycle reads the deployment, judges the canary, runs the drift job.

The parts it runs are :class:`~monitoring.controller.canary.CanaryWatch` (the live canary),
:class:`~monitoring.controller.drift_job.DriftJob` (drift checks, retrain trigger, reports)
and :class:`~monitoring.controller.alert_handler.AlertHandler` (Alertmanager's alerts); what a
cycle does, and why it is safe to restart, is described in :mod:`monitoring.controller`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from monitoring.controller.alert_handler import AlertHandler
from monitoring.controller.alerts import AlertNotice, AlertOutcome
from monitoring.controller.canary import CanaryWatch
from monitoring.controller.drift_job import DriftJob
from monitoring.controller.reports import CanaryReport, Clock, Cycle, CycleReport, DriftReport
from monitoring.controller.retrain import RetrainTrigger
from monitoring.drift import DriftDetector
from monitoring.judge import CanaryJudge
from monitoring.metrics import CanaryState, ControllerMetrics, HoldReason
from monitoring.settings import MonitorSettings
from monitoring.sources.base import LogSource, MetricsSource
from registry import (
    Action,
    DeploymentState,
    JsonValue,
    ModelNotFoundError,
    ModelRegistry,
    RegistryError,
    VersionNotFoundError,
)

__all__ = ["Controller"]

logger = logging.getLogger(__name__)

_STOP_POLL_SECONDS: Final = 0.5
"""How often a sleeping loop checks whether it was asked to stop."""

_ACTION_VERDICTS: Final[dict[str, str]] = {
    "rejected": "rollback",
    "promoted": "promote",
    "paused": "inconclusive",
}
"""What an action the controller took answers on ``GET /judge``."""


class Controller:
    """Watches one model's canary and drift, and moves the registry when the evidence says so.

    Args:
        registry: The model registry (its moves are compare-and-set and idempotent).
        metrics_source: Requests, errors and latency per variant.
        log_source: Scores, labels and drift windows from the inference log.
        judge: The canary judge.
        drift_detector_factory: Builds the drift detector of a model version (from the reference
            sample logged with it); called once per version, the result is cached.
        metrics: Where the controller publishes what it concluded.
        clock: The current time, timezone-aware.
        settings: Intervals, windows and promotion minimums.
        retrain_trigger: Asked when the champion's inputs drift; default: record nothing.
        attach_report: Attaches a canary's drift report to its version's run (MLflow);
            returns where it went. ``None``: reports stay on disk.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        metrics_source: MetricsSource,
        log_source: LogSource,
        judge: CanaryJudge,
        drift_detector_factory: Callable[[int], DriftDetector],
        metrics: ControllerMetrics,
        clock: Clock,
        settings: MonitorSettings,
        *,
        retrain_trigger: RetrainTrigger | None = None,
        attach_report: Callable[[int, Path], str] | None = None,
    ) -> None:
        self.registry = registry
        self.metrics_source = metrics_source
        self.log_source = log_source
        self.judge = judge
        self.drift_detector_factory = drift_detector_factory
        self.metrics = metrics
        self.clock = clock
        self.settings = settings
        self.retrain_trigger = retrain_trigger
        self.attach_report = attach_report
        self.last_report: CycleReport | None = None
        # Serialises registry moves of the loop and of webhook calls (another process is
        # serialised by the event log's one-pending-move rule instead).
        self._lock = threading.RLock()
        # Set when an alert moved the registry: the loop runs its next cycle at once.
        self._wake = threading.Event()
        self._drift = DriftJob(
            registry.model_name, log_source, drift_detector_factory, metrics, settings,
            retrain_trigger, attach_report,
        )  # fmt: skip
        self._canary = CanaryWatch(
            registry, metrics_source, log_source, judge, metrics, settings,
            on_finished=self._drift.queue_canary_report,
        )  # fmt: skip
        self._alerts = AlertHandler(registry, self._canary, metrics, clock, self._lock, self._wake)

    def __repr__(self) -> str:
        return (
            f"Controller({self.registry.model_name!r}, metrics={self.metrics_source!r}, "
            f"log={self.log_source!r})"
        )

    def close(self) -> None:
        """Release the sources' connections."""
        self.metrics_source.close()
        self.log_source.close()

    def run_forever(self, stop: threading.Event) -> None:
        """Run a cycle every ``interval_seconds`` until ``stop`` is set.

        A cycle that fails unexpectedly is logged and counted as a hold (``action_failed``);
        the loop carries on. An alert that moved the registry wakes it early, so the canary's
        report is written and its state published at once.
        """
        while not stop.is_set():
            self._wake.clear()
            try:
                self.run_once()
            except Exception:
                logger.exception("controller cycle failed unexpectedly; holding until the next")
                failed: tuple[HoldReason, ...] = ("action_failed",)
                self.metrics.set_holding(failed)
            self._sleep(stop)

    def _sleep(self, stop: threading.Event) -> None:
        """Wait ``interval_seconds``, or less if stopped or woken by an alert that moved."""
        deadline = time.monotonic() + self.settings.interval_seconds
        while not stop.is_set() and not self._wake.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wake.wait(min(remaining, _STOP_POLL_SECONDS))

    def run_once(self) -> CycleReport:
        """Run one cycle: read, judge, act, check drift, write reports (see the module doc)."""
        cycle = Cycle(self.clock())
        canary: CanaryReport | None = None
        with self._lock:
            state = self._read_state(cycle)
            cycle.deployment = state
            if state is not None:
                if state.canary_active:
                    canary = self._canary.step(state, cycle)
                else:
                    self._publish_idle(state)
        drift: tuple[DriftReport, ...] = ()
        if state is not None and self._drift.due(cycle.started_at):
            drift = self._drift.run(state, canary, cycle)
        self._drift.write_reports(cycle)
        finished = self.clock()
        self.metrics.set_holding(tuple(cycle.holds))
        self.metrics.record_cycle(finished.timestamp())
        report = CycleReport(
            started_at=cycle.started_at,
            finished_at=finished,
            model_name=self.registry.model_name,
            deployment=None
            if state is None
            else {
                "champion": state.champion,
                "challenger": state.challenger,
                "canary_weight": state.canary_weight,
                "previous_champion": state.previous_champion,
            },
            canary=canary,
            drift=drift,
            held_because=tuple(why for whys in cycle.holds.values() for why in whys),
            hold_reasons=tuple(cycle.holds),
            notes=tuple(cycle.notes),
        )
        self.last_report = report
        return report

    def verdict_for(self, champion: int, canary: int) -> dict[str, JsonValue]:
        """What the controller concluded about ``canary`` against ``champion``, read-only.

        For Argo Rollouts' web metric provider (``GET /judge``): ``promote`` once the canary
        became champion or the judge's promotion was acted on, ``rollback`` once it is
        rejected, ``inconclusive`` when the judge paused it, else ``continue`` (not judged yet,
        the judge said continue, a promotion waits for its minimum time and requests, or the
        controller cannot read the registry — then ``holding`` says why). Final answers come
        from the registry, so a restarted controller gives them too.
        """
        look = self._canary.last_look.get((champion, canary))
        answer: dict[str, JsonValue] = {
            "champion": champion,
            "canary": canary,
            "verdict": "continue",
            "window": None if look is None else look.window,
            "reason": "not judged yet" if look is None else look.reason,
            "holding": None,
        }
        if look is not None and look.action in _ACTION_VERDICTS:
            answer["verdict"] = _ACTION_VERDICTS[look.action]
            return answer
        try:
            if self.registry.version(canary).rejected:
                answer.update(verdict="rollback", reason=f"version {canary} is rejected")
            elif self.registry.state().champion == canary:
                answer.update(verdict="promote", reason=f"version {canary} is the champion")
        except (ModelNotFoundError, VersionNotFoundError) as exc:
            answer.update(verdict="unknown", reason=str(exc))
        except RegistryError as exc:
            answer["holding"] = f"cannot read the registry: {exc}"
        return answer

    def _read_state(self, cycle: Cycle) -> DeploymentState | None:
        try:
            self.registry.reconcile()
            return self.registry.state()
        except ModelNotFoundError:
            cycle.note(
                f"model {self.registry.model_name!r} is not registered yet: nothing to watch"
            )
        except RegistryError as exc:
            cycle.hold("registry_unreachable", f"cannot read the deployment: {exc}")
        return None

    def _publish_idle(self, state: DeploymentState) -> None:
        """No canary takes traffic: publish what became of the latest one."""
        self.metrics.clear_signals()
        try:
            outcome = self._latest_outcome(state)
        except RegistryError as exc:
            logger.debug("cannot read the latest canary outcome: %s", exc)
            return
        if outcome is not None:
            self.metrics.set_canary_state(*outcome)

    def _latest_outcome(self, state: DeploymentState) -> tuple[str, CanaryState] | None:
        events = self.registry.events
        name = self.registry.model_name
        if state.challenger is not None:
            paused = events.last(name, Action.CANARY)
            if (
                paused is not None
                and paused.state.challenger == state.challenger
                and paused.details.get("outcome") == "paused"
            ):
                return str(state.challenger), "paused"
        rejected = events.last(name, Action.REJECT)
        promoted = events.last(name, Action.PROMOTE)
        latest = max(
            (e for e in (rejected, promoted) if e is not None), key=lambda e: e.id, default=None
        )
        if latest is None:
            return None
        if latest.action is Action.PROMOTE and latest.to_version is not None:
            return str(latest.to_version), "promoted"
        if latest.action is Action.REJECT and latest.alias is not None and latest.from_version:
            return str(latest.from_version), "rolled_back"
        return None

    def handle_alerts(self, alerts: Sequence[AlertNotice]) -> list[AlertOutcome]:
        """Act on one Alertmanager notification: look at the live canary now, or trip the breaker.

        See :meth:`~monitoring.controller.alert_handler.AlertHandler.handle`: only the judge
        decides, except for the circuit breaker; repeats of a notification change nothing.

        Raises:
            RegistryError: If the registry cannot be read (the webhook answers 503 and
                Alertmanager retries).
        """
        return self._alerts.handle(alerts)
