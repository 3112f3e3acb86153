"""The event log's queries and checks, each a function of a connection its caller opened.

:class:`registry.event_store.EventStore` opens the connection (or the write transaction a check
must share with the insert that follows it) and turns database errors into registry errors;
here is only the SQL, written once in SQLAlchemy Core for SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from registry.errors import EventStoreError, MoveInProgressError, StaleStateError
from registry.event_table import deployment_events
from registry.events import Action, DeploymentEvent, EventStatus, row_to_event
from registry.lease import Lease, check_lease
from registry.state import DeploymentState

__all__ = [
    "applied_model_names",
    "between",
    "check_can_begin",
    "get_event",
    "history",
    "last_applied",
    "latest_applied",
    "latest_applied_state",
    "pending_events",
    "recorded_versions",
    "since",
    "state_before",
    "state_with_since",
    "with_since",
]

_APPLIED = EventStatus.APPLIED.value


def get_event(conn: Connection, event_id: int) -> DeploymentEvent:
    """One event by id.

    Raises:
        EventStoreError: If there is no such event.
    """
    row = conn.execute(
        sa.select(deployment_events).where(deployment_events.c.id == event_id)
    ).first()
    if row is None:
        raise EventStoreError(f"there is no deployment event with id {event_id}")
    return row_to_event(row)


def pending_events(conn: Connection, model_name: str | None) -> list[DeploymentEvent]:
    """Pending events (of ``model_name``, or of every model), oldest first."""
    t = deployment_events.c
    query = sa.select(deployment_events).where(t.status == EventStatus.PENDING.value)
    if model_name is not None:
        query = query.where(t.model_name == model_name)
    return [row_to_event(r) for r in conn.execute(query.order_by(t.id))]


def latest_applied(conn: Connection, model_name: str) -> DeploymentEvent | None:
    """The model's latest applied event, if it has one."""
    return last_applied(conn, model_name, None)


def last_applied(
    conn: Connection, model_name: str, action: Action | None
) -> DeploymentEvent | None:
    """The model's latest applied event (of ``action``, if given), or ``None``."""
    t = deployment_events.c
    query = sa.select(deployment_events).where(t.model_name == model_name, t.status == _APPLIED)
    if action is not None:
        query = query.where(t.action == action.value)
    row = conn.execute(query.order_by(t.id.desc()).limit(1)).first()
    return None if row is None else row_to_event(row)


def latest_applied_state(conn: Connection, model_name: str) -> DeploymentState:
    """The state the latest applied event recorded (empty if none)."""
    latest = latest_applied(conn, model_name)
    return DeploymentState() if latest is None else latest.state


def state_with_since(conn: Connection, model_name: str) -> DeploymentState:
    """:func:`latest_applied_state` with the "since" times of both aliases filled in."""
    return with_since(conn, model_name, latest_applied_state(conn, model_name))


def with_since(conn: Connection, model_name: str, state: DeploymentState) -> DeploymentState:
    """``state`` with ``champion_since``/``challenger_since`` filled in from the log."""
    c = deployment_events.c
    return replace(
        state,
        champion_since=since(conn, model_name, c.champion, state.champion),
        challenger_since=since(conn, model_name, c.challenger, state.challenger),
    )


def since(
    conn: Connection, model_name: str, column: sa.Column[Any], value: int | None
) -> datetime | None:
    """When ``column`` last became ``value``: first applied event after the last other value."""
    if value is None:
        return None
    t = deployment_events.c
    applied = (t.model_name == model_name, t.status == _APPLIED)
    last_other = conn.execute(
        sa.select(sa.func.max(t.id)).where(*applied, column.is_distinct_from(value))
    ).scalar_one()
    first_same = sa.select(t.applied_at).where(*applied, column == value)
    if last_other is not None:
        first_same = first_same.where(t.id > last_other)
    result: datetime | None = conn.execute(first_same.order_by(t.id).limit(1)).scalar()
    return result


def applied_model_names(conn: Connection) -> list[str]:
    """Every model that has an applied event, by name."""
    t = deployment_events.c
    names = conn.execute(
        sa.select(t.model_name).where(t.status == _APPLIED).distinct().order_by(t.model_name)
    ).scalars()
    return list(names)


def history(
    conn: Connection, model_name: str, limit: int, status: EventStatus | None
) -> list[DeploymentEvent]:
    """The model's events (in ``status``, if given), newest first, at most ``limit``."""
    t = deployment_events.c
    query = sa.select(deployment_events).where(t.model_name == model_name)
    if status is not None:
        query = query.where(t.status == status.value)
    return [row_to_event(r) for r in conn.execute(query.order_by(t.id.desc()).limit(limit))]


def between(
    conn: Connection,
    start: datetime,
    end: datetime,
    model_name: str | None,
    status: EventStatus | None,
) -> list[DeploymentEvent]:
    """Events created in ``[start, end)`` (of one model, in one status, if given), oldest first."""
    t = deployment_events.c
    query = sa.select(deployment_events).where(t.created_at >= start, t.created_at < end)
    if model_name is not None:
        query = query.where(t.model_name == model_name)
    if status is not None:
        query = query.where(t.status == status.value)
    return [row_to_event(r) for r in conn.execute(query.order_by(t.id))]


def state_before(conn: Connection, event: DeploymentEvent) -> DeploymentState:
    """The state recorded by the latest applied event before ``event``: where it moved from."""
    t = deployment_events.c
    row = conn.execute(
        sa.select(deployment_events)
        .where(t.model_name == event.model_name, t.status == _APPLIED, t.id < event.id)
        .order_by(t.id.desc())
        .limit(1)
    ).first()
    return DeploymentState() if row is None else row_to_event(row).state


def recorded_versions(conn: Connection, model_name: str) -> set[int]:
    """Versions that have an applied ``register`` or ``repair`` event."""
    t = deployment_events.c
    query = sa.select(t.to_version).where(
        t.model_name == model_name,
        t.status == _APPLIED,
        t.action.in_([Action.REGISTER.value, Action.REPAIR.value]),
        t.to_version.is_not(None),
    )
    return {int(v) for v in conn.execute(query).scalars()}


def check_can_begin(
    conn: Connection, model_name: str, expected: DeploymentState | None, lease: Lease | None
) -> None:
    """Refuse a pending event: from a lost lease, beside another pending one, or planned stale."""
    if lease is not None:
        check_lease(conn, lease)
    in_flight = pending_events(conn, model_name)
    if in_flight:
        raise MoveInProgressError(_in_flight_message(in_flight[0]))
    if expected is not None:
        current = latest_applied_state(conn, model_name)
        if current != expected.placement():
            raise StaleStateError(
                f"deployment state of {model_name!r} changed since it was read: "
                f"expected {expected.describe()}, event log has {current.describe()}"
            )


def _in_flight_message(event: DeploymentEvent) -> str:
    return (
        f"another move of {event.model_name!r} is in flight (event {event.id}: {event.action} "
        f"by {event.actor} at {event.created_at:%Y-%m-%d %H:%M:%S}Z); retry when it finishes, "
        "or run reconcile if that process died"
    )
