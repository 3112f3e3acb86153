"""The monitoring controller: judge the live canary, act on the verdict, run the drift job.

One cycle (:meth:`Controller.run_once`) does, in order:

1. **Read the deployment** from the registry, after ``reconcile()`` has completed any move a
   previous process left half done. A canary is live when the ``challenger`` gets traffic.
2. **Judge the canary** once per completed judge window with
   :class:`~monitoring.judge.CanaryJudge`. Its evidence comes from the inference log
   (``monitoring/judge/log_evidence.py``): time-matched strata (one per window), clusters of routing
   keys, slices, failed rows, latency, labels, and a baseline of the champion's traffic before
   the canary split by the canary's own rule. When the log cannot say that (a table an older
   service created, a log lagging the counters), the judge falls back to the metrics source's
   cumulative counters (one stratum of independent requests), and the event says which. The
   canary's start is the applied event that gave it traffic, read from the event log, so a
   restarted controller computes the same windows.
3. **Act**: ROLLBACK → :meth:`~registry.ModelRegistry.reject` (weight 0, ``challenger``
   removed, version marked rejected); PROMOTE, once the canary has also served
   ``min_canary_seconds`` and ``min_canary_requests`` → :meth:`~registry.ModelRegistry.promote`;
   INCONCLUSIVE → the canary's weight goes to 0 with the challenger kept (paused: a person
   decides, and meanwhile nobody is served by a model whose scores moved for no visible reason);
   CONTINUE → nothing. Every action is one deployment event carrying the verdict and its numbers.
4. **Drift job**, every ``drift_interval_seconds``: each variant's recent inference-log window
   against its version's reference sample; scores exported as the serving drift gauges; input
   drift on the champion asks the retrain trigger (:class:`DriftRetrainTrigger`: the pipeline's
   ``drift`` rule, recorded, then a local command or, on Kubernetes, a Job created through the
   API, ``monitoring/retrain_job.py``), never for a rollback.
5. **Reports**: the HTML drift report of a canary's whole window is written when its verdict is
   acted on and attached to its training run; a champion's when a drift episode starts.

**Restart safety.** Nothing the controller decides lives only in its memory: the canary's start
comes from the event log, Prometheus counts from the canary's start, and the registry's moves
are compare-and-set and no-ops once done. A controller killed right after a move and started
again finds the canary gone (rejected or promoted) and writes nothing; killed inside a move, its
successor's ``reconcile()`` completes it. Either way there is exactly one event per verdict.

**Fail-safe.** If the registry, the metrics or the inference log cannot be read the controller
*holds*: it neither promotes nor rolls back on partial data, sets
``mlplat_controller_holding{reason}`` (alert ``ControllerHolding``) and says why in the cycle
report.

**One decision-maker.** Alertmanager's canary alerts (:meth:`Controller.handle_alerts`) are a
reason to look *now*, not a verdict. ``CanaryDegraded`` makes the controller judge the live
canary at once, through the very path of a window's judgement (:meth:`Controller._judge_now`:
same sources, same :meth:`~monitoring.judge.CanaryJudge.evaluate`, same action on the verdict);
if the judge says *continue*, nothing moves. The look is numbered with the current window
index ``k`` (completed windows, at least 1) on the data up to now, so it never shifts the
window schedule, hurries a promotion (``min_windows_before_promote``) or brings the window cap
closer; the loop still judges every window. Alerts add at most one look per window index, so
any part of the judge that spends its error budget per look spends at most twice its budget;
the bounds that roll back are anytime-valid and pay nothing for the extra look. The one
exception is the **circuit breaker** (an alert labelled ``breaker="true"``,
``CanaryCircuitBreaker``): a catastrophic failure that needs no statistics (half of at least 50
canary requests failing on the server side in 5 minutes, its false-trip rate is in the rule),
which rolls back without the judge and works while the controller holds. Every event says who
decided (``decided_by``: ``judge`` or ``circuit_breaker``), on which signals, and what
triggered the look (``triggered_by``: ``window k`` or ``alert <name>``).
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from interfaces.files import write_json_atomically
from interfaces.routing import CANARY, CHAMPION, Variant
from monitoring.drift import DriftDetector, DriftError, DriftResult, recommend
from monitoring.judge import (
    CanaryJudge,
    CanaryObservation,
    Decision,
    JudgeInputError,
    JudgeResult,
    Verdict,
)
from monitoring.judge.counters import VariantCounts, build_observation, tail_threshold
from monitoring.judge.evidence import CanaryEvidence
from monitoring.judge.log_evidence import (
    BaselineRows,
    LogEvidenceParams,
    UnusableLog,
    build_evidence,
    prepare_baseline,
)
from monitoring.metrics import (
    AlertAction,
    AlertDecider,
    CanaryState,
    ControllerMetrics,
    HoldReason,
)
from monitoring.sources.base import (
    JudgeLogSource,
    LogSource,
    MetricsSource,
    ReferenceNotFound,
    SourceUnavailable,
)
from registry import (
    Action,
    DeploymentEvent,
    DeploymentState,
    EventStatus,
    JsonValue,
    ModelNotFoundError,
    ModelRegistry,
    RegistryError,
    StaleStateError,
    VersionNotFoundError,
)

if TYPE_CHECKING:
    import pandas as pd

    from monitoring.settings import MonitorSettings

__all__ = [
    "BREAKER_LABEL",
    "AlertNotice",
    "AlertOutcome",
    "CanaryReport",
    "Clock",
    "Controller",
    "CycleReport",
    "DriftReport",
    "DriftRetrainTrigger",
    "RetrainDecision",
    "RetrainRequest",
    "RetrainTrigger",
    "canary_started_at",
    "deciding_signals",
    "is_circuit_breaker",
    "utc_now",
]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware (tests pass a fake)."""

