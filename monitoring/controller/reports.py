"""What a cycle saw and did: the live canary's report, each drift check's, the whole cycle's."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from interfaces.routing import Variant
from monitoring.judge import Decision, JudgeResult, Verdict
from monitoring.metrics import CanaryState, HoldReason
from registry import DeploymentState

__all__ = [
    "CanaryReport",
    "Clock",
    "Cycle",
    "CycleReport",
    "DriftReport",
    "deciding_signals",
    "iso",
    "utc_now",
]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware (tests pass a fake)."""


def utc_now() -> datetime:
    """The current time in UTC (the default :data:`Clock`)."""
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """``value`` in ISO 8601, or ``None``."""
    return None if value is None else value.isoformat()


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
            "started_at": iso(self.started_at),
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
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
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
class Cycle:
    """What a cycle collects on its way; frozen into a :class:`CycleReport` at the end."""

    started_at: datetime
    deployment: DeploymentState | None = None
    holds: dict[HoldReason, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def hold(self, reason: HoldReason, why: str) -> None:
        """Hold this cycle for ``reason`` (logged; published as ``mlplat_controller_holding``)."""
        logger.warning("holding (%s): %s", reason, why)
        self.holds.setdefault(reason, []).append(why)

    def note(self, text: str) -> None:
        """Record something worth knowing in the cycle's report (and the log)."""
        logger.info("%s", text)
        self.notes.append(text)


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
