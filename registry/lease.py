"""The lock row of a model: who holds its lock, under which fencing token, until when.

Each function runs inside a connection or write transaction its caller opened: one conditional
statement each, atomic on both backends. :class:`registry.lock.ModelLock` strings them into
acquire, heartbeat and release; :meth:`registry.EventStore.begin` checks a lease with
:func:`check_lease` in the same transaction as the pending event it writes (fencing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from registry.errors import LeaseLostError
from registry.event_table import model_locks

__all__ = ["Lease", "LockHolder", "check_lease", "free", "holder", "renew", "try_take"]


@dataclass(frozen=True)
class Lease:
    """A held lock.

    Attributes:
        model_name: The model whose aliases the holder may move.
        owner: Unique id of this acquisition (``actor#random``).
        token: Fencing token: grows on every acquisition of this model's lock.
    """

    model_name: str
    owner: str
    token: int


@dataclass(frozen=True)
class LockHolder:
    """Who holds a model's lock, as the ``model_locks`` row says.

    Attributes:
        owner: The holder's id, or ``None`` if the lock is free.
        token: The fencing token of the latest acquisition.
        expires_at: When the holder's lease runs out, if held.
    """

    owner: str | None
    token: int
    expires_at: datetime | None

    def live(self, now: datetime) -> bool:
        """Whether a holder's lease is still running at ``now``."""
        return self.owner is not None and self.expires_at is not None and self.expires_at > now

    def describe(self) -> str:
        """For messages."""
        if self.owner is None:
            return "nobody"
        until = f"{self.expires_at:%H:%M:%S}Z" if self.expires_at else "?"
        return f"{self.owner} (lease until {until})"


def holder(conn: Connection, model_name: str) -> LockHolder:
    """The lock row of ``model_name`` (free if there is none)."""
    c = model_locks.c
    row = conn.execute(
        sa.select(c.owner, c.token, c.expires_at).where(c.model_name == model_name)
    ).first()
    if row is None:
        return LockHolder(None, 0, None)
    return LockHolder(row.owner, int(row.token), row.expires_at)


def check_lease(conn: Connection, lease: Lease) -> None:
    """Raise :class:`LeaseLostError` unless ``lease`` is still the live holder of its lock."""
    now = datetime.now(UTC)
    current = holder(conn, lease.model_name)
    if current.owner != lease.owner or current.token != lease.token or not current.live(now):
        raise LeaseLostError(
            f"the lock on {lease.model_name!r} is no longer held by {lease.owner} (token "
            f"{lease.token}); it is held by {current.describe()}. Nothing more was written: "
            "the move is left to reconcile"
        )


def _ensure_row(conn: Connection, model_name: str) -> None:
    values = {"model_name": model_name, "owner": None, "token": 0}
    insert: Any = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(model_locks)
    conn.execute(insert.values(values).on_conflict_do_nothing(index_elements=["model_name"]))


def try_take(conn: Connection, model_name: str, owner: str, lease_s: float) -> int | None:
    """Take the lock if it is free or its lease expired; the new token, or ``None``."""
    _ensure_row(conn, model_name)
    now = datetime.now(UTC)
    c = model_locks.c
    token = conn.execute(
        model_locks.update()
        .where(
            c.model_name == model_name,
            sa.or_(c.owner.is_(None), c.expires_at.is_(None), c.expires_at <= now),
        )
        .values(
            owner=owner,
            token=c.token + 1,
            acquired_at=now,
            expires_at=now + timedelta(seconds=lease_s),
        )
        .returning(c.token)
    ).scalar()
    return None if token is None else int(token)


def renew(conn: Connection, lease: Lease, expires_at: datetime) -> bool:
    """Move ``lease``'s expiry to ``expires_at``; whether it was still the holder's."""
    c = model_locks.c
    renewed = conn.execute(
        model_locks.update()
        .where(c.model_name == lease.model_name, c.owner == lease.owner, c.token == lease.token)
        .values(expires_at=expires_at)
    ).rowcount
    return bool(renewed == 1)


def free(conn: Connection, lease: Lease) -> None:
    """Free the lock, if ``lease`` still holds it (else someone took over: leave it be)."""
    c = model_locks.c
    conn.execute(
        model_locks.update()
        .where(c.model_name == lease.model_name, c.owner == lease.owner, c.token == lease.token)
        .values(owner=None, expires_at=None)
    )
