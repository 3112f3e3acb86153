"""Training triggers as code: when does the pipeline run, and when does it decline to?

Four triggers start a training run. Each is a pure decision over facts gathered elsewhere (the
dataset digest, the champion's lineage tags, the last run's time, a drift report), so the rules can
be read and tested without MLflow. A trigger that finds nothing to do says so and the pipeline does
not run: retraining on identical data only burns compute and floods the registry with twins.

- ``new-data``: the incoming dataset's digest differs from the one the champion was trained on.
- ``schedule``: the newest training run is older than the allowed age (a cron calls this daily).
- ``manual``: a person asked; always fires, and the reason is recorded.
- ``drift``: monitoring saw input drift on the champion. Drift on the champion is never a rollback
  reason (the previous model would see the same inputs); it is a reason to retrain on fresh data.
  A cool-down stops one drift episode from starting a run at every monitoring window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any


class TriggerKind(StrEnum):
    """The reasons a training run may start."""

    NEW_DATA = "new-data"
    SCHEDULE = "schedule"
    MANUAL = "manual"
    DRIFT = "drift"


@dataclass(frozen=True)
class TriggerDecision:
    """Whether a trigger fires, and why, in words a person reads in the CI log."""

    kind: TriggerKind
    fire: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form."""
        return {"kind": self.kind.value, "fire": self.fire, "reason": self.reason, **self.details}


def new_data(dataset_digest: str, champion_digest: str | None) -> TriggerDecision:
    """Fire when the dataset differs from the champion's training data (or there is no champion)."""
    details = {"dataset_digest": dataset_digest, "champion_digest": champion_digest}
    if champion_digest is None:
        return TriggerDecision(TriggerKind.NEW_DATA, True, "no champion yet", details)
    if dataset_digest == champion_digest:
        return TriggerDecision(
            TriggerKind.NEW_DATA,
            False,
            f"nothing new: the champion was trained on this exact dataset ({dataset_digest[:12]})",
            details,
        )
    return TriggerDecision(
        TriggerKind.NEW_DATA,
        True,
        f"new data: digest {dataset_digest[:12]} differs from the champion's "
        f"{champion_digest[:12]}",
        details,
    )


def schedule(
    last_trained_at: datetime | None, max_age: timedelta, now: datetime | None = None
) -> TriggerDecision:
    """Fire when the newest training run is older than ``max_age`` (or there is none)."""
    now = now or datetime.now(UTC)
    details: dict[str, Any] = {
        "last_trained_at": last_trained_at.isoformat() if last_trained_at else None,
        "max_age_seconds": max_age.total_seconds(),
    }
    if last_trained_at is None:
        return TriggerDecision(TriggerKind.SCHEDULE, True, "no training run yet", details)
    age = now - last_trained_at
    if age < max_age:
        return TriggerDecision(
            TriggerKind.SCHEDULE,
            False,
            f"nothing to do: last run is {_human(age)} old, the schedule allows {_human(max_age)}",
            details,
        )
    return TriggerDecision(
        TriggerKind.SCHEDULE,
        True,
        f"scheduled: last run is {_human(age)} old (max {_human(max_age)})",
        details,
    )


def manual(actor: str, reason: str) -> TriggerDecision:
    """Always fire; the actor and reason go into the run's tags and the event log."""
    if not reason.strip():
        raise ValueError("a manual trigger needs a reason (--reason): it is kept in the audit log")
    return TriggerDecision(TriggerKind.MANUAL, True, f"manual: {reason}", {"actor": actor})


def drift(
    drift_share: float,
    threshold: float,
    last_drift_run_at: datetime | None,
    cooldown: timedelta,
    now: datetime | None = None,
    evidence: str | None = None,
) -> TriggerDecision:
    """Fire when the share of drifted features crosses ``threshold``, at most once per cool-down.

    Args:
        drift_share: Share of features whose drift score crossed their calibrated threshold.
        threshold: Share above which the champion's inputs count as drifted.
        last_drift_run_at: When a drift-triggered run last started, if ever.
        cooldown: Minimum time between two drift-triggered runs.
        now: The current time (injected for tests).
        evidence: Where the drift report that motivated the call lives.
    """
    if not 0.0 <= drift_share <= 1.0:
        raise ValueError(f"drift_share must be within [0, 1], got {drift_share}")
    now = now or datetime.now(UTC)
    details: dict[str, Any] = {
        "drift_share": drift_share,
        "threshold": threshold,
        "evidence": evidence,
    }
    if drift_share < threshold:
        return TriggerDecision(
            TriggerKind.DRIFT,
            False,
            f"no drift: {drift_share:.0%} of features drifted, threshold {threshold:.0%}",
            details,
        )
    if last_drift_run_at is not None and now - last_drift_run_at < cooldown:
        return TriggerDecision(
            TriggerKind.DRIFT,
            False,
            f"drift seen but a drift-triggered run started {_human(now - last_drift_run_at)} ago "
            f"(cool-down {_human(cooldown)})",
            details,
        )
    return TriggerDecision(
        TriggerKind.DRIFT,
        True,
        f"drift: {drift_share:.0%} of features drifted (threshold {threshold:.0%})",
        details,
    )


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}min"
    return f"{seconds / 3600:.1f}h"