_STOP_POLL_SECONDS: Final = 0.5
"""How often a sleeping loop checks whether it was asked to stop."""

_HISTORY_DEPTH: Final = 500
"""Events read back to find when the canary started (a canary rarely has more than a few)."""

_ACTION_VERDICTS: Final[dict[str, str]] = {
    "rejected": "rollback",
    "promoted": "promote",
    "paused": "inconclusive",
}
"""What an action the controller took answers on ``GET /judge``."""

_LOG_COVERAGE: Final = 0.8
"""Share of the counted canary rows the inference log must hold to be judged from."""

_LOG_COVERAGE_MIN_ROWS: Final = 50
"""Counted canary rows below which the log's coverage is not checked (flush lag dominates)."""


def utc_now() -> datetime:
    """The current time in UTC (the default :data:`Clock`)."""
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# --- reports ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CanaryReport:
    """What one cycle saw and did about the live canary.

    Attributes:
        version: The canary's model version.
        champion: The champion it is compared with.
        started_at: When it started taking traffic (from the event log), if known.
        window: Completed judge windows since then.
        state: ``observing``, ``paused``, ``promoted`` or ``rolled_back`` after this cycle.
        verdict: The judge's verdict, or ``None`` if it did not judge this cycle.
        reason: Why, in words.
        action: ``rejected``, ``promoted`` or ``paused`` when the registry was moved.
        event_id: The deployment event written, if one was.
        counts: Requests and errors per variant behind the verdict.
        judgement: The judge's full result (every signal's numbers), if it judged.
        triggered_by: What asked the judge to look: ``window k`` (the loop) or ``alert <name>``.
        signals: The signals behind the verdict (:func:`deciding_signals`).
    """

    version: int
    champion: int | None
    started_at: datetime | None
    window: int
    state: CanaryState
    verdict: Verdict | None
    reason: str
    action: str | None = None
    event_id: int | None = None
    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    judgement: Mapping[str, object] | None = None
    triggered_by: str | None = None
    signals: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form."""
        return {
            "version": self.version,
            "champion": self.champion,
            "started_at": _iso(self.started_at),
            "window": self.window,
            "state": self.state,
            "verdict": None if self.verdict is None else self.verdict.value,
            "reason": self.reason,
            "action": self.action,
            "event_id": self.event_id,
            "counts": {k: dict(v) for k, v in self.counts.items()},
            "judgement": None if self.judgement is None else dict(self.judgement),
            "triggered_by": self.triggered_by,
            "signals": list(self.signals),
        }


@dataclass(frozen=True)
class DriftReport:
    """One variant's drift check in one cycle.

    Attributes:
        variant: ``champion`` or ``canary``.
        version: The model version whose traffic was checked.
        status: ``ok``, ``drift``, ``insufficient-data`` or ``error``.
        rows: Rows in the window.
        reason: The check's sentence, or the error.
        share_drifted: Share of features that drifted.
        drifted_features: Which ones.
        recommendation: What the drift policy asks for (:func:`monitoring.drift.recommend`).
        report_path: The HTML report written this cycle, if one was.
        retrain: The retrain trigger's decision, if it was asked.
    """

    variant: Variant
    version: int
    status: str
    rows: int
    reason: str
    share_drifted: float = 0.0
    drifted_features: tuple[str, ...] = ()
    recommendation: Mapping[str, object] | None = None
    report_path: str | None = None
    retrain: Mapping[str, object] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form."""
        return {
            "variant": self.variant,
            "version": self.version,
            "status": self.status,
            "rows": self.rows,
            "reason": self.reason,
            "share_drifted": self.share_drifted,
            "drifted_features": list(self.drifted_features),
            "recommendation": None if self.recommendation is None else dict(self.recommendation),
            "report_path": self.report_path,
            "retrain": None if self.retrain is None else dict(self.retrain),
        }


