"""What a deployment event is: the action, its two-step status, and the row that records it.

The log itself (where events are written and read) is :class:`registry.event_store.EventStore`;
its table is :mod:`registry.event_table`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeAlias

from sqlalchemy.engine import Row

from registry.state import DeploymentState

__all__ = [
    "Action",
    "DeploymentEvent",
    "EventStatus",
    "JsonValue",
    "check_details",
    "new_event_row",
    "row_to_event",
]

JsonValue: TypeAlias = str | int | float | bool | list["JsonValue"] | dict[str, "JsonValue"] | None


class Action(StrEnum):
    """What an event did."""

    BOOTSTRAP = "bootstrap"
    """First champion of a model."""
    REGISTER = "register"
    """A new version was registered (no alias moved)."""
    CHALLENGER = "challenger"
    """The ``challenger`` alias moved (canary weight reset to 0)."""
    CANARY = "canary"
    """The canary weight changed (and possibly the challenger with it)."""
    PROMOTE = "promote"
    """The ``champion`` alias moved to a new version."""
    ROLLBACK = "rollback"
    """The ``champion`` alias went back to the previous champion."""
    REJECT = "reject"
    """A version was marked rejected; its canary traffic went to 0."""
    EXTERNAL = "external"
    """A move found in MLflow with no event (somebody used the UI or the raw client)."""
    REPAIR = "repair"
    """A registered version found with no register event (a crash after registering)."""


class EventStatus(StrEnum):
    """Where an event is in its two-step life."""

    PENDING = "pending"
    """Written before the MLflow move; the move may or may not have happened."""
    APPLIED = "applied"
    """The MLflow move is done."""
    ABORTED = "aborted"
    """The move was given up; ``status_reason`` says why."""


@dataclass(frozen=True)
class DeploymentEvent:
    """One row of the event log.

    Attributes:
        id: Monotonic id; orders events of one database.
        model_name: Registered model name.
        action: What happened.
        status: Pending, applied or aborted.
        alias: The alias that moved (``champion``/``challenger``), if one did.
        from_version: Version the alias (or the rejected/registered version) came from.
        to_version: Version the alias went to (or the registered version).
        state: The full deployment state after the move.
        actor: Who did it (``user@host``, ``ci``, ``controller``).
        reason: Why, in words.
        evidence: Link or path to the evidence (gate report, drift report), if any.
        details: Numbers behind the decision (verdict metrics, lineage), JSON.
        status_reason: Why an event was aborted or repaired, if it was.
        created_at: When the event was written (UTC).
        applied_at: When the move was confirmed (UTC), if it was.
    """

    id: int
    model_name: str
    action: Action
    status: EventStatus
    alias: str | None
    from_version: int | None
    to_version: int | None
    state: DeploymentState
    actor: str
    reason: str
    evidence: str | None
    details: Mapping[str, JsonValue] = field(repr=False)
    status_reason: str | None
    created_at: datetime
    applied_at: datetime | None

    def describe(self) -> str:
        """One line for logs and CLI output."""
        moved = f" {self.alias}" if self.alias else ""
        return (
            f"#{self.id} {self.created_at:%Y-%m-%d %H:%M:%S}Z {self.model_name} "
            f"{self.action}{moved} {self.from_version}->{self.to_version} [{self.status}] "
            f"by {self.actor}: {self.reason}"
        )


def row_to_event(row: Row[Any]) -> DeploymentEvent:
    """The event a row of ``deployment_events`` records."""
    m = row._mapping
    return DeploymentEvent(
        id=int(m["id"]),
        model_name=m["model_name"],
        action=Action(m["action"]),
        status=EventStatus(m["status"]),
        alias=m["alias"],
        from_version=m["from_version"],
        to_version=m["to_version"],
        state=DeploymentState(
            champion=m["champion"],
            challenger=m["challenger"],
            canary_weight=float(m["canary_weight"]),
            previous_champion=m["previous_champion"],
        ),
        actor=m["actor"],
        reason=m["reason"],
        evidence=m["evidence"],
        details=MappingProxyType(dict(m["details"] or {})),
        status_reason=m["status_reason"],
        created_at=m["created_at"],
        applied_at=m["applied_at"],
    )


def check_details(details: Mapping[str, JsonValue] | None) -> dict[str, JsonValue]:
    """``details`` as a dict, if it can be stored as JSON (no NaN); else a ``ValueError``."""
    payload = dict(details or {})
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"details must be JSON-serialisable without NaN: {exc}") from exc
    return payload


def new_event_row(
    model_name: str,
    action: Action,
    state: DeploymentState,
    actor: str,
    reason: str,
    alias: str | None,
    from_version: int | None,
    to_version: int | None,
    evidence: str | None,
    details: Mapping[str, JsonValue] | None,
    status: EventStatus,
) -> dict[str, Any]:
    """The column values of a new event, checked: who, why and the model must be named.

    Raises:
        ValueError: If ``model_name``, ``actor`` or ``reason`` is blank, or ``details`` is
            not JSON without NaN.
    """
    for name, text in (("model_name", model_name), ("actor", actor), ("reason", reason)):
        if not text or not text.strip():
            raise ValueError(f"{name} must not be empty")
    return {
        "model_name": model_name,
        "action": Action(action).value,
        "status": status.value,
        "alias": alias,
        "from_version": from_version,
        "to_version": to_version,
        "champion": state.champion,
        "challenger": state.challenger,
        "canary_weight": state.canary_weight,
        "previous_champion": state.previous_champion,
        "actor": actor,
        "reason": reason,
        "evidence": evidence,
        "details": check_details(details),
        "created_at": datetime.now(UTC),
    }
