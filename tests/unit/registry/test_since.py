"""The "since" times are read best effort, in bounded time, and an outage is logged sparingly."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from registry import DeploymentState, EventStore, EventStoreUnavailable, ModelRegistry
from registry.since import SinceReader
from tests.unit.registry.stores import LocalStores

pytestmark = pytest.mark.unit

MODEL = "credit-default"
CHAMPION_SINCE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
CHALLENGER_SINCE = datetime(2026, 1, 3, 3, 4, 5, tzinfo=UTC)
SINCE_LOGGER = "registry.since"


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class FakeLog:
    """An event log that answers, fails, or hangs until released, as the test sets it."""

    def __init__(self) -> None:
        self.mode = "answer"
        self.reads = 0
        self.release = threading.Event()

    def with_since(self, model_name: str, state: DeploymentState) -> DeploymentState:
        self.reads += 1
        if self.mode == "fail":
            raise EventStoreUnavailable("postgresql://events", "connection refused")
        if self.mode == "hang":
            self.release.wait(timeout=30)
            raise EventStoreUnavailable("postgresql://events", "connection timeout expired")
        return replace(state, champion_since=CHAMPION_SINCE, challenger_since=CHALLENGER_SINCE)


@pytest.fixture
def log() -> Iterator[FakeLog]:
    """A fake event log; a read left hanging is released when the test ends."""
    fake = FakeLog()
    yield fake
    fake.release.set()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == SINCE_LOGGER and r.levelno == logging.WARNING]


def test_the_times_come_from_the_log_when_it_answers(log: FakeLog) -> None:
    """A healthy log fills in both "since" times."""
    reader = SinceReader(log, MODEL)
    state = reader.fill(DeploymentState(champion=1, challenger=2, canary_weight=0.1))
    assert (state.champion_since, state.challenger_since) == (CHAMPION_SINCE, CHALLENGER_SINCE)
    assert not reader.down


def test_a_hanging_log_costs_one_timeout_then_nothing_until_the_retry(log: FakeLog) -> None:
    """A black-holed log holds a poll up for the timeout once; the next polls answer at once."""
    clock = FakeClock()
    reader = SinceReader(log, MODEL, timeout_seconds=0.2, retry_seconds=15, clock=clock)
    observed = DeploymentState(champion=1)
    log.mode = "hang"
    started = time.monotonic()
    assert reader.fill(observed) == observed
    first = time.monotonic() - started
    started = time.monotonic()
    for _ in range(20):
        assert reader.fill(observed) == observed
    later = time.monotonic() - started
    assert 0.2 <= first < 2.0, first
    assert later < 0.2, later  # 20 polls inside the retry window: no read, no wait
    assert log.reads == 1
    assert reader.down


def test_a_read_still_stuck_after_the_retry_window_is_joined_not_repeated(log: FakeLog) -> None:
    """At most one read is in flight: a stuck driver call does not pile up threads."""
    clock = FakeClock()
    reader = SinceReader(log, MODEL, timeout_seconds=0.05, retry_seconds=15, clock=clock)
    log.mode = "hang"
    for _ in range(5):
        reader.fill(DeploymentState(champion=1))
        clock.now += 16
    assert log.reads == 1


def test_while_the_log_is_down_the_last_known_times_serve_for_the_same_holders(
    log: FakeLog,
) -> None:
    """Remembered times are kept for an unchanged alias holder and dropped for a new one."""
    clock = FakeClock()
    reader = SinceReader(log, MODEL, clock=clock)
    reader.fill(DeploymentState(champion=1, challenger=2, canary_weight=0.1))
    log.mode = "fail"
    same = reader.fill(DeploymentState(champion=1, challenger=2, canary_weight=0.5))
    assert (same.champion_since, same.challenger_since) == (CHAMPION_SINCE, CHALLENGER_SINCE)
    moved = reader.fill(DeploymentState(champion=2, previous_champion=1))
    assert (moved.champion, moved.champion_since, moved.challenger_since) == (2, None, None)


def test_the_log_is_read_again_after_the_retry_window(log: FakeLog) -> None:
    """After ``retry_seconds`` the log is tried again, and its times return when it answers."""
    clock = FakeClock()
    reader = SinceReader(log, MODEL, retry_seconds=15, clock=clock)
    log.mode = "fail"
    assert reader.fill(DeploymentState(champion=1)).champion_since is None
    log.mode = "answer"
    clock.now += 14
    assert reader.fill(DeploymentState(champion=1)).champion_since is None
    clock.now += 2
    assert reader.fill(DeploymentState(champion=1)).champion_since == CHAMPION_SINCE
    assert log.reads == 2
    assert not reader.down


def test_an_outage_warns_when_it_starts_then_once_a_minute_and_recovery_once(
    log: FakeLog, caplog: pytest.LogCaptureFixture
) -> None:
    """A poll every 5 s through 3 minutes of outage logs 3 warnings, not 36, and one recovery."""
    caplog.set_level(logging.INFO, logger=SINCE_LOGGER)
    clock = FakeClock()
    reader = SinceReader(log, MODEL, retry_seconds=0, warn_every_seconds=60, clock=clock)
    observed = DeploymentState(champion=1)
    reader.fill(observed)
    log.mode = "fail"
    warned_at = []
    for poll in range(36):
        before = len(_warnings(caplog))
        reader.fill(observed)
        if len(_warnings(caplog)) > before:
            warned_at.append(poll * 5)
        clock.now += 5
    assert warned_at == [0, 60, 120]
    assert "connection refused" in _warnings(caplog)[0].getMessage()
    assert "down for 60 s" in _warnings(caplog)[1].getMessage()
    log.mode = "answer"
    for _ in range(3):
        reader.fill(observed)
    recovered = [r for r in caplog.records if r.name == SINCE_LOGGER and r.levelno == logging.INFO]
    assert len(recovered) == 1
    assert "answers again after 180 s" in recovered[0].getMessage()
    assert len(_warnings(caplog)) == 3


def test_a_new_outage_after_recovery_warns_at_once(
    log: FakeLog, caplog: pytest.LogCaptureFixture
) -> None:
    """The once-a-minute limit is per outage: a second outage is not silenced by the first."""
    caplog.set_level(logging.WARNING, logger=SINCE_LOGGER)
    clock = FakeClock()
    reader = SinceReader(log, MODEL, retry_seconds=0, clock=clock)
    observed = DeploymentState(champion=1)
    log.mode = "fail"
    reader.fill(observed)
    clock.now += 5
    log.mode = "answer"
    reader.fill(observed)
    clock.now += 5
    log.mode = "fail"
    reader.fill(observed)
    assert len(_warnings(caplog)) == 2


@pytest.mark.parametrize(
    ("timeout", "retry", "warn_every"), [(0.0, 15.0, 60.0), (1.0, -1.0, 60.0), (1.0, 15.0, -1.0)]
)
def test_unusable_timings_are_refused(
    log: FakeLog, timeout: float, retry: float, warn_every: float
) -> None:
    """A zero timeout or a negative interval is a configuration error, named as such."""
    with pytest.raises(ValueError, match="must"):
        SinceReader(
            log, MODEL, timeout_seconds=timeout, retry_seconds=retry, warn_every_seconds=warn_every
        )


def test_registry_state_polled_with_the_event_log_down_warns_once(
    local: LocalStores, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Twenty polls of a registry whose event log is unreachable: aliases served, one warning."""
    version = local.register()
    local.registry.bootstrap(version, reason="first champion")
    unreachable = EventStore(f"sqlite:///{tmp_path / 'no-such-dir' / 'events.db'}")
    registry = ModelRegistry(
        local.client, unreachable, local.model, "tester", since_retry_seconds=0
    )
    caplog.set_level(logging.WARNING)
    states = [registry.state() for _ in range(20)]
    assert {s.champion for s in states} == {version}
    assert {s.champion_since for s in states} == {None}
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "event log unreachable" in warnings[0].getMessage()
    assert "no-such-dir" in warnings[0].getMessage()


def test_registry_state_has_the_since_times_when_the_event_log_answers(
    local: LocalStores,
) -> None:
    """The champion's "since" time is when its bootstrap was applied."""
    version = local.register()
    event = local.registry.bootstrap(version, reason="first champion")
    assert event is not None
    state = local.registry.state()
    assert (state.champion, state.champion_since) == (version, event.applied_at)