@dataclass(frozen=True)
class CycleReport:
    """Everything one cycle saw, decided and did (``GET /status``, ``mlplat monitor --once``).

    Attributes:
        started_at: When the cycle began.
        finished_at: When it ended.
        model_name: The registered model watched.
        deployment: Champion, challenger and weight as read, if the registry answered.
        canary: The canary's judgement, if a canary was live.
        drift: The drift checks run this cycle (empty when the job was not due).
        held_because: Why the controller held, one sentence per cause (empty: not holding).
        hold_reasons: The same as ``mlplat_controller_holding`` reason labels.
        notes: Other things worth knowing (reports written, moves already done…).
    """

    started_at: datetime
    finished_at: datetime
    model_name: str
    deployment: Mapping[str, object] | None
    canary: CanaryReport | None
    drift: tuple[DriftReport, ...]
    held_because: tuple[str, ...]
    hold_reasons: tuple[HoldReason, ...]
    notes: tuple[str, ...]

    @property
    def held(self) -> bool:
        """Whether the controller held (fail-safe) this cycle."""
        return bool(self.held_because)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form."""
        return {
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "model_name": self.model_name,
            "deployment": None if self.deployment is None else dict(self.deployment),
            "canary": None if self.canary is None else self.canary.to_dict(),
            "drift": [d.to_dict() for d in self.drift],
            "held": self.held,
            "held_because": list(self.held_because),
            "hold_reasons": list(self.hold_reasons),
            "notes": list(self.notes),
        }


@dataclass
class _Cycle:
    """What a cycle collects on its way; frozen into a :class:`CycleReport` at the end."""

    started_at: datetime
    deployment: DeploymentState | None = None
    holds: dict[HoldReason, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def hold(self, reason: HoldReason, why: str) -> None:
        logger.warning("holding (%s): %s", reason, why)
        self.holds.setdefault(reason, []).append(why)

    def note(self, text: str) -> None:
        logger.info("%s", text)
        self.notes.append(text)


# --- alerts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertNotice:
    """One alert of an Alertmanager notification (webhook payload version 4).

    Attributes:
        status: ``firing`` or ``resolved``.
        labels: The alert's labels (``alertname``, ``component``, ``signal``…).
        annotations: Its annotations (``summary``, ``description``…).
        starts_at: When it started firing.
        fingerprint: Alertmanager's id of the alert.
        generator_url: Link to the expression in Prometheus.
    """

    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    fingerprint: str = ""
    generator_url: str = ""

    @property
    def name(self) -> str:
        """The alert's name."""
        return self.labels.get("alertname", "unnamed alert")

    def to_dict(self) -> dict[str, JsonValue]:
        """Return a JSON-serialisable form (stored in the event's details)."""
        return {
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "starts_at": self.starts_at.isoformat(),
            "fingerprint": self.fingerprint,
            "generator_url": self.generator_url,
        }


