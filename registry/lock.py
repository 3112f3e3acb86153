"""One lock per model, held across a whole alias move, with a lease so a dead owner is noticed.

An alias move reads the state, writes a pending event, writes MLflow and marks the event
applied. MLflow and the event database share no transaction, so no database transaction can
span the move — and the pending event must be *committed* before MLflow is touched, or a crash
would leave a move with no evidence. So the move is guarded by a lock that outlives the
transactions inside it: a row of ``model_locks`` (:mod:`registry.event_table`) naming the owner,
a fencing ``token`` and a lease expiry.

* **Acquire**: one short write transaction flips the row to ``owner=me, token+1`` only if it is
  free or its lease has expired (a conditional ``UPDATE``, atomic on both backends: SQLite runs it
  under ``BEGIN IMMEDIATE``, PostgreSQL re-checks the ``WHERE`` on the locked row under READ
  COMMITTED). Otherwise the caller polls until its deadline, then gets a
  :class:`registry.errors.MoveInProgressError` naming the holder.
* **Hold**: a heartbeat thread renews the lease every third of its length while the owner lives,
  so a live owner stalled in MLflow (a slow server, a paused VM) keeps its lock and its in-flight
  move is never touched. Before writing MLflow the owner checks it still holds the lease
  (:meth:`ModelLock.check`) and :meth:`registry.EventStore.begin` refuses a pending event from a
  holder whose token is stale.
* **Dead owner**: its heartbeat stops, the lease expires, and the next mover (or ``reconcile``)
  takes the lock and only *then* finishes the dead owner's pending event — rolled forward if
  MLflow still shows the state before or after it, aborted otherwise (:mod:`registry.reconcile`).
  Nothing in flight is ever rolled forward or recorded as external: whoever holds the lock knows
  every pending event it sees belongs to a process that is gone.

PostgreSQL adds a second guard: the owner also holds ``pg_advisory_xact_lock`` on a key derived
from the model name, in a dedicated connection whose transaction stays open for the whole move.
Live movers queue on it instead of polling, and it dies with the owner's connection. It is not
enough alone — a process whose connection broke may still be writing MLflow — so the
lease still decides when a dead owner's move may be finished; the advisory lock only makes the
common case fast. SQLite has no such lock: the lease row is the whole story, and ``BEGIN
IMMEDIATE`` makes each of its transactions single-writer.

Leases compare client clocks (UTC): keep the lease (default 15 s) far above the clock skew
between the machines that move aliases.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from registry.database import translate_errors, write_transaction
from registry.errors import EventStoreError, LeaseLostError, MoveInProgressError
from registry.lease import Lease, LockHolder, check_lease, free, holder, renew, try_take

__all__ = ["ModelLock", "advisory_key", "new_owner_id", "take_advisory_xact_lock"]

logger = logging.getLogger(__name__)


def new_owner_id(actor: str) -> str:
    """A lock owner id unique to one acquisition: ``actor`` plus a random suffix."""
    return f"{actor}#{uuid.uuid4().hex[:12]}"


def advisory_key(purpose: str, model_name: str) -> int:
    """A signed 64-bit PostgreSQL advisory-lock key for ``purpose`` on ``model_name``."""
    digest = hashlib.blake2b(f"mlplat:{purpose}:{model_name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def take_advisory_xact_lock(conn: Connection, purpose: str, model_name: str) -> None:
    """On PostgreSQL, lock ``purpose`` of ``model_name`` until the transaction ends.

    This is what makes a read-then-insert atomic under READ COMMITTED; on SQLite the write
    transaction (``BEGIN IMMEDIATE``) already is, so this does nothing there.
    """
    if conn.dialect.name == "postgresql":
        key = advisory_key(purpose, model_name)
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


class ModelLock:
    """The lock on one model's aliases; use as a context manager around a whole move.

    Args:
        engine: Engine of the event database (the lock row lives beside the events).
        url: The database URL, for error messages.
        model_name: The model.
        owner: Unique id of this acquisition (:func:`new_owner_id`).
        lease_seconds: How long the lock outlives its owner's last heartbeat.
        timeout_seconds: How long :meth:`acquire` waits for a holder before giving up.
    """

    def __init__(
        self,
        engine: Engine,
        url: str,
        model_name: str,
        *,
        owner: str,
        lease_seconds: float,
        timeout_seconds: float,
    ) -> None:
        if lease_seconds <= 0 or timeout_seconds < 0:
            raise ValueError("lease_seconds must be > 0 and timeout_seconds >= 0")
        self._engine = engine
        self._url = url
        self.model_name = model_name
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.timeout_seconds = timeout_seconds
        self.lease: Lease | None = None
        self.took_over: LockHolder | None = None
        self._guard: Connection | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._lost = False

    # -- acquiring -------------------------------------------------------------------------

    def acquire(self, *, wait: bool = True) -> Lease | None:
        """Take the lock, waiting up to ``timeout_seconds`` if ``wait``.

        Returns:
            The lease, or ``None`` if ``wait`` is false and the lock is held by a live owner.

        Raises:
            MoveInProgressError: If the lock is still held when the wait runs out.
            EventStoreUnavailable: If the event database cannot be reached.
        """
        deadline = time.monotonic() + (self.timeout_seconds if wait else 0.0)
        with translate_errors(self._url):
            if not self._take_guard(deadline):
                self._busy(wait)
                return None
            try:
                while True:
                    lease = self._try_lease()
                    if lease is not None:
                        break
                    if time.monotonic() >= deadline:
                        self._drop_guard()
                        self._busy(wait)
                        return None
                    # Jittered: SQLite waiters would otherwise retry in lockstep.
                    time.sleep(random.uniform(0.01, 0.05))
            except BaseException:
                self._drop_guard()
                raise
        self.lease = lease
        self._start_heartbeat()
        return lease

    def _take_guard(self, deadline: float) -> bool:
        """PostgreSQL: hold the model's advisory lock in a dedicated, open transaction."""
        if self._engine.dialect.name != "postgresql":
            return True
        conn = self._engine.connect()
        try:
            conn.begin()
            key = advisory_key("move", self.model_name)
            wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if wait_ms == 0:
                got = conn.execute(
                    sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}
                ).scalar_one()
            else:
                conn.execute(sa.text(f"SET LOCAL lock_timeout = {wait_ms}"))
                try:
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
                    got = True
                except sa.exc.OperationalError as exc:
                    if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
                        raise
                    got = False
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._guard = conn
        return True

    def _drop_guard(self) -> None:
        guard, self._guard = self._guard, None
        if guard is not None:
            try:
                guard.close()  # rolls the transaction back: the advisory lock goes with it
            except sa.exc.SQLAlchemyError as exc:
                logger.warning("closing the lock connection of %s: %s", self.model_name, exc)

    def _try_lease(self) -> Lease | None:
        with self._engine.connect() as conn:
            before = holder(conn, self.model_name)
        if before.live(datetime.now(UTC)):
            return None  # read first: a waiter does not take SQLite's write lock to find out
        with write_transaction(self._engine) as conn:
            before = holder(conn, self.model_name)
            token = try_take(conn, self.model_name, self.owner, self.lease_seconds)
        if token is None:
            return None
        if before.owner is not None:
            self.took_over = before
            logger.warning(
                "lock on %s: lease of %s expired; %s takes over and will finish its move",
                self.model_name,
                before.owner,
                self.owner,
            )
        return Lease(self.model_name, self.owner, token)

    def _busy(self, wait: bool) -> None:
        """Raise naming the holder, if the caller waited; else just report "busy"."""
        if not wait:
            return
        with translate_errors(self._url), self._engine.connect() as conn:
            current = holder(conn, self.model_name)
        raise MoveInProgressError(
            f"another move of {self.model_name!r} holds its lock: {current.describe()}; waited "
            f"{self.timeout_seconds:g} s. Retry when it finishes; if that process died, its "
            "lease expires and the next move or reconcile finishes what it left"
        )

    # -- holding ---------------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._heartbeat = threading.Thread(
            target=self._renew_until_stopped, name=f"lease-{self.model_name}", daemon=True
        )
        self._heartbeat.start()

    def _renew_until_stopped(self) -> None:
        interval = self.lease_seconds / 3
        while not self._stop.wait(interval):
            lease = self.lease
            if lease is None:
                return
            try:
                with write_transaction(self._engine) as conn:
                    renewed = renew(conn, lease, self._expiry())
            except sa.exc.SQLAlchemyError as exc:
                # The lease runs on; check() fails once it has really expired.
                logger.warning("renewing the lock of %s failed: %s", lease.model_name, exc)
                continue
            if not renewed:
                self._lost = True
                logger.error("lock of %s was taken by someone else", lease.model_name)
                return

    def _expiry(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.lease_seconds)

    def check(self) -> None:
        """Make sure the lock is still ours before an irreversible write.

        Raises:
            LeaseLostError: If the lease expired and someone else took the lock.
        """
        if self.lease is None:
            raise LeaseLostError(f"the lock on {self.model_name!r} is not held")
        with translate_errors(self._url), self._engine.connect() as conn:
            check_lease(conn, self.lease)

    # -- releasing -------------------------------------------------------------------------

    def release(self) -> None:
        """Free the lock (best effort: if the database is down, the lease simply expires)."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
            self._heartbeat = None
        lease, self.lease = self.lease, None
        try:
            if lease is not None:
                with write_transaction(self._engine) as conn:
                    free(conn, lease)
        except (sa.exc.SQLAlchemyError, EventStoreError) as exc:
            logger.warning(
                "could not release the lock of %s (%s); it frees itself in %g s",
                self.model_name,
                exc,
                self.lease_seconds,
            )
        finally:
            self._drop_guard()

    def __enter__(self) -> Lease:
        lease = self.acquire()
        assert lease is not None  # acquire() waits, then raises rather than return None
        return lease

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
