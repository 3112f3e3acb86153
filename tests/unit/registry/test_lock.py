"""The per-model lock: one holder at a time; a live owner keeps its lease, a dead one loses it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from registry import (
    Action,
    DeploymentState,
    EventStore,
    LeaseLostError,
    MoveInProgressError,
)
from registry.event_table import model_locks

pytestmark = pytest.mark.unit


def _set_lease(store: EventStore, model: str, owner: str, expires_at: datetime) -> None:
    """Write the lock row as another process (alive or dead) left it."""
    engine = sa.create_engine(store.url)
    with engine.begin() as conn:
        conn.execute(model_locks.delete().where(model_locks.c.model_name == model))
        conn.execute(
            model_locks.insert().values(
                model_name=model, owner=owner, token=7, acquired_at=None, expires_at=expires_at
            )
        )
    engine.dispose()


def test_a_held_lock_makes_others_skip_or_wait_then_fail_naming_the_holder(
    event_store: EventStore,
) -> None:
    """While one owner holds it, try-acquire says busy and a waiter times out naming the owner."""
    first = event_store.lock("m", owner="ci#1", lease_seconds=10, timeout_seconds=0)
    assert first.acquire() is not None
    try:
        other = event_store.lock("m", owner="ctl#2", lease_seconds=10, timeout_seconds=0.2)
        assert other.acquire(wait=False) is None
        with pytest.raises(MoveInProgressError, match=r"holds its lock: ci#1 \(lease until"):
            other.acquire()
    finally:
        first.release()
    again = event_store.lock("m", owner="ctl#3", lease_seconds=10, timeout_seconds=0)
    lease = again.acquire(wait=False)
    assert lease is not None
    assert lease.token == 2
    again.release()
    assert event_store.lock_holder("m").owner is None


def test_a_live_lease_is_respected_and_an_expired_one_taken_over(event_store: EventStore) -> None:
    """A lease still running blocks takeover; once expired, the next owner takes the lock."""
    now = datetime.now(UTC)
    _set_lease(event_store, "m", "alive#1", now + timedelta(seconds=60))
    lock = event_store.lock("m", owner="next#2", lease_seconds=10, timeout_seconds=0)
    assert lock.acquire(wait=False) is None

    _set_lease(event_store, "m", "dead#1", now - timedelta(seconds=1))
    lease = lock.acquire(wait=False)

    assert lease is not None
    assert lease.owner == "next#2"
    assert lease.token == 8
    assert lock.took_over is not None
    assert lock.took_over.owner == "dead#1"
    lock.release()


def test_the_heartbeat_keeps_a_live_owners_lease_beyond_its_length(
    event_store: EventStore,
) -> None:
    """A live owner stalled for several lease lengths still holds the lock (nobody takes over)."""
    lock = event_store.lock("m", owner="slow#1", lease_seconds=0.3, timeout_seconds=0)
    assert lock.acquire() is not None
    try:
        deadline = time.monotonic() + 1.2  # four lease lengths
        while time.monotonic() < deadline:
            rival = event_store.lock("m", owner="rival#2", lease_seconds=1, timeout_seconds=0)
            assert rival.acquire(wait=False) is None
        lock.check()
    finally:
        lock.release()


def test_an_owner_whose_lease_was_taken_cannot_write_its_pending_event(
    event_store: EventStore,
) -> None:
    """Fencing: after a takeover, the old holder's begin() and check() are refused."""
    lock = event_store.lock("m", owner="old#1", lease_seconds=10, timeout_seconds=0)
    lease = lock.acquire()
    assert lease is not None
    _set_lease(event_store, "m", "new#2", datetime.now(UTC) + timedelta(seconds=60))
    try:
        with pytest.raises(LeaseLostError, match=r"no longer held by old#1"):
            lock.check()
        with pytest.raises(LeaseLostError):
            event_store.begin(
                "m",
                Action.BOOTSTRAP,
                state=DeploymentState(champion=1),
                actor="old",
                reason="r",
                expected=DeploymentState(),
                lease=lease,
            )
        assert event_store.pending("m") == []
    finally:
        lock.release()
    assert event_store.lock_holder("m").owner == "new#2"  # release never frees another's lock


def test_an_event_log_created_before_the_lock_table_gets_it_on_first_use(
    event_store: EventStore,
) -> None:
    """Upgrading: a log without ``model_locks`` (or opened without create_schema) still locks."""
    engine = sa.create_engine(event_store.url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE model_locks"))
    engine.dispose()
    reopened = EventStore(event_store.url)  # as serving or a controller started during an outage

    lock = reopened.lock("m", owner="ci#1", lease_seconds=10, timeout_seconds=0)
    assert lock.acquire() is not None
    lock.release()
    assert reopened.lock_holder("m").owner is None
