"""The deployment-event log: every alias move, as a row in a relational database.

Why relational (see ``docs/answers``): events are written a few times a day by CI and the
controller and read constantly by monitoring, the queries are by model and by time window, and
an alias move must be recorded *transactionally* — a pending row is written before MLflow is
touched and flipped to applied afterwards, so a crash between the two leaves evidence that
:meth:`registry.ModelRegistry.reconcile` can act on. SQLite (WAL) serves one machine; PostgreSQL
serves a team; the code is the same SQLAlchemy Core on both (:mod:`registry.database`,
:mod:`registry.event_table`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from registry.database import (
    create_engine,
    normalise_url,
    short_error,
    translate_errors,
    write_transaction,
)
from registry.errors import EventStoreError, MoveInProgressError, StaleStateError, redact_url
from registry.event_table import deployment_events, metadata, model_locks
from registry.lock import Lease, LockHolder, ModelLock, check_lease, holder, take_advisory_xact_lock
from registry.state import DeploymentState

__all__ = [
    "Action",
    "DeploymentEvent",
    "EventStatus",
    "EventStore",
    "JsonValue",
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


def _to_event(row: Row[Any]) -> DeploymentEvent:
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


def _now() -> datetime:
    return datetime.now(UTC)


def _require_aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (e.g. datetime.now(UTC)), got {value!r}")
    return value


def _check_details(details: Mapping[str, JsonValue] | None) -> dict[str, JsonValue]:
    payload = dict(details or {})
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"details must be JSON-serialisable without NaN: {exc}") from exc
    return payload


class EventStore:
    """Deployment events in SQLite or PostgreSQL.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:////abs/events.db`` or
            ``postgresql+psycopg://user@host:5432/db`` (``postgresql://`` is accepted too).

    Raises:
        EventStoreUnavailable: If the URL is not a usable database URL.
    """

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self._engine = create_engine(self.url)
        self._lock_table_ready = False

    def __repr__(self) -> str:
        return f"EventStore({redact_url(self.url)!r})"

    def dispose(self) -> None:
        """Close pooled connections (the store stays usable; new connections open on demand)."""
        self._engine.dispose()

    # -- writing -------------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create the tables and indexes if they do not exist (safe to call every start).

        Safe for processes starting together on a fresh database too: on SQLite the check and
        the ``CREATE`` run under ``BEGIN IMMEDIATE`` (a deferred transaction cannot upgrade to
        a writer while another one writes: "database is locked" at once), on PostgreSQL under an
        advisory lock (else both see no table and one fails on "already exists").
        """
        with self._errors(), write_transaction(self._engine) as conn:
            take_advisory_xact_lock(conn, "schema", "deployment_events")
            metadata.create_all(conn, checkfirst=True)
        self._lock_table_ready = True

    def begin(
        self,
        model_name: str,
        action: Action,
        *,
        state: DeploymentState,
        actor: str,
        reason: str,
        alias: str | None = None,
        from_version: int | None = None,
        to_version: int | None = None,
        evidence: str | None = None,
        details: Mapping[str, JsonValue] | None = None,
        expected: DeploymentState | None = None,
        lease: Lease | None = None,
    ) -> DeploymentEvent:
        """Write a pending event before the move, in one transaction.

        The check for a pending move, the compare-and-set and the insert are one atomic step on
        both backends: SQLite's ``BEGIN IMMEDIATE`` makes the transaction single-writer, and on
        PostgreSQL (READ COMMITTED) it first takes a transaction-scoped advisory lock on the
        model, so two movers cannot both read the same latest state and both insert.

        Args:
            model_name: Registered model name.
            action: What the move does.
            state: The deployment state the move will produce.
            actor: Who moves.
            reason: Why.
            alias: The alias that moves, if one does.
            from_version: Where the alias (or subject version) comes from.
            to_version: Where it goes.
            evidence: Link or path to evidence.
            details: JSON numbers behind the decision.
            expected: Compare-and-set: the state the caller planned from; the event is only
                written if the latest applied event still shows it.
            lease: The model lock the caller holds (:meth:`lock`); the event is refused if
                the lease expired and another process took the lock (fencing).

        Returns:
            The pending event.

        Raises:
            MoveInProgressError: If another move of this model is pending.
            LeaseLostError: If ``lease`` is no longer the holder of the model's lock.
            StaleStateError: If ``expected`` no longer matches the latest applied state.
        """
        values = self._values(
            model_name, action, state, actor, reason, alias, from_version, to_version, evidence,
            details, EventStatus.PENDING,
        )  # fmt: skip
        with self._errors(), write_transaction(self._engine) as conn:
            take_advisory_xact_lock(conn, "begin", model_name)
            if lease is not None:
                check_lease(conn, lease)
            in_flight = self._pending(conn, model_name)
            if in_flight:
                raise MoveInProgressError(_in_flight_message(in_flight[0]))
            if expected is not None:
                current = self._latest_applied_state(conn, model_name)
                if current != expected.placement():
                    raise StaleStateError(
                        f"deployment state of {model_name!r} changed since it was read: "
                        f"expected {expected.describe()}, event log has {current.describe()}"
                    )
            try:
                new_id = conn.execute(
                    deployment_events.insert().returning(deployment_events.c.id), values
                ).scalar_one()
            except sa.exc.IntegrityError as exc:
                # Lost a race with a concurrent begin() that committed first.
                raise MoveInProgressError(
                    f"another move of {model_name!r} started concurrently ({short_error(exc)})"
                ) from exc
            return self._get(conn, new_id)

    def record(
        self,
        model_name: str,
        action: Action,
        *,
        state: DeploymentState,
        actor: str,
        reason: str,
        alias: str | None = None,
        from_version: int | None = None,
        to_version: int | None = None,
        evidence: str | None = None,
        details: Mapping[str, JsonValue] | None = None,
        status_reason: str | None = None,
    ) -> DeploymentEvent:
        """Write an already-applied event (registrations, repairs, external moves) at once.

        Args are as for :meth:`begin`; ``status_reason`` notes how the event was found.

        Returns:
            The applied event.
        """
        values = self._values(
            model_name, action, state, actor, reason, alias, from_version, to_version, evidence,
            details, EventStatus.APPLIED,
        )  # fmt: skip
        values["applied_at"] = values["created_at"]
        values["status_reason"] = status_reason
        with self._errors(), write_transaction(self._engine) as conn:
            new_id = conn.execute(
                deployment_events.insert().returning(deployment_events.c.id), values
            ).scalar_one()
            return self._get(conn, new_id)

    def mark_applied(self, event_id: int, *, note: str | None = None) -> DeploymentEvent:
        """Flip a pending event to applied (a no-op if it already is).

        Args:
            event_id: The pending event.
            note: Stored as ``status_reason`` (e.g. "completed by reconcile").

        Raises:
            EventStoreError: If the event does not exist or was aborted.
        """
        return self._resolve(event_id, EventStatus.APPLIED, note)

    def mark_aborted(self, event_id: int, why: str) -> DeploymentEvent:
        """Flip a pending event to aborted, saying why (a no-op if it already is).

        Raises:
            EventStoreError: If the event does not exist or was already applied.
        """
        return self._resolve(event_id, EventStatus.ABORTED, why)

    # -- the per-model lock ----------------------------------------------------------------

    def lock(
        self,
        model_name: str,
        *,
        owner: str,
        lease_seconds: float = 15.0,
        timeout_seconds: float = 30.0,
    ) -> ModelLock:
        """The lock on ``model_name``'s aliases, to hold across a whole move (not yet taken).

        Args:
            model_name: The model.
            owner: Unique id of this acquisition (:func:`registry.lock.new_owner_id`).
            lease_seconds: How long the lock outlives a dead owner's last heartbeat.
            timeout_seconds: How long to wait for another holder.

        Raises:
            EventStoreUnavailable: If the database cannot be reached (to create the lock table
                of an older log on first use).
        """
        if not self._lock_table_ready:
            # A log created before the lock existed (or a store opened while the database was
            # down, so create_schema never ran) gets the table on first use.
            with self._errors(), write_transaction(self._engine) as conn:
                take_advisory_xact_lock(conn, "schema", "deployment_events")
                model_locks.create(conn, checkfirst=True)
            self._lock_table_ready = True
        return ModelLock(
            self._engine,
            self.url,
            model_name,
            owner=owner,
            lease_seconds=lease_seconds,
            timeout_seconds=timeout_seconds,
        )

    def lock_holder(self, model_name: str) -> LockHolder:
        """Who holds the lock on ``model_name`` now, and until when."""
        with self._errors(), self._engine.connect() as conn:
            return holder(conn, model_name)

    # -- reading -------------------------------------------------------------------------

    def get(self, event_id: int) -> DeploymentEvent:
        """One event by id.

        Raises:
            EventStoreError: If there is no such event.
        """
        with self._errors(), self._engine.connect() as conn:
            return self._get(conn, event_id)

    def pending(self, model_name: str | None = None) -> list[DeploymentEvent]:
        """Pending events (moves that may be half done), oldest first."""
        with self._errors(), self._engine.connect() as conn:
            return self._pending(conn, model_name)

    def current_state(self, model_name: str) -> DeploymentState:
        """The deployment state recorded by the latest applied event (empty if none).

        ``champion_since``/``challenger_since`` are when the current holder of each alias first
        appeared in the unbroken run of applied events that ends now.
        """
        with self._errors(), self._engine.connect() as conn:
            return self._state_with_since(conn, model_name)

    def applied_state(self, model_name: str) -> DeploymentState:
        """Like :meth:`current_state` without the "since" times: one indexed query."""
        with self._errors(), self._engine.connect() as conn:
            return self._latest_applied_state(conn, model_name)

    def current_states(self) -> dict[str, DeploymentState]:
        """:meth:`current_state` of every model that has an applied event, by model name."""
        t = deployment_events.c
        with self._errors(), self._engine.connect() as conn:
            names = conn.execute(
                sa.select(t.model_name)
                .where(t.status == EventStatus.APPLIED.value)
                .distinct()
                .order_by(t.model_name)
            ).scalars()
            return {name: self._state_with_since(conn, name) for name in names}

    def history(
        self, model_name: str, limit: int = 100, *, status: EventStatus | None = None
    ) -> list[DeploymentEvent]:
        """The model's events, newest first.

        Args:
            model_name: Registered model name.
            limit: At most this many events (must be positive).
            status: Only events in this status; all of them by default.
        """
        if limit < 1:
            raise ValueError(f"limit must be a positive number of events, got {limit}")
        t = deployment_events.c
        query = sa.select(deployment_events).where(t.model_name == model_name)
        if status is not None:
            query = query.where(t.status == status.value)
        with self._errors(), self._engine.connect() as conn:
            rows = conn.execute(query.order_by(t.id.desc()).limit(limit))
            return [_to_event(r) for r in rows]

    def between(
        self,
        start: datetime,
        end: datetime,
        model_name: str | None = None,
        *,
        status: EventStatus | None = None,
    ) -> list[DeploymentEvent]:
        """Events created in ``[start, end)``, oldest first (for dashboards and incident review).

        Args:
            start: Inclusive lower bound, timezone-aware.
            end: Exclusive upper bound, timezone-aware.
            model_name: Only this model; every model by default.
            status: Only events in this status; all of them by default.
        """
        _require_aware(start, "start")
        _require_aware(end, "end")
        if end < start:
            raise ValueError(f"end ({end.isoformat()}) is before start ({start.isoformat()})")
        t = deployment_events.c
        query = sa.select(deployment_events).where(t.created_at >= start, t.created_at < end)
        if model_name is not None:
            query = query.where(t.model_name == model_name)
        if status is not None:
            query = query.where(t.status == status.value)
        with self._errors(), self._engine.connect() as conn:
            return [_to_event(r) for r in conn.execute(query.order_by(t.id))]

    def last(self, model_name: str, action: Action | None = None) -> DeploymentEvent | None:
        """The latest *applied* event of the model (of ``action``, if given), or ``None``."""
        t = deployment_events.c
        query = sa.select(deployment_events).where(
            t.model_name == model_name, t.status == EventStatus.APPLIED.value
        )
        if action is not None:
            query = query.where(t.action == action.value)
        with self._errors(), self._engine.connect() as conn:
            row = conn.execute(query.order_by(t.id.desc()).limit(1)).first()
        return None if row is None else _to_event(row)

    def state_before(self, event: DeploymentEvent) -> DeploymentState:
        """The state recorded by the latest applied event before ``event``: where it moved from."""
        t = deployment_events.c
        with self._errors(), self._engine.connect() as conn:
            row = conn.execute(
                sa.select(deployment_events)
                .where(
                    t.model_name == event.model_name,
                    t.status == EventStatus.APPLIED.value,
                    t.id < event.id,
                )
                .order_by(t.id.desc())
                .limit(1)
            ).first()
        return DeploymentState() if row is None else _to_event(row).state

    def with_since(self, model_name: str, state: DeploymentState) -> DeploymentState:
        """``state`` with ``champion_since``/``challenger_since`` filled in from the log."""
        c = deployment_events.c
        with self._errors(), self._engine.connect() as conn:
            return replace(
                state,
                champion_since=self._since(conn, model_name, c.champion, state.champion),
                challenger_since=self._since(conn, model_name, c.challenger, state.challenger),
            )

    def recorded_versions(self, model_name: str) -> set[int]:
        """Versions that have an applied ``register`` or ``repair`` event."""
        t = deployment_events.c
        query = sa.select(t.to_version).where(
            t.model_name == model_name,
            t.status == EventStatus.APPLIED.value,
            t.action.in_([Action.REGISTER.value, Action.REPAIR.value]),
            t.to_version.is_not(None),
        )
        with self._errors(), self._engine.connect() as conn:
            return {int(v) for v in conn.execute(query).scalars()}

    # -- internals -----------------------------------------------------------------------

    @staticmethod
    def _values(
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
            "details": _check_details(details),
            "created_at": _now(),
        }

    def _resolve(self, event_id: int, target: EventStatus, note: str | None) -> DeploymentEvent:
        t = deployment_events.c
        values: dict[str, Any] = {"status": target.value, "status_reason": note}
        if target is EventStatus.APPLIED:
            values["applied_at"] = _now()
        with self._errors(), write_transaction(self._engine) as conn:
            event = self._get(conn, event_id)
            if event.status is target:
                return event
            if event.status is not EventStatus.PENDING:
                raise EventStoreError(
                    f"event {event_id} is {event.status}, it cannot become {target}"
                )
            conn.execute(
                deployment_events.update()
                .where(t.id == event_id, t.status == EventStatus.PENDING.value)
                .values(**values)
            )
            return self._get(conn, event_id)

    @staticmethod
    def _get(conn: Connection, event_id: int) -> DeploymentEvent:
        row = conn.execute(
            sa.select(deployment_events).where(deployment_events.c.id == event_id)
        ).first()
        if row is None:
            raise EventStoreError(f"there is no deployment event with id {event_id}")
        return _to_event(row)

    @staticmethod
    def _pending(conn: Connection, model_name: str | None) -> list[DeploymentEvent]:
        t = deployment_events.c
        query = sa.select(deployment_events).where(t.status == EventStatus.PENDING.value)
        if model_name is not None:
            query = query.where(t.model_name == model_name)
        return [_to_event(r) for r in conn.execute(query.order_by(t.id))]

    @staticmethod
    def _latest_applied(conn: Connection, model_name: str) -> DeploymentEvent | None:
        t = deployment_events.c
        row = conn.execute(
            sa.select(deployment_events)
            .where(t.model_name == model_name, t.status == EventStatus.APPLIED.value)
            .order_by(t.id.desc())
            .limit(1)
        ).first()
        return None if row is None else _to_event(row)

    def _latest_applied_state(self, conn: Connection, model_name: str) -> DeploymentState:
        latest = self._latest_applied(conn, model_name)
        return DeploymentState() if latest is None else latest.state

    def _state_with_since(self, conn: Connection, model_name: str) -> DeploymentState:
        state = self._latest_applied_state(conn, model_name)
        c = deployment_events.c
        return replace(
            state,
            champion_since=self._since(conn, model_name, c.champion, state.champion),
            challenger_since=self._since(conn, model_name, c.challenger, state.challenger),
        )

    @staticmethod
    def _since(
        conn: Connection, model_name: str, column: sa.Column[Any], value: int | None
    ) -> datetime | None:
        """When ``column`` last became ``value``: first applied event after the last other value."""
        if value is None:
            return None
        t = deployment_events.c
        applied = (t.model_name == model_name, t.status == EventStatus.APPLIED.value)
        last_other = conn.execute(
            sa.select(sa.func.max(t.id)).where(*applied, column.is_distinct_from(value))
        ).scalar_one()
        first_same = sa.select(t.applied_at).where(*applied, column == value)
        if last_other is not None:
            first_same = first_same.where(t.id > last_other)
        result: datetime | None = conn.execute(first_same.order_by(t.id).limit(1)).scalar()
        return result

    def _errors(self) -> AbstractContextManager[None]:
        return translate_errors(self.url)


def _in_flight_message(event: DeploymentEvent) -> str:
    return (
        f"another move of {event.model_name!r} is in flight (event {event.id}: {event.action} "
        f"by {event.actor} at {event.created_at:%Y-%m-%d %H:%M:%S}Z); retry when it finishes, "
        "or run reconcile if that process died"
    )
