"""The deployment-event log on SQLite: writes, the two-step life of an event, and queries."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from registry import (
    Action,
    DeploymentState,
    EventStatus,
    EventStore,
    EventStoreError,
    EventStoreUnavailable,
    MoveInProgressError,
    StaleStateError,
)

pytestmark = pytest.mark.unit

M = "credit-default"


def _bootstrap(store: EventStore, model: str = M, version: int = 1) -> int:
    event = store.begin(
        model,
        Action.BOOTSTRAP,
        state=DeploymentState(champion=version),
        actor="ci",
        reason="first model",
        alias="champion",
        to_version=version,
    )
    return store.mark_applied(event.id).id


def test_create_schema_is_idempotent(event_store: EventStore) -> None:
    """Creating the schema twice is harmless and leaves an empty history."""
    event_store.create_schema()
    event_store.create_schema()
    assert event_store.history(M) == []


def test_begin_writes_a_pending_event_with_a_utc_timestamp(event_store: EventStore) -> None:
    """begin() writes a pending event with a UTC creation time, details and evidence."""
    before = datetime.now(UTC)
    event = event_store.begin(
        M,
        Action.PROMOTE,
        state=DeploymentState(champion=2, previous_champion=1),
        actor="controller",
        reason="canary healthy",
        alias="champion",
        from_version=1,
        to_version=2,
        evidence="reports/canary-7.html",
        details={"auc_delta": 0.012, "requests": 1200},
    )
    assert event.status is EventStatus.PENDING
    assert event.applied_at is None
    assert event.created_at.tzinfo is not None
    assert event.created_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= event.created_at <= datetime.now(UTC)
    assert event.details == {"auc_delta": 0.012, "requests": 1200}
    assert event.evidence == "reports/canary-7.html"
    assert event_store.pending(M) == [event]


def test_mark_applied_sets_applied_at_and_is_idempotent(event_store: EventStore) -> None:
    """mark_applied sets an aware applied_at not before creation; a second call is a no-op."""
    event = event_store.begin(
        M, Action.BOOTSTRAP, state=DeploymentState(champion=1), actor="ci", reason="r"
    )
    applied = event_store.mark_applied(event.id)
    assert applied.status is EventStatus.APPLIED
    assert applied.applied_at is not None
    assert applied.applied_at.tzinfo is not None
    assert applied.applied_at >= applied.created_at
    assert event_store.mark_applied(event.id) == applied
    assert event_store.pending(M) == []


def test_mark_aborted_keeps_the_reason_and_cannot_be_applied_later(
    event_store: EventStore,
) -> None:
    """An aborted event keeps its reason and can no longer be marked applied."""
    event = event_store.begin(
        M, Action.BOOTSTRAP, state=DeploymentState(champion=1), actor="ci", reason="r"
    )
    aborted = event_store.mark_aborted(event.id, "MLflow moved elsewhere")
    assert aborted.status is EventStatus.ABORTED
    assert aborted.status_reason == "MLflow moved elsewhere"
    with pytest.raises(EventStoreError, match=f"event {event.id} is aborted"):
        event_store.mark_applied(event.id)


def test_unknown_event_id_is_a_readable_error(event_store: EventStore) -> None:
    """Marking an unknown event id raises an error naming the id."""
    with pytest.raises(EventStoreError, match="no deployment event with id 42"):
        event_store.mark_applied(42)


def test_only_one_pending_move_per_model(event_store: EventStore) -> None:
    """A second pending move of a model is refused; another model's move is not blocked."""
    event_store.begin(M, Action.BOOTSTRAP, state=DeploymentState(champion=1), actor="a", reason="r")
    with pytest.raises(MoveInProgressError, match="another move of 'credit-default' is in flight"):
        event_store.begin(
            M, Action.BOOTSTRAP, state=DeploymentState(champion=2), actor="b", reason="r"
        )
    other = event_store.begin(
        "other-model", Action.BOOTSTRAP, state=DeploymentState(champion=1), actor="b", reason="r"
    )
    assert other.status is EventStatus.PENDING


