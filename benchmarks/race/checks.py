"""What the race checks after every round: the registry's promise, violation by violation."""

from __future__ import annotations

from typing import Any

from registry import Action, EventStatus, ModelRegistry

__all__ = ["check_round"]

_RECONCILE_NOTES = {"move found done by reconcile", "interrupted move completed by reconcile"}
# Outcomes of a move that may have failed after writing its pending event.
_FAILED_AFTER_BEGIN = ("error:", "refused:RegistryUnavailable", "refused:EventStore",
                       "refused:MoveNotRecordedError", "refused:LeaseLostError")  # fmt: skip


def check_round(registry: ModelRegistry, last_id: int, answers: list[str]) -> dict[str, Any] | None:
    """What went wrong in the round that wrote events after ``last_id``, or ``None``."""
    problems = [f"unexpected failure: {a}" for a in answers if a.startswith("error:")]
    pending = registry.events.pending(registry.model_name)
    observed = registry.state().placement()
    logged = registry.events.applied_state(registry.model_name)
    if not pending and observed != logged:
        problems.append(f"MLflow shows {observed.describe()} but the log has {logged.describe()}")
    if pending:
        # A move whose MLflow call failed stays pending by design; reconcile must close it.
        registry.reconcile(wait=True)
        observed = registry.state().placement()
        logged = registry.events.applied_state(registry.model_name)
        if observed != logged or registry.events.pending(registry.model_name):
            problems.append(
                f"after reconcile MLflow shows {observed.describe()}, log has {logged.describe()}"
            )
    events = [e for e in registry.history(limit=200) if e.id > last_id]
    failed = any(a.startswith(_FAILED_AFTER_BEGIN) for a in answers)
    for event in events:
        touched = event.status is EventStatus.ABORTED or event.status_reason in _RECONCILE_NOTES
        if touched and not failed:
            problems.append(f"reconcile acted on a live owner's move: {event.describe()}")
        if event.action is Action.EXTERNAL:
            problems.append(f"false external event: {event.describe()}")
        if (
            event.status is EventStatus.APPLIED
            and event.alias is not None
            and event.from_version is not None
            and event.from_version == event.to_version
        ):
            problems.append(f"move to the same version reported: {event.describe()}")
    if not problems:
        return None
    return {
        "problems": problems,
        "events": [e.describe() for e in sorted(events, key=lambda e: e.id)],
    }
