"""The live canary's watch: judge it once per window (or on an alert) and act on the verdict.

:meth:`CanaryWatch.step` is the loop's part: when the canary started, how many judge windows
have completed, and whether the latest one was judged. :meth:`CanaryWatch.judge_now` is the one
path from data to a move, for the loop and for an alert alike: evidence from the inference log
(or the metrics source's counters when the log cannot say it), the judge's verdict, and the
registry move it asks for, as one deployment event carrying the verdict and its numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from interfaces.routing import CANARY, Variant
from monitoring.controller.alerts import AlertNotice
from monitoring.controller.evidence import LiveEvidence
from monitoring.controller.reports import CanaryReport, Cycle, deciding_signals
from monitoring.judge import CanaryJudge, JudgeInputError, JudgeResult, Verdict
from monitoring.judge.counters import VariantCounts
from monitoring.metrics import CanaryState, ControllerMetrics
from monitoring.settings import MonitorSettings
from monitoring.sources.base import LogSource, MetricsSource, SourceUnavailable
from registry import (
    DeploymentEvent,
    DeploymentState,
    EventStatus,
    JsonValue,
    ModelRegistry,
    RegistryError,
    StaleStateError,
)

__all__ = ["CanaryWatch", "FinishedHook", "canary_started_at"]

_HISTORY_DEPTH: Final = 500
"""Events read back to find when the canary started (a canary rarely has more than a few)."""

FinishedHook = Callable[[int, datetime, datetime, str], None]
"""Called with (version, started, ended, why) once a canary's verdict was acted on."""


def canary_started_at(events: Sequence[DeploymentEvent], version: int) -> datetime | None:
    """When ``version`` last started taking traffic as the challenger.

    Args:
        events: Applied events of the model, newest first.
        version: The canary's version.

    Returns:
        The time of the oldest event in the unbroken run of newest events in which ``version``
        is the challenger with a positive weight (a ramp-up keeps the start; a pause and a
        resume start afresh), or ``None`` if the newest event is not such an event.
    """
    start: datetime | None = None
    for event in events:
        state = event.state
        if state.challenger != version or state.canary_weight <= 0:
            break
        start = event.applied_at or event.created_at
    return start


@dataclass(frozen=True)
class _Judged:
    """One answer of the judge about the live canary, ready to become its report."""

    version: int
    champion: int | None
    started: datetime
    window: int
    result: JudgeResult
    counts: dict[str, dict[str, int]]
    trigger: str
    signals: tuple[str, ...]

    def report(
        self,
        state: CanaryState = "observing",
        *,
        reason: str | None = None,
        action: str | None = None,
        event_id: int | None = None,
    ) -> CanaryReport:
        return CanaryReport(
            self.version, self.champion, self.started, self.window, state, self.result.verdict,
            self.result.reason if reason is None else reason, action=action, event_id=event_id,
            counts=self.counts, judgement=self.result.to_dict(), triggered_by=self.trigger,
            signals=self.signals,
        )  # fmt: skip