def test_concurrent_begins_from_separate_connections_let_exactly_one_win(
    tmp_path: Path,
) -> None:
    """Of four concurrent begins on separate connections, exactly one wins."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    EventStore(url).create_schema()
    stores = [EventStore(url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def attempt(store: EventStore) -> None:
        barrier.wait()
        try:
            store.begin(
                M,
                Action.PROMOTE,
                state=DeploymentState(champion=2),
                actor="racer",
                reason="r",
                expected=DeploymentState(),
            )
            outcomes.append("won")
        except MoveInProgressError:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["refused", "refused", "refused", "won"]


def test_begin_with_expected_state_is_a_compare_and_set(event_store: EventStore) -> None:
    """begin() with an expected state refuses if the state changed since it was read."""
    _bootstrap(event_store, version=1)
    with pytest.raises(StaleStateError, match="changed since it was read"):
        event_store.begin(
            M,
            Action.PROMOTE,
            state=DeploymentState(champion=3),
            actor="late",
            reason="r",
            expected=DeploymentState(),  # planned before the bootstrap happened
        )
    event = event_store.begin(
        M,
        Action.PROMOTE,
        state=DeploymentState(champion=3, previous_champion=1),
        actor="on-time",
        reason="r",
        expected=DeploymentState(champion=1),
    )
    assert event.status is EventStatus.PENDING


def test_current_state_is_the_latest_applied_event_only(event_store: EventStore) -> None:
    """The current state is the latest applied event's; aborted and pending ones do not count."""
    assert event_store.current_state(M) == DeploymentState()
    _bootstrap(event_store, version=1)
    canary = event_store.begin(
        M,
        Action.CANARY,
        state=DeploymentState(champion=1, challenger=2, canary_weight=0.1),
        actor="ci",
        reason="r",
    )
    event_store.mark_applied(canary.id)
    aborted = event_store.begin(
        M, Action.PROMOTE, state=DeploymentState(champion=2), actor="ci", reason="r"
    )
    event_store.mark_aborted(aborted.id, "gave up")
    event_store.begin(
        M, Action.PROMOTE, state=DeploymentState(champion=9), actor="ci", reason="pending"
    )
    state = event_store.current_state(M)
    assert state == DeploymentState(champion=1, challenger=2, canary_weight=0.1)
    assert state.champion_since is not None
    assert state.challenger_since is not None
    assert state.challenger_since >= state.champion_since


def test_champion_since_is_when_the_current_champion_took_over(event_store: EventStore) -> None:
    """champion_since is when the current champion was promoted, not the first bootstrap."""
    first = event_store.get(_bootstrap(event_store, version=1))
    promoted = event_store.record(
        M,
        Action.PROMOTE,
        state=DeploymentState(champion=2, previous_champion=1),
        actor="ci",
        reason="r",
    )
    event_store.record(
        M,
        Action.CANARY,
        state=DeploymentState(champion=2, challenger=3, canary_weight=0.2, previous_champion=1),
        actor="ci",
        reason="r",
    )
    state = event_store.current_state(M)
    assert state.champion_since == promoted.applied_at
    assert state.champion_since != first.applied_at


def test_current_states_lists_every_model(event_store: EventStore) -> None:
    """current_states() gives the state of every model."""
    _bootstrap(event_store, "a", 1)
    _bootstrap(event_store, "b", 7)
    states = event_store.current_states()
    assert states == {"a": DeploymentState(champion=1), "b": DeploymentState(champion=7)}


def test_history_is_newest_first_limited_and_filterable(event_store: EventStore) -> None:
    """History is newest first, limited and filterable by status; a zero limit is refused."""
    for version in range(1, 6):
        event_store.record(
            M,
            Action.REGISTER,
            state=DeploymentState(),
            actor="ci",
            reason=f"v{version}",
            to_version=version,
        )
    event_store.begin(M, Action.BOOTSTRAP, state=DeploymentState(champion=1), actor="a", reason="r")
    history = event_store.history(M, limit=3)
    assert [e.reason for e in history] == ["r", "v5", "v4"]
    applied = event_store.history(M, status=EventStatus.APPLIED)
    assert [e.to_version for e in applied] == [5, 4, 3, 2, 1]
    with pytest.raises(ValueError, match="limit must be a positive"):
        event_store.history(M, limit=0)


