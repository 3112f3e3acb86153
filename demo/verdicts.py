"""How a demo scenario ended: its result, and the pure checks that decide whether it passed.

A scenario (:mod:`demo.scenarios`) ships what it ships and waits for the controller; these checks
then compare what the controller *said* it did with what the registry shows. They read only
their arguments, so they are unit-tested without a running world.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from monitoring.controller import CanaryReport, DriftReport
from registry import DeploymentEvent

__all__ = [
    "Narrator",
    "ScenarioResult",
    "assess_canary",
    "assess_drift",
    "compact_judgement",
]


class Narrator(Protocol):
    """Where a scenario says what it is doing (the live display)."""

    def step(self, text: str) -> None:
        """The step in progress, replacing the previous one."""
        ...

    def say(self, text: str) -> None:
        """A line worth keeping in the scrollback."""
        ...


@dataclass
class ScenarioResult:
    """How one scenario ended, and the evidence.

    Attributes:
        key: Short id (``skew-canary``).
        title: One line for humans.
        expected: The outcome the scenario must have.
        outcome: The outcome it had (``rolled_back``, ``promoted``, ``alert+retrain``, ...).
        passed: Whether ``outcome`` is ``expected`` and the registry agrees.
        why: The verdict's reason, or what went wrong.
        seconds_to_verdict: From the canary's start (or the drifted traffic's first requests)
            to the verdict, from the event log's and the controller's timestamps.
        started_at: Seconds since the demo started when the scenario began.
        ended_at: Seconds since the demo started when it ended.
        canary_at: Seconds since the demo started when the canary (or the drift) began.
        verdict_at: Seconds since the demo started when the verdict was acted on.
        evidence: The numbers behind the verdict, event ids, report paths.
    """

    key: str
    title: str
    expected: str
    outcome: str = "not-run"
    passed: bool = False
    why: str = ""
    seconds_to_verdict: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    canary_at: float | None = None
    verdict_at: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form."""
        return {
            "key": self.key,
            "title": self.title,
            "expected": self.expected,
            "outcome": self.outcome,
            "passed": self.passed,
            "why": self.why,
            "seconds_to_verdict": _round(self.seconds_to_verdict),
            "started_at": _round(self.started_at),
            "ended_at": _round(self.ended_at),
            "canary_at": _round(self.canary_at),
            "verdict_at": _round(self.verdict_at),
            "evidence": self.evidence,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def compact_judgement(judgement: Mapping[str, Any] | None) -> dict[str, Any]:
    """The judge's result reduced to each signal's decision and numbers."""
    if not judgement:
        return {}
    signals = {}
    for signal in judgement.get("signals", ()):
        signals[signal["name"]] = {
            key: signal.get(key)
            for key in ("decision", "estimate", "ci_low", "ci_high", "statistic", "threshold",
                        "margin", "n_canary", "n_champion", "units")
        }  # fmt: skip
    return {
        "verdict": judgement.get("verdict"),
        "window": judgement.get("window"),
        "reason": judgement.get("reason"),
        "signals": signals,
    }


def assess_canary(
    expected: str,
    report: CanaryReport | None,
    *,
    version: int,
    rejected: bool,
    champion_before: int | None,
    champion_after: int | None,
) -> tuple[str, bool, str]:
    """Whether a canary ended as ``expected``, as the controller reported and the registry shows.

    Args:
        expected: ``rolled_back`` or ``promoted``.
        report: The controller's report of the cycle that acted, or ``None`` if none did.
        version: The canary's version.
        rejected: Whether the registry marks it rejected now.
        champion_before: The champion when the canary started.
        champion_after: The champion now.

    Returns:
        ``(outcome, passed, why)``.
    """
    if report is None:
        return "timeout", False, "the controller reached no verdict in time"
    outcome = report.state
    if outcome != expected:
        return outcome, False, f"expected {expected}, the controller {outcome}: {report.reason}"
    if report.event_id is None:
        return outcome, False, "the controller reported the move but wrote no event"
    if expected == "rolled_back":
        if not rejected:
            return outcome, False, f"v{version} was rolled back but is not marked rejected"
        if champion_after != champion_before:
            return (
                outcome,
                False,
                f"the champion moved from v{champion_before} to v{champion_after}",
            )
    if expected == "promoted" and champion_after != version:
        return outcome, False, f"promoted, but the registry's champion is v{champion_after}"
    return outcome, True, report.reason


def assess_drift(
    drift: DriftReport | None,
    moves: Sequence[DeploymentEvent],
    *,
    champion_before: int | None,
    champion_after: int | None,
) -> tuple[str, bool, str]:
    """Whether champion drift raised an alert and a retrain, and nothing else.

    Args:
        drift: The controller's first champion drift check that flagged drift, if any.
        moves: Events written while the drifted traffic ran.
        champion_before: The champion before the drift.
        champion_after: The champion after it.

    Returns:
        ``(outcome, passed, why)``.
    """
    if drift is None:
        return "no-drift-flagged", False, "the drift job flagged no drift on the champion in time"
    listed = (drift.recommendation or {}).get("actions") or ()
    actions = tuple(str(a) for a in listed) if isinstance(listed, list | tuple) else ()
    fired = bool((drift.retrain or {}).get("fire"))
    outcome = "+".join(actions) or "none"
    if moves:
        moved = "; ".join(f"{e.action.value} (event {e.id})" for e in moves)
        return f"{outcome}, then {moves[0].action.value}", False, f"aliases moved: {moved}"
    if champion_after != champion_before:
        return outcome, False, f"the champion moved from v{champion_before} to v{champion_after}"
    if "alert" not in actions or "retrain" not in actions:
        return outcome, False, f"the drift policy asked for {outcome}, not alert and retrain"
    if not fired:
        decision = drift.retrain or {}
        share, threshold = decision.get("drift_share"), decision.get("threshold")
        reason = str(decision.get("reason", "the retrain trigger was not asked"))
        if isinstance(share, float) and isinstance(threshold, float) and share >= threshold:
            # Over the threshold but not fired: the cool-down after an earlier drift alert.
            # The request was made and recorded; firing twice in a cool-down is the rule.
            return "alert+retrain", True, f"{drift.reason}; retrain trigger: {reason}"
        return f"{outcome} (trigger did not fire)", False, reason
    return "alert+retrain", True, drift.reason