class CanaryWatch:
    """Judges the live canary and moves the registry on the verdict.

    Args:
        registry: The model registry (its moves are compare-and-set and idempotent).
        metrics_source: Requests, errors and latency per variant.
        log_source: Scores, labels and the judge's rows from the inference log.
        judge: The canary judge.
        metrics: Where the verdicts and canary states are published.
        settings: Judge windows and promotion minimums.
        on_finished: Called once a verdict was acted on (the canary's drift report is due).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        metrics_source: MetricsSource,
        log_source: LogSource,
        judge: CanaryJudge,
        metrics: ControllerMetrics,
        settings: MonitorSettings,
        on_finished: FinishedHook,
    ) -> None:
        self.registry = registry
        self.metrics_source = metrics_source
        self.log_source = log_source
        self.judge = judge
        self.metrics = metrics
        self.settings = settings
        self._on_finished = on_finished
        # The window index each canary was last judged at, by the loop and on an alert.
        self.judged: dict[int, int] = {}
        self.alert_looked: dict[int, int] = {}
        # The last look the judge took at each (champion, canary) pair, for GET /judge.
        self.last_look: dict[tuple[int, int], CanaryReport] = {}
        self._evidence = LiveEvidence(log_source, settings)

    def started_at(self, version: int) -> datetime | None:
        """When ``version`` started taking traffic, from the event log (see the function)."""
        events = self.registry.events.history(
            self.registry.model_name, _HISTORY_DEPTH, status=EventStatus.APPLIED
        )
        return canary_started_at(events, version)

    def window_index(self, started: datetime, now: datetime) -> int:
        """Judge windows completed since the canary started."""
        elapsed = (now - started).total_seconds()
        return math.floor(elapsed / self.settings.judge_window_seconds)

    def step(self, state: DeploymentState, cycle: Cycle) -> CanaryReport:
        """The loop's look at the live canary: judge the latest completed window, once."""
        version = state.challenger
        assert version is not None  # canary_active
        now = cycle.started_at
        self.metrics.set_canary_state(str(version), "observing")

        def report(
            reason: str, *, window: int = 0, started: datetime | None = None
        ) -> CanaryReport:
            return CanaryReport(version, state.champion, started, window, "observing", None, reason)

        if state.champion is None:
            return report("no champion to compare the canary with; waiting for one")
        try:
            started = self.started_at(version)
        except RegistryError as exc:
            cycle.hold("registry_unreachable", f"cannot read when canary {version} started: {exc}")
            return report(f"holding: {exc}")
        if started is None:
            why = f"the event log does not say when canary {version} started taking traffic"
            cycle.hold("registry_unreachable", why)
            return report(f"holding: {why}")
        elapsed = (now - started).total_seconds()
        window = self.window_index(started, now)
        try:
            # Every cycle, not only when judging: an outage shows at once, and a scraping
            # source keeps its counters current (its zero is the first scrape of the canary).
            counts = self.metrics_source.counts(state.champion, version, started, now)
        except SourceUnavailable as exc:
            cycle.hold(exc.hold_reason, f"cannot judge canary {version}: {exc}")
            return report(f"holding: {exc}", window=window, started=started)
        if window < 1:
            return report(
                f"first judge window not complete ({elapsed:.0f} of "
                f"{self.settings.judge_window_seconds:g} s)",
                started=started,
            )
        if self.judged.get(version) == window:
            return report(f"window {window} already judged", window=window, started=started)

        def mark() -> None:
            self.judged[version] = window

        return self.judge_now(
            state, version, started, window, counts, cycle, f"window {window}", mark
        )

    def judge_now(
        self,
        state: DeploymentState,
        version: int,
        started: datetime,
        window: int,
        counts: Mapping[Variant, VariantCounts],
        cycle: Cycle,
        trigger: str,
        mark: Callable[[], None],
        alerts: Sequence[AlertNotice] = (),
    ) -> CanaryReport:
        """Judge the live canary on the data up to now, numbered ``window``, and act on it.

        The one path from data to a move: the loop calls it once per completed window, an alert
        calls it for an extra look. Scores and labels come from the inference log over the
        canary's whole life, counts from the metrics source (read by the caller),
        :meth:`CanaryJudge.evaluate` decides and :meth:`_act` moves the registry.

        Args:
            state: The deployment as read.
            version: The canary's version.
            started: When it started taking traffic.
            window: The window index the judge is told (its minimum-duration and window-cap
                rules, and any per-look budget, count in these).
            counts: Requests, errors and latency per variant since ``started``.
            cycle: Collects holds and notes.
            trigger: What asked for the look (``window k`` or ``alert <name>``), for the event.
            mark: Called once the judge has answered (records that this look was spent).
            alerts: The alerts that asked for the look, if any (kept in the event).
        """
        champion = state.champion
        assert champion is not None  # callers check
        try:
            evidence, source = self._evidence.gather(
                champion, version, started, window, counts, cycle
            )
            result = self.judge.evaluate(evidence, window=window)
        except SourceUnavailable as exc:
            cycle.hold(exc.hold_reason, f"cannot judge canary {version}: {exc}")
            reason = f"holding: {exc}"
        except (JudgeInputError, ValueError) as exc:
            cycle.hold("stale_metrics", f"inconsistent data for canary {version}: {exc}")
            reason = f"holding: {exc}"
        else:
            mark()
            self.metrics.record_judgement(result)
            judged = _Judged(
                version, champion, started, window, result,
                {v: c.to_dict() for v, c in counts.items()}, trigger, deciding_signals(result),
            )  # fmt: skip
            acted = self._act(state, judged, cycle, alerts, source)
            self.last_look[(champion, version)] = acted
            return acted
        return CanaryReport(
            version, champion, started, window, "observing", None, reason, triggered_by=trigger
        )

    def _act(
        self,
        state: DeploymentState,
        judged: _Judged,
        cycle: Cycle,
        alerts: Sequence[AlertNotice],
        source: str,
    ) -> CanaryReport:
        """Move the registry as the verdict asks: reject, promote (once allowed) or pause."""
        result, version = judged.result, judged.version
        details, evidence, judge = self._event(judged, alerts, source)
        if result.verdict is Verdict.ROLLBACK:
            return self._move(
                judged, cycle, "rolled_back", "rejected",
                lambda: self.registry.reject(
                    version, reason=f"{judge}: {result.reason}", evidence=evidence,
                    details={**details, "outcome": "rolled_back"},
                ),
            )  # fmt: skip
        if result.verdict is Verdict.PROMOTE:
            elapsed = (cycle.started_at - judged.started).total_seconds()
            waiting = self._promotion_wait(elapsed, judged.counts[CANARY]["requests"])
            if waiting:
                return judged.report(reason=f"the judge would promote, but {waiting}")
            return self._move(
                judged, cycle, "promoted", "promoted",
                lambda: self.registry.promote(
                    version, reason=f"{judge}: {result.reason}", evidence=evidence,
                    details={**details, "outcome": "promoted"},
                    expected_champion=state.champion,
                ),
            )  # fmt: skip
        if result.verdict is Verdict.INCONCLUSIVE:
            return self._move(
                judged, cycle, "paused", "paused",
                lambda: self.registry.set_canary_weight(
                    0.0, reason=f"canary paused for a person to decide: {result.reason}",
                    evidence=evidence, details={**details, "outcome": "paused"},
                    expected_challenger=version,
                ),
            )  # fmt: skip
        return judged.report()

    def _event(
        self, judged: _Judged, alerts: Sequence[AlertNotice], source: str
    ) -> tuple[dict[str, JsonValue], str, str]:
        """The move's event: its details, its evidence line and who judged, in words."""
        result, trigger = judged.result, judged.trigger
        window_s = self.settings.judge_window_seconds
        details: dict[str, JsonValue] = {
            "decided_by": "judge",
            "signals": list(judged.signals),
            "triggered_by": trigger,
            "verdict": result.verdict.value,
            "window": judged.window,
            "judge_window_seconds": window_s,
            "canary_started_at": judged.started.isoformat(),
            "metrics_source": self.metrics_source.name,
            "evidence_source": source,
            "counts": {v: dict(c) for v, c in judged.counts.items()},
            "judgement": json.loads(json.dumps(result.to_dict())),
        }
        evidence = (
            f"canary judge, window {judged.window} of {window_s:g} s "
            f"(evidence from the {source}; counts from {self.metrics_source.name} metrics)"
        )
        judge = "canary judge"
        if alerts:
            details["alerts"] = [a.to_dict() for a in alerts]
            judge = f"canary judge (looked on {trigger})"
            evidence += "; looked on " + "; ".join(
                f"alert {a.name} fingerprint {a.fingerprint}: {a.generator_url}" for a in alerts
            )
        return details, evidence, judge

    def _move(
        self,
        judged: _Judged,
        cycle: Cycle,
        outcome: CanaryState,
        action: str,
        move: Callable[[], DeploymentEvent | None],
    ) -> CanaryReport:
        """Make one registry move for the verdict; a failed move holds and is retried."""
        version = judged.version
        verb = {"rejected": "reject", "promoted": "promote", "paused": "pause"}[action]
        try:
            event = move()
        except RegistryError as exc:
            # Judge this window again: a failed rollback must not wait a window.
            self.judged.pop(version, None)
            self.alert_looked.pop(version, None)
            if isinstance(exc, StaleStateError):
                cycle.note(f"deployment changed while judging canary {version}: {exc}")
            else:
                cycle.hold("action_failed", f"could not {verb} canary {version}: {exc}")
            return judged.report()
        if event is None:
            cycle.note(f"canary {version} was already {action}; nothing written")
        self.finished(version, outcome, judged.started, cycle.started_at, f"canary {action}")
        return judged.report(outcome, action=action, event_id=None if event is None else event.id)

    def _promotion_wait(self, elapsed: float, canary_requests: int) -> str | None:
        s = self.settings
        waits = []
        if elapsed < s.min_canary_seconds:
            waits.append(f"it has served {elapsed:.0f} of the {s.min_canary_seconds:g} s required")
        if canary_requests < s.min_canary_requests:
            waits.append(f"it has answered {canary_requests} of {s.min_canary_requests} requests")
        return " and ".join(waits) or None

    def finished(
        self, version: int, outcome: CanaryState, started: datetime, end: datetime, why: str
    ) -> None:
        """Bookkeeping after a canary's verdict was acted on (none of it is needed on restart)."""
        self.metrics.set_canary_state(str(version), outcome)
        self.judged.pop(version, None)
        self.alert_looked.pop(version, None)
        self._on_finished(version, started, end, why)