def test_between_is_a_half_open_window_and_requires_aware_times(
    event_store: EventStore,
) -> None:
    """between() is a half-open window, filterable by model, refusing naive or reversed times."""
    first = event_store.record(M, Action.REGISTER, state=DeploymentState(), actor="a", reason="1")
    second = event_store.record(
        "other", Action.REGISTER, state=DeploymentState(), actor="a", reason="2"
    )
    window = event_store.between(first.created_at, second.created_at + timedelta(microseconds=1))
    assert [e.id for e in window] == [first.id, second.id]
    assert event_store.between(first.created_at, second.created_at) == [first]
    assert event_store.between(first.created_at, datetime.now(UTC), model_name="other") == [second]
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        event_store.between(datetime(2024, 1, 1), datetime.now(UTC))
    with pytest.raises(ValueError, match="is before start"):
        event_store.between(datetime.now(UTC), first.created_at)


def test_last_returns_the_latest_applied_event_of_an_action(event_store: EventStore) -> None:
    """last() returns the latest applied event, of any action or of the one asked for."""
    assert event_store.last(M) is None
    _bootstrap(event_store, version=1)
    rollback = event_store.record(
        M,
        Action.ROLLBACK,
        state=DeploymentState(champion=1),
        actor="c",
        reason="bad",
        from_version=2,
        to_version=1,
    )
    event_store.record(M, Action.REGISTER, state=DeploymentState(champion=1), actor="c", reason="r")
    assert event_store.last(M, Action.ROLLBACK) == rollback
    last = event_store.last(M)
    assert last is not None
    assert last.action is Action.REGISTER


def test_details_must_be_json(event_store: EventStore) -> None:
    """Details that are not strict JSON (a NaN) are refused."""
    with pytest.raises(ValueError, match="details must be JSON-serialisable"):
        event_store.record(
            M,
            Action.REGISTER,
            state=DeploymentState(),
            actor="a",
            reason="r",
            details={"auc": float("nan")},
        )


def test_reason_and_actor_are_required(event_store: EventStore) -> None:
    """A blank reason or empty actor is refused."""
    with pytest.raises(ValueError, match="reason must not be empty"):
        event_store.record(M, Action.REGISTER, state=DeploymentState(), actor="a", reason=" ")
    with pytest.raises(ValueError, match="actor must not be empty"):
        event_store.record(M, Action.REGISTER, state=DeploymentState(), actor="", reason="r")


def test_two_stores_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    """Two stores on one SQLite file see each other's writes."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    writer, reader = EventStore(url), EventStore(url)
    writer.create_schema()
    _bootstrap(writer, version=4)
    assert reader.current_state(M).champion == 4


def test_a_malformed_url_is_reported_as_unavailable_with_the_password_hidden() -> None:
    """A malformed database URL is reported as unavailable with its password masked."""
    with pytest.raises(EventStoreUnavailable, match="not a usable database URL") as caught:
        EventStore("nosuchdb+driver://admin:s3cret@db.example/events")
    assert "s3cret" not in str(caught.value)
    assert "admin:***@db.example" in str(caught.value)


def test_an_unreachable_postgres_is_reported_as_unavailable_naming_the_url() -> None:
    """An unreachable PostgreSQL is reported as unavailable, naming the masked URL."""
    # Port 9 (discard) on loopback: nothing listens, so the connection is refused at once.
    store = EventStore("postgresql://mlplat:hunter2@127.0.0.1:9/events")
    with pytest.raises(EventStoreUnavailable) as caught:
        store.create_schema()
    message = str(caught.value)
    assert "postgresql+psycopg://mlplat:***@127.0.0.1:9/events" in message
    assert "hunter2" not in message


def test_a_missing_directory_is_reported_as_unavailable(tmp_path: Path) -> None:
    """A SQLite file in a missing directory is reported as unavailable."""
    store = EventStore(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'events.db'}")
    with pytest.raises(EventStoreUnavailable, match="unable to open database file"):
        store.create_schema()


def test_querying_before_create_schema_says_what_to_do(tmp_path: Path) -> None:
    """Querying before the schema exists says to call EventStore.create_schema()."""
    store = EventStore(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(EventStoreError, match=r"call EventStore.create_schema\(\)"):
        store.history(M)


def test_bare_postgresql_urls_use_psycopg_3() -> None:
    """Bare postgresql:// and postgres:// URLs are given the psycopg 3 driver."""
    assert EventStore("postgresql://u@h/db").url == "postgresql+psycopg://u@h/db"
    assert EventStore("postgres://u@h/db").url == "postgresql+psycopg://u@h/db"