@dataclass(frozen=True)
class AlertOutcome:
    """What the controller did about one alert.

    Attributes:
        alertname: The alert's name.
        fingerprint: Its fingerprint.
        action: What it led to (:data:`monitoring.metrics.ALERT_ACTIONS`): ``rolled_back``,
            ``paused``, ``promoted``, ``unchanged`` (judged, nothing moved), ``held`` (the judge
            could not be asked, or the move failed) or ``ignored``.
        reason: Why, in words.
        version: The canary version concerned, if any.
        event_id: The deployment event written, if one was.
        decided_by: ``judge``, ``circuit_breaker`` or ``none``.
        verdict: The judge's verdict, when it was asked.
        window: The window index the judge looked at, when it was asked.
        signals: The signals that decided (the judge's, or the breaker's ``signal`` label).
    """

    alertname: str
    fingerprint: str
    action: AlertAction
    reason: str
    version: int | None = None
    event_id: int | None = None
    decided_by: AlertDecider = "none"
    verdict: Verdict | None = None
    window: int | None = None
    signals: tuple[str, ...] = ()

    @property
    def outcome(self) -> str:
        """The outcome in a few words: ``judged: continue``, ``circuit breaker: rolled_back``."""
        if self.decided_by == "judge" and self.verdict is not None:
            return f"judged: {self.verdict.value}"
        if self.decided_by == "circuit_breaker":
            return f"circuit breaker: {self.action}"
        return self.action

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form."""
        return {
            "alertname": self.alertname,
            "fingerprint": self.fingerprint,
            "outcome": self.outcome,
            "action": self.action,
            "decided_by": self.decided_by,
            "verdict": None if self.verdict is None else self.verdict.value,
            "window": self.window,
            "signals": list(self.signals),
            "reason": self.reason,
            "version": self.version,
            "event_id": self.event_id,
        }


def _ignored(alert: AlertNotice, why: str, version: int | None = None) -> AlertOutcome:
    return AlertOutcome(alert.name, alert.fingerprint, "ignored", why, version)


def _held(alert: AlertNotice, why: str, version: int) -> AlertOutcome:
    return AlertOutcome(alert.name, alert.fingerprint, "held", why, version)


_ALERT_ACTION: Final[Mapping[str, AlertAction]] = {
    "rejected": "rolled_back",
    "promoted": "promoted",
    "paused": "paused",
}
""":attr:`CanaryReport.action` to :attr:`AlertOutcome.action`."""

BREAKER_LABEL: Final = "breaker"
"""An alert labelled ``breaker="true"`` is the circuit breaker: acted on without the judge."""


def is_circuit_breaker(alert: AlertNotice) -> bool:
    """Whether ``alert`` is the circuit breaker (``breaker="true"``), which skips the judge."""
    return alert.labels.get(BREAKER_LABEL) == "true"


def deciding_signals(result: JudgeResult) -> tuple[str, ...]:
    """The signals behind a verdict, by name (the judge's list, whatever signals it has).

    ROLLBACK: those confidently worse. PROMOTE: those shown not worse (or better). INCONCLUSIVE:
    those worse if any (a trade-off, a moved distribution), else those still open at the window
    cap. CONTINUE: none decided.
    """
    wanted: tuple[Decision, ...]
    if result.verdict is Verdict.PROMOTE:
        wanted = (Decision.NOT_WORSE, Decision.BETTER)
    elif result.verdict in (Verdict.ROLLBACK, Verdict.INCONCLUSIVE):
        wanted = (Decision.WORSE,)
    else:
        return ()
    names = tuple(str(s.name) for s in result.signals if s.decision in wanted)
    if names or result.verdict is not Verdict.INCONCLUSIVE:
        return names
    return tuple(
        str(s.name)
        for s in result.signals
        if s.decision not in (Decision.NOT_WORSE, Decision.BETTER)
    )


# --- retraining ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrainRequest:
    """Input drift on the champion, as the retrain trigger sees it.

    Attributes:
        model_version: The champion whose inputs drifted.
        drift_share: Share of its features that drifted.
        drifted_features: Which ones.
        severity: ``warning`` or ``critical`` (broad drift: check upstream first).
        reasons: The drift policy's sentences.
        evidence: Path of the drift report, if one was written.
        at: When the drift was seen.
    """

    model_version: int
    drift_share: float
    drifted_features: tuple[str, ...]
    severity: str
    reasons: tuple[str, ...]
    evidence: str | None
    at: datetime


@dataclass(frozen=True)
class RetrainDecision:
    """Whether the retrain trigger fired, and why.

    Attributes:
        fire: Whether a retraining run was asked for.
        reason: Why, in words.
        details: The numbers and what was started.
    """

    fire: bool
    reason: str
    details: Mapping[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-serialisable form."""
        return {"fire": self.fire, "reason": self.reason, **self.details}


class RetrainTrigger(Protocol):
    """Decides (and possibly starts) a retraining run for champion drift."""

    def __call__(self, request: RetrainRequest) -> RetrainDecision:
        """Apply the drift training trigger to ``request``."""
        ...


class DriftRetrainTrigger:
    """The pipeline's ``drift`` trigger rule (``ci/triggers.py::drift``), recorded durably.

    Retraining takes minutes and belongs to the pipeline, not to a loop that must roll canaries
    back within seconds, so this trigger only *decides*: it applies the rule (threshold and
    cool-down), records the decision in ``state_file`` (atomically: temp file and rename; the
    last fire time survives restarts, so the cool-down does too), and, when it fires and a
    ``command`` is configured, starts that command detached and does not wait for it
    (``mlplat pipeline trigger drift …`` applies the same rule again and runs the pipeline).

    Args:
        state_file: JSON file holding the last fire time and the recent decisions.
        threshold: Share of drifted features that asks for a retrain.
        cooldown: Minimum time between two drift-triggered runs.
        command: Program and arguments to start when it fires; ``{drift_share}`` and
            ``{evidence}`` are replaced. ``None``: only record the decision.
    """

    _KEEP: Final = 100

    def __init__(
        self,
        state_file: Path,
        threshold: float,
        cooldown: timedelta,
        command: Sequence[str] | None = None,
    ) -> None:
        self.state_file = state_file
        self.threshold = threshold
        self.cooldown = cooldown
        self.command = tuple(command) if command else None
        self._children: list[subprocess.Popen[bytes]] = []

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"last_fired_at": None, "decisions": []}
        except (OSError, ValueError) as exc:
            logger.warning(
                "retrain trigger: unreadable %s (%s); starting afresh", self.state_file, exc
            )
            return {"last_fired_at": None, "decisions": []}
        return data if isinstance(data, dict) else {"last_fired_at": None, "decisions": []}

    def _save(self, data: Mapping[str, Any]) -> None:
        write_json_atomically(self.state_file, data)

    def __call__(self, request: RetrainRequest) -> RetrainDecision:
        """Apply the rule, record the decision and start the command if it fires."""
        from ci.triggers import drift  # the pipeline's rule; imported only when drift is seen

        self._children = [child for child in self._children if child.poll() is None]
        data = self._load()
        last = data.get("last_fired_at")
        last_fired = datetime.fromisoformat(last) if isinstance(last, str) else None
        decision = drift(
            request.drift_share,
            self.threshold,
            last_fired,
            self.cooldown,
            now=request.at,
            evidence=request.evidence,
        )
        started: list[str] | None = None
        if decision.fire:
            data["last_fired_at"] = request.at.isoformat()
            if self.command is not None:
                started = self._start(request)
        record = {
            "at": request.at.isoformat(),
            "model_version": request.model_version,
            "drifted_features": list(request.drifted_features),
            "severity": request.severity,
            **decision.to_dict(),
            "command": started,
        }
        decisions = list(data.get("decisions") or [])
        data["decisions"] = [*decisions, record][-self._KEEP :]
        self._save(data)
        return RetrainDecision(decision.fire, decision.reason, record)

    def _start(self, request: RetrainRequest) -> list[str]:
        assert self.command is not None
        values = {"drift_share": f"{request.drift_share:.4f}", "evidence": request.evidence or ""}
        argv = [part.format(**values) for part in self.command]
        log = self.state_file.with_name("retrain.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            # Detached, in its own session: a controller restart must not kill the training run.
            child = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self._children.append(child)
        logger.info("retrain trigger fired: started %s (pid %d)", argv, child.pid)
        return argv


# --- the controller -----------------------------------------------------------------------------


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
class _ReportJob:
    variant: Variant
    version: int
    start: datetime
    end: datetime
    attach: bool
    why: str


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
        # The window index each canary was last judged at, by the loop and on an alert.
        self._judged: dict[int, int] = {}
        self._alert_looked: dict[int, int] = {}
        # The last look the judge took at each (champion, canary) pair, for GET /judge.
        self._last_look: dict[tuple[int, int], CanaryReport] = {}
        # Set when an alert moved the registry: the loop runs its next cycle at once.
        self._wake = threading.Event()
        self._detectors: dict[int, DriftDetector] = {}
        self._drifting: dict[tuple[Variant, int], bool] = {}
        self._next_drift_at: datetime | None = None
        self._reports: list[_ReportJob] = []
        self._reports_lock = threading.Lock()
        # The baseline of the live canary, salted once: (champion, canary, started) -> rows.
        self._baseline: tuple[tuple[int, int, datetime], BaselineRows] | None = None

    def __repr__(self) -> str:
        return (
            f"Controller({self.registry.model_name!r}, metrics={self.metrics_source!r}, "
            f"log={self.log_source!r})"
        )

    def close(self) -> None:
        """Release the sources' connections."""
        self.metrics_source.close()
        self.log_source.close()

    # -- the loop --------------------------------------------------------------------------

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
        cycle = _Cycle(self.clock())
        canary: CanaryReport | None = None
        with self._lock:
            state = self._read_state(cycle)
            cycle.deployment = state
            if state is not None:
                if state.canary_active:
                    canary = self._canary_step(state, cycle)
                else:
                    self._publish_idle(state)
        drift: tuple[DriftReport, ...] = ()
        if state is not None and self._drift_due(cycle.started_at):
            drift = self._drift_job(state, canary, cycle)
        self._write_reports(cycle)
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

    # -- the judge's answer, for a progressive-delivery engine ------------------------------

    def verdict_for(self, champion: int, canary: int) -> dict[str, JsonValue]:
        """What the controller concluded about ``canary`` against ``champion``, read-only.

        For Argo Rollouts' web metric provider (``GET /judge``): ``promote`` once the canary
        became champion or the judge's promotion was acted on, ``rollback`` once it is
        rejected, ``inconclusive`` when the judge paused it, else ``continue`` (not judged yet,
        the judge said continue, a promotion waits for its minimum time and requests, or the
        controller cannot read the registry — then ``holding`` says why). Final answers come
        from the registry, so a restarted controller gives them too.
        """
        look = self._last_look.get((champion, canary))
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

    # -- reading ---------------------------------------------------------------------------

    def _read_state(self, cycle: _Cycle) -> DeploymentState | None:
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

    def _canary_start(self, version: int) -> datetime | None:
        events = self.registry.events.history(
            self.registry.model_name, _HISTORY_DEPTH, status=EventStatus.APPLIED
        )
        return canary_started_at(events, version)

    # -- the canary ------------------------------------------------------------------------

    def _canary_step(self, state: DeploymentState, cycle: _Cycle) -> CanaryReport:
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
            started = self._canary_start(version)
        except RegistryError as exc:
            cycle.hold("registry_unreachable", f"cannot read when canary {version} started: {exc}")
            return report(f"holding: {exc}")
        if started is None:
            why = f"the event log does not say when canary {version} started taking traffic"
            cycle.hold("registry_unreachable", why)
            return report(f"holding: {why}")
        elapsed = (now - started).total_seconds()
        window = self._window_index(started, now)
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
        if self._judged.get(version) == window:
            return report(f"window {window} already judged", window=window, started=started)

        def mark() -> None:
            self._judged[version] = window

        return self._judge_now(
            state, version, started, window, counts, cycle, f"window {window}", mark
        )

    def _window_index(self, started: datetime, now: datetime) -> int:
        """Judge windows completed since the canary started."""
        elapsed = (now - started).total_seconds()
        return math.floor(elapsed / self.settings.judge_window_seconds)

    def _judge_now(
        self,
        state: DeploymentState,
        version: int,
        started: datetime,
        window: int,
        counts: Mapping[Variant, VariantCounts],
        cycle: _Cycle,
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
        now = cycle.started_at
        champion = state.champion
        assert champion is not None  # callers check

        def report(reason: str) -> CanaryReport:
            return CanaryReport(
                version, champion, started, window, "observing", None, reason,
                triggered_by=trigger,
            )  # fmt: skip

        judged: CanaryEvidence | CanaryObservation
        try:
            evidence, why = self._log_evidence(champion, version, started, now, counts)
            if evidence is not None:
                judged, source = evidence, "inference log"
            else:
                pairs: tuple[tuple[Variant, int], ...] = ((CHAMPION, champion), (CANARY, version))
                scores = {v: self.log_source.scores(v, n, started, now) for v, n in pairs}
                labelled = {v: self.log_source.labelled(v, n, started, now) for v, n in pairs}
                judged = build_observation(window, counts, scores, labelled)
                source = f"cumulative counters: {why}"
                cycle.note(f"canary {version} judged from cumulative counters: {why}")
            result = self.judge.evaluate(judged, window=window)
        except SourceUnavailable as exc:
            cycle.hold(exc.hold_reason, f"cannot judge canary {version}: {exc}")
            return report(f"holding: {exc}")
        except (JudgeInputError, ValueError) as exc:
            cycle.hold("stale_metrics", f"inconsistent data for canary {version}: {exc}")
            return report(f"holding: {exc}")
        mark()
        self.metrics.record_judgement(result)
        acted = self._act(
            state, version, started, window, result, counts, cycle, trigger, alerts, source
        )
        self._last_look[(champion, version)] = acted
        return acted

    def _log_evidence(
        self,
        champion: int,
        version: int,
        started: datetime,
        now: datetime,
        counts: Mapping[Variant, VariantCounts],
    ) -> tuple[CanaryEvidence | None, str]:
        """The judge's evidence from the inference log, or None and why the counters serve.

        Raises:
            SourceUnavailable: The log cannot be read (the caller holds).
        """
        source = self.log_source
        if not isinstance(source, JudgeLogSource):
            return None, f"{source!r} keeps no per-row routing data"
        inputs = source.judge_inputs(started, now, self.settings.baseline_seconds)
        if inputs is None:
            return None, "the inference log's table predates per-row routing data"
        rows = inputs.rows
        logged = int(((rows["variant"] == CANARY) & (rows["model_version"] == version)).sum())
        counted = counts[CANARY].requests
        if counted >= _LOG_COVERAGE_MIN_ROWS and logged < _LOG_COVERAGE * counted:
            return None, (
                f"the inference log holds {logged} of the {counted} canary rows the metrics "
                "counted (writes lagging or lost)"
            )
        params = LogEvidenceParams(window_seconds=self.settings.judge_window_seconds)
        key = (champion, version, started)
        if self._baseline is None or self._baseline[0] != key:
            baseline = prepare_baseline(inputs.baseline, champion=champion, canary=version)
            self._baseline = (key, baseline)
        try:
            evidence = build_evidence(
                rows, inputs.labels, self._baseline[1],
                champion=champion, canary=version,
                started=started.timestamp(), now=now.timestamp(), params=params,
                tail_threshold_s=tail_threshold(counts[CHAMPION]),
            )  # fmt: skip
        except UnusableLog as exc:
            return None, str(exc)
        return evidence, ""

    def _act(
        self,
        state: DeploymentState,
        version: int,
        started: datetime,
        window: int,
        result: JudgeResult,
        counts: Mapping[Variant, VariantCounts],
        cycle: _Cycle,
        trigger: str,
        alerts: Sequence[AlertNotice] = (),
        source: str = "inference log",
    ) -> CanaryReport:
        now = cycle.started_at
        elapsed = (now - started).total_seconds()
        count_view: dict[str, dict[str, int]] = {v: c.to_dict() for v, c in counts.items()}
        decided = deciding_signals(result)
        details: dict[str, JsonValue] = {
            "decided_by": "judge",
            "signals": list(decided),
            "triggered_by": trigger,
            "verdict": result.verdict.value,
            "window": window,
            "judge_window_seconds": self.settings.judge_window_seconds,
            "canary_started_at": started.isoformat(),
            "metrics_source": self.metrics_source.name,
            "evidence_source": source,
            "counts": {v: dict(c) for v, c in count_view.items()},
            "judgement": json.loads(json.dumps(result.to_dict())),
        }
        evidence = (
            f"canary judge, window {window} of {self.settings.judge_window_seconds:g} s "
            f"(evidence from the {source}; counts from {self.metrics_source.name} metrics)"
        )
        judge = "canary judge"
        if alerts:
            details["alerts"] = [a.to_dict() for a in alerts]
            judge = f"canary judge (looked on {trigger})"
            evidence += "; looked on " + "; ".join(
                f"alert {a.name} fingerprint {a.fingerprint}: {a.generator_url}" for a in alerts
            )
        base = CanaryReport(
            version, state.champion, started, window, "observing", result.verdict, result.reason,
            counts=count_view, judgement=result.to_dict(), triggered_by=trigger, signals=decided,
        )  # fmt: skip

        def moved(
            outcome: CanaryState, action: str, move: Callable[[], DeploymentEvent | None]
        ) -> CanaryReport:
            verb = {"rejected": "reject", "promoted": "promote", "paused": "pause"}[action]
            try:
                event = move()
            except RegistryError as exc:
                # Judge this window again: a failed rollback must not wait a window.
                self._judged.pop(version, None)
                self._alert_looked.pop(version, None)
                if isinstance(exc, StaleStateError):
                    cycle.note(f"deployment changed while judging canary {version}: {exc}")
                else:
                    cycle.hold("action_failed", f"could not {verb} canary {version}: {exc}")
                return base
            if event is None:
                cycle.note(f"canary {version} was already {action}; nothing written")
            self._finished(version, outcome, started, now, f"canary {action}")
            return CanaryReport(
                version, state.champion, started, window, outcome, result.verdict, result.reason,
                action=action, event_id=None if event is None else event.id,
                counts=count_view, judgement=result.to_dict(), triggered_by=trigger,
                signals=decided,
            )  # fmt: skip

        if result.verdict is Verdict.ROLLBACK:
            return moved(
                "rolled_back",
                "rejected",
                lambda: self.registry.reject(
                    version,
                    reason=f"{judge}: {result.reason}",
                    evidence=evidence,
                    details={**details, "outcome": "rolled_back"},
                ),
            )
        if result.verdict is Verdict.PROMOTE:
            waiting = self._promotion_wait(elapsed, counts[CANARY].requests)
            if waiting:
                return CanaryReport(
                    version, state.champion, started, window, "observing", result.verdict,
                    f"the judge would promote, but {waiting}", counts=count_view,
                    judgement=result.to_dict(), triggered_by=trigger, signals=decided,
                )  # fmt: skip
            return moved(
                "promoted",
                "promoted",
                lambda: self.registry.promote(
                    version,
                    reason=f"{judge}: {result.reason}",
                    evidence=evidence,
                    details={**details, "outcome": "promoted"},
                    expected_champion=state.champion,
                ),
            )
        if result.verdict is Verdict.INCONCLUSIVE:
            return moved(
                "paused",
                "paused",
                lambda: self.registry.set_canary_weight(
                    0.0,
                    reason=f"canary paused for a person to decide: {result.reason}",
                    evidence=evidence,
                    details={**details, "outcome": "paused"},
                    expected_challenger=version,
                ),
            )
        return base

    def _promotion_wait(self, elapsed: float, canary_requests: int) -> str | None:
        s = self.settings
        waits = []
        if elapsed < s.min_canary_seconds:
            waits.append(f"it has served {elapsed:.0f} of the {s.min_canary_seconds:g} s required")
        if canary_requests < s.min_canary_requests:
            waits.append(f"it has answered {canary_requests} of {s.min_canary_requests} requests")
        return " and ".join(waits) or None

    def _finished(
        self, version: int, outcome: CanaryState, started: datetime, end: datetime, why: str
    ) -> None:
        """Bookkeeping after a canary's verdict was acted on (none of it is needed on restart)."""
        self.metrics.set_canary_state(str(version), outcome)
        self._judged.pop(version, None)
        self._alert_looked.pop(version, None)
        with self._reports_lock:
            self._reports.append(_ReportJob(CANARY, version, started, end, True, why))

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

    # -- Alertmanager ----------------------------------------------------------------------

    def handle_alerts(self, alerts: Sequence[AlertNotice]) -> list[AlertOutcome]:
        """Act on one Alertmanager notification: look at the live canary now, or trip the breaker.

        A firing ``component="canary"`` alert asks the judge to look at the live canary *now*
        (:meth:`_judge_now`, the path of every window's judgement); all such alerts of one
        notification share one look, and alerts add at most one look per window index (a later
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
                outcomes.append(_ignored(alert, f"{alert.status} notifications change nothing"))
            elif alert.labels.get("component") != "canary":
                outcomes.append(_ignored(alert, "not a canary alert (component is not 'canary')"))
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
            return _ignored(
                alert, "no canary takes traffic (already rolled back, paused or promoted)"
            )
        started = self._canary_start(version)
        why = self._stale(alert, version, started, need_version=True)
        if why is not None:
            return _ignored(alert, why, version)
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
                "canary_started_at": _iso(started),
                "alert": alert.to_dict(),
            },
        )
        self._finished(version, "rolled_back", started or now, now, f"circuit breaker {alert.name}")
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
            return [_ignored(a, why) for a in alerts]
        if state.champion is None:
            return [_ignored(a, "no champion to compare the canary with", version) for a in alerts]
        started = self._canary_start(version)
        outcomes: dict[int, AlertOutcome] = {}
        live: list[AlertNotice] = []
        for index, alert in enumerate(alerts):
            stale = self._stale(alert, version, started, need_version=False)
            if stale is None:
                live.append(alert)
            else:
                outcomes[index] = _ignored(alert, stale, version)
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
        now = self.clock()
        if started is None:
            why = f"the event log does not say when canary {version} started taking traffic"
            return [_held(a, why, version) for a in alerts]
        # The current index, never the next one: the look sees the data up to now without
        # shifting the window schedule, hurrying a promotion or nearing the window cap.
        window = max(1, self._window_index(started, now))
        if self._alert_looked.get(version) == window:
            why = (
                f"window {window} was already looked at on an alert (at most one extra look per "
                f"window); the loop judges window {window + 1} when it completes"
            )
            return [_ignored(a, why, version) for a in alerts]
        champion = state.champion
        assert champion is not None  # _look_on_alerts checks
        cycle = _Cycle(now)
        trigger = "alert " + ", ".join(sorted({a.name for a in alerts}))
        try:
            counts = self.metrics_source.counts(champion, version, started, now)
        except SourceUnavailable as exc:
            cycle.hold(exc.hold_reason, f"cannot judge canary {version}: {exc}")
            report = None
        else:

            def mark() -> None:
                self._alert_looked[version] = window

            report = self._judge_now(
                state, version, started, window, counts, cycle, trigger, mark, alerts
            )
        if report is None or report.verdict is None or cycle.holds:
            why = "; ".join(w for whys in cycle.holds.values() for w in whys)
            why = (
                f"the judge could not look at canary {version}: {why}; the loop judges it "
                "again when its inputs answer, and the circuit breaker still acts"
            )
            return [_held(a, why, version) for a in alerts]
        action: AlertAction = _ALERT_ACTION.get(report.action or "", "unchanged")
        why = f"judged canary {version} at window {window} on the data up to now: {report.reason}"
        return [
            AlertOutcome(
                a.name,
                a.fingerprint,
                action,
                why,
                version,
                report.event_id,
                decided_by="judge",
                verdict=report.verdict,
                window=window,
                signals=report.signals,
            )
            for a in alerts
        ]

    # -- drift -----------------------------------------------------------------------------

    def _drift_due(self, now: datetime) -> bool:
        return self._next_drift_at is None or now >= self._next_drift_at

    def _drift_job(
        self, state: DeploymentState, canary: CanaryReport | None, cycle: _Cycle
    ) -> tuple[DriftReport, ...]:
        now = cycle.started_at
        self._next_drift_at = now + timedelta(seconds=self.settings.drift_interval_seconds)
        earliest = now - timedelta(seconds=self.settings.drift_window_seconds)
        targets: list[tuple[Variant, int, datetime]] = []
        if state.champion is not None:
            targets.append((CHAMPION, state.champion, earliest))
        if canary is not None and canary.state == "observing" and canary.started_at is not None:
            targets.append((CANARY, canary.version, max(earliest, canary.started_at)))
        return tuple(self._check_drift(v, n, start, cycle) for v, n, start in targets)

    def _detector(self, version: int) -> DriftDetector:
        detector = self._detectors.get(version)
        if detector is None:
            detector = self._detectors[version] = self.drift_detector_factory(version)
        return detector

    def _check_drift(
        self, variant: Variant, version: int, start: datetime, cycle: _Cycle
    ) -> DriftReport:
        now = cycle.started_at
        try:
            frame = self.log_source.window(
                variant, version, start, now, self.settings.drift_max_rows
            )
        except SourceUnavailable as exc:
            cycle.hold(exc.hold_reason, f"drift check of {variant} {version}: {exc}")
            return DriftReport(variant, version, "error", 0, str(exc))
        if len(frame) < self.settings.drift.min_window_rows:
            # Too little traffic to judge; no need to load the reference either.
            return DriftReport(
                variant, version, "insufficient-data", len(frame),
                f"{len(frame)} rows, fewer than the "
                f"{self.settings.drift.min_window_rows} a check needs",
            )  # fmt: skip
        try:
            detector = self._detector(version)
            result = detector.check(frame)
        except (ReferenceNotFound, SourceUnavailable, DriftError) as exc:
            logger.warning("drift check of %s %d failed: %s", variant, version, exc)
            return DriftReport(variant, version, "error", len(frame), str(exc))
        except Exception as exc:
            # The drift job informs; it must never stop the loop that rolls canaries back.
            logger.exception("drift check of %s %d failed unexpectedly", variant, version)
            return DriftReport(
                variant, version, "error", len(frame), f"{type(exc).__name__}: {exc}"
            )
        self.metrics.record_drift(
            variant, str(version), result.scores(), result.share_drifted, now.timestamp()
        )
        advice = recommend(result, variant)
        episode = (variant, version)
        starting = result.status == "drift" and not self._drifting.get(episode, False)
        self._drifting[episode] = result.status == "drift"
        path: Path | None = None
        if variant == CHAMPION and advice.alert and starting:
            path = self._report(detector, frame, variant, version, start, now, cycle)
        retrain: RetrainDecision | None = None
        if variant == CHAMPION and advice.retrain:
            retrain = self._ask_retrain(version, result, advice.severity, advice.reasons, path, now)
        return DriftReport(
            variant, version, result.status, result.window_rows, result.reason,
            result.share_drifted, result.drifted_features, advice.to_dict(),
            None if path is None else str(path), None if retrain is None else retrain.to_dict(),
        )  # fmt: skip

    def _ask_retrain(
        self,
        version: int,
        result: DriftResult,
        severity: str,
        reasons: Sequence[str],
        path: Path | None,
        now: datetime,
    ) -> RetrainDecision:
        request = RetrainRequest(
            model_version=version,
            drift_share=result.share_drifted,
            drifted_features=result.drifted_features,
            severity=severity,
            reasons=tuple(reasons),
            evidence=None if path is None else str(path),
            at=now,
        )
        if self.retrain_trigger is None:
            return RetrainDecision(False, "no retrain trigger is configured; drift recorded only")
        try:
            decision = self.retrain_trigger(request)
        except Exception as exc:
            logger.exception("retrain trigger for champion %d failed", version)
            return RetrainDecision(
                False, f"the retrain trigger failed: {type(exc).__name__}: {exc}"
            )
        if decision.fire:
            self.metrics.record_retrain_trigger()
        logger.info("retrain trigger for champion %d: %s", version, decision.reason)
        return decision

    # -- reports ---------------------------------------------------------------------------

    def _report(
        self,
        detector: DriftDetector,
        frame: pd.DataFrame,
        variant: Variant,
        version: int,
        start: datetime,
        end: datetime,
        cycle: _Cycle,
    ) -> Path | None:
        name = f"{self.registry.model_name}-v{version}-{variant}-{end:%Y%m%dT%H%M%SZ}.html"
        path = self.settings.resolved_report_dir / name
        title = f"{variant} v{version}, {start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC"
        try:
            detector.write_html_report(frame, path, title=title)
        except Exception as exc:  # a report is evidence, not a decision: never fail the cycle
            logger.warning("drift report %s not written: %s", path, exc)
            cycle.note(f"drift report of {variant} {version} not written: {exc}")
            return None
        cycle.note(f"drift report of {variant} {version} written to {path}")
        return path

    def _write_reports(self, cycle: _Cycle) -> None:
        with self._reports_lock:
            jobs, self._reports = self._reports, []
        for job in jobs:
            try:
                frame = self.log_source.window(
                    job.variant, job.version, job.start, job.end, self.settings.drift_max_rows
                )
                detector = self._detector(job.version)
            except Exception as exc:  # evidence, not a decision: note it and carry on
                cycle.note(f"no drift report for {job.variant} {job.version} ({job.why}): {exc}")
                continue
            path = self._report(
                detector, frame, job.variant, job.version, job.start, job.end, cycle
            )
            if path is None or not job.attach or self.attach_report is None:
                continue
            try:
                where = self.attach_report(job.version, path)
            except Exception as exc:  # the report stays on disk; the note says where
                cycle.note(f"drift report of {job.variant} {job.version} not attached: {exc}")
                continue
            cycle.note(f"drift report of {job.variant} {job.version} attached at {where}")
