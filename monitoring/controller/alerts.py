"""Alertmanager's notifications as the controller sees them, and what it did about each."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from monitoring.judge import Verdict
from monitoring.metrics import AlertAction, AlertDecider
from registry import JsonValue

__all__ = [
    "ALERT_ACTION",
    "BREAKER_LABEL",
    "AlertNotice",
    "AlertOutcome",
    "held",
    "ignored",
    "is_circuit_breaker",
]


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


def ignored(alert: AlertNotice, why: str, version: int | None = None) -> AlertOutcome:
    """``alert`` acknowledged and ignored, and why."""
    return AlertOutcome(alert.name, alert.fingerprint, "ignored", why, version)


def held(alert: AlertNotice, why: str, version: int) -> AlertOutcome:
    """``alert`` could not be acted on (the judge could not look), and why."""
    return AlertOutcome(alert.name, alert.fingerprint, "held", why, version)


ALERT_ACTION: Final[Mapping[str, AlertAction]] = {
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
