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

from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from registry.database import (
    create_engine,
    normalise_url,
    short_error,
    translate_errors,
    write_transaction,
)
from registry.errors import EventStoreError, MoveInProgressError, redact_url
from registry.event_queries import (
    applied_model_names,
    between,
    check_can_begin,
    get_event,
    history,
    last_applied,
    latest_applied_state,
    pending_events,
    recorded_versions,
    state_before,
    state_with_since,
    with_since,
)
from registry.event_table import deployment_events, metadata, model_locks
from registry.events import Action, DeploymentEvent, EventStatus, JsonValue, new_event_row
from registry.lease import Lease, LockHolder, holder
from registry.lock import ModelLock, take_advisory_xact_lock
from registry.state import DeploymentState

__all__ = ["EventStore"]


def _now() -> datetime:
    return datetime.now(UTC)


def _require_aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (e.g. datetime.now(UTC)), got {value!r}")
    return value


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
        values = new_event_row(
            model_name, action, state, actor, reason, alias, from_version, to_version, evidence,
            details, EventStatus.PENDING,
        )  # fmt: skip
        with self._errors(), write_transaction(self._engine) as conn:
            take_advisory_xact_lock(conn, "begin", model_name)
            check_can_begin(conn, model_name, expected, lease)
            try:
                new_id = conn.execute(
                    deployment_events.insert().returning(deployment_events.c.id), values
                ).scalar_one()
            except sa.exc.IntegrityError as exc:
                # Lost a race with a concurrent begin() that committed first.
                raise MoveInProgressError(
                    f"another move of {model_name!r} started concurrently ({short_error(exc)})"
                ) from exc
            return get_event(conn, new_id)

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
        values = new_event_row(
            model_name, action, state, actor, reason, alias, from_version, to_version, evidence,
            details, EventStatus.APPLIED,
        )  # fmt: skip
        values["applied_at"] = values["created_at"]
        values["status_reason"] = status_reason
        with self._errors(), write_transaction(self._engine) as conn:
            new_id = conn.execute(
                deployment_events.insert().returning(deployment_events.c.id), values
            ).scalar_one()
            return get_event(conn, new_id)

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
            return get_event(conn, event_id)

    def pending(self, model_name: str | None = None) -> list[DeploymentEvent]:
        """Pending events (moves that may be half done), oldest first."""
        with self._errors(), self._engine.connect() as conn:
            return pending_events(conn, model_name)

    def current_state(self, model_name: str) -> DeploymentState:
        """The deployment state recorded by the latest applied event (empty if none).

        ``champion_since``/``challenger_since`` are when the current holder of each alias first
        appeared in the unbroken run of applied events that ends now.
        """
        with self._errors(), self._engine.connect() as conn:
            return state_with_since(conn, model_name)

    def applied_state(self, model_name: str) -> DeploymentState:
        """Like :meth:`current_state` without the "since" times: one indexed query."""
        with self._errors(), self._engine.connect() as conn:
            return latest_applied_state(conn, model_name)

    def current_states(self) -> dict[str, DeploymentState]:
        """:meth:`current_state` of every model that has an applied event, by model name."""
        with self._errors(), self._engine.connect() as conn:
            return {name: state_with_since(conn, name) for name in applied_model_names(conn)}

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
        with self._errors(), self._engine.connect() as conn:
            return history(conn, model_name, limit, status)

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
        with self._errors(), self._engine.connect() as conn:
            return between(conn, start, end, model_name, status)

    def last(self, model_name: str, action: Action | None = None) -> DeploymentEvent | None:
        """The latest *applied* event of the model (of ``action``, if given), or ``None``."""
        with self._errors(), self._engine.connect() as conn:
            return last_applied(conn, model_name, action)

    def state_before(self, event: DeploymentEvent) -> DeploymentState:
        """The state recorded by the latest applied event before ``event``: where it moved from."""
        with self._errors(), self._engine.connect() as conn:
            return state_before(conn, event)

    def with_since(self, model_name: str, state: DeploymentState) -> DeploymentState:
        """``state`` with ``champion_since``/``challenger_since`` filled in from the log."""
        with self._errors(), self._engine.connect() as conn:
            return with_since(conn, model_name, state)

    def recorded_versions(self, model_name: str) -> set[int]:
        """Versions that have an applied ``register`` or ``repair`` event."""
        with self._errors(), self._engine.connect() as conn:
            return recorded_versions(conn, model_name)

    # -- internals -----------------------------------------------------------------------

    def _resolve(self, event_id: int, target: EventStatus, note: str | None) -> DeploymentEvent:
        t = deployment_events.c
        values: dict[str, Any] = {"status": target.value, "status_reason": note}
        if target is EventStatus.APPLIED:
            values["applied_at"] = _now()
        with self._errors(), write_transaction(self._engine) as conn:
            event = get_event(conn, event_id)
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
            return get_event(conn, event_id)

    def _errors(self) -> AbstractContextManager[None]:
        return translate_errors(self.url)
