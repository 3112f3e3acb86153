"""The registry on PostgreSQL: ``mlflow server`` on a PostgreSQL store, events in PostgreSQL.

This is the team setup the project recommends: one PostgreSQL holds MLflow's metadata and the
deployment-event log (separate databases here, to show that either can move on its own).
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from mlflow import MlflowClient

from registry import (
    Action,
    DeploymentEvent,
    DeploymentState,
    EventStatus,
    EventStore,
    EventStoreError,
    EventStoreUnavailable,
    ModelRegistry,
    MoveInProgressError,
    StaleStateError,
)
from tests.integration.conftest import MlflowServerFactory, PostgresDatabaseFactory
from tests.integration.registry.scenario import run_lifecycle, stand_in_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass(frozen=True)
class PostgresStack:
    """An ``mlflow server`` on PostgreSQL and a PostgreSQL event database."""

    mlflow_url: str
    events_url: str

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.mlflow_url, registry_uri=self.mlflow_url)

    def registry(self, model: str | None = None, actor: str = "it") -> ModelRegistry:
        name = model or f"credit-pg-{uuid.uuid4().hex[:8]}"
        return ModelRegistry(self.client(), EventStore(self.events_url), name, actor)


@pytest.fixture(scope="module")
def stack(
    postgres_database: PostgresDatabaseFactory,
    mlflow_server: MlflowServerFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> PostgresStack:
    mlflow_db, events_db = postgres_database(), postgres_database()
    url = mlflow_server(mlflow_db, tmp_path_factory.mktemp("mlflow-pg-artifacts"))
    EventStore(events_db).create_schema()
    return PostgresStack(url, events_db)


def test_every_alias_move_is_an_event_in_postgres(stack: PostgresStack) -> None:
    """Every move is a PostgreSQL event with an aware timestamp; replaying them gives the state."""
    registry = stack.registry()
    history = run_lifecycle(registry, stack.client())
    assert all(e.created_at.tzinfo is not None for e in history)
    assert EventStore(stack.events_url).current_state(registry.model_name) == registry.state()


def test_a_crash_between_event_and_move_is_repaired_on_postgres(stack: PostgresStack) -> None:
    """A crash before marking a bootstrap applied is finished by the next registry, not redone."""

    class Crash(BaseException):
        pass

    class CrashBeforeMarkApplied(EventStore):
        def mark_applied(self, event_id: int, *, note: str | None = None) -> DeploymentEvent:
            raise Crash(event_id)

    registry = stack.registry()
    client = stack.client()
    v1 = registry.register(*stand_in_model(client), {"data_digest": "d"}, reason="trained")
    doomed = ModelRegistry(
        client, CrashBeforeMarkApplied(stack.events_url), registry.model_name, "it"
    )
    with pytest.raises(Crash):
        doomed.bootstrap(v1, reason="first")
    assert [e.action for e in registry.events.pending(registry.model_name)] == [Action.BOOTSTRAP]

    again = stack.registry(registry.model_name).bootstrap(v1, reason="restarted")

    assert again is None
    latest = registry.events.history(registry.model_name, limit=1)
    assert [(e.action, e.status) for e in latest] == [(Action.BOOTSTRAP, EventStatus.APPLIED)]
    assert registry.state() == DeploymentState(champion=v1)


def test_an_alias_moved_in_the_ui_is_recorded_on_postgres(stack: PostgresStack) -> None:
    """An alias moved outside the registry is recorded by reconcile as an EXTERNAL event."""
    registry = stack.registry()
    client = stack.client()
    v1, v2 = (
        registry.register(*stand_in_model(client), {"data_digest": str(n)}, reason="trained")
        for n in range(2)
    )
    registry.bootstrap(v1, reason="first")
    client.set_registered_model_alias(registry.model_name, "champion", str(v2))

    [event] = registry.reconcile()

    assert (event.action, event.from_version, event.to_version) == (Action.EXTERNAL, v1, v2)


def test_concurrent_movers_on_postgres_cannot_both_begin(stack: PostgresStack) -> None:
    """Of four movers beginning at once on PostgreSQL, exactly one wins and three are refused."""
    model = f"race-{uuid.uuid4().hex[:8]}"
    stores = [EventStore(stack.events_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def attempt(store: EventStore) -> None:
        barrier.wait()
        try:
            store.begin(
                model,
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


def test_monitoring_queries_on_postgres(stack: PostgresStack) -> None:
    """Time-window, current-state and last-event queries work on PostgreSQL, JSON details intact."""
    store = EventStore(stack.events_url)
    start = datetime.now(UTC)
    model = f"monitor-{uuid.uuid4().hex[:8]}"
    first = store.record(
        model, Action.BOOTSTRAP, state=DeploymentState(champion=1), actor="a", reason="r"
    )
    second = store.record(
        model,
        Action.CANARY,
        state=DeploymentState(champion=1, challenger=2, canary_weight=0.1),
        actor="a",
        reason="r",
        details={"auc": 0.8, "nested": {"psi": [0.1, 0.2]}},
    )
    window = store.between(start, datetime.now(UTC) + timedelta(seconds=1), model_name=model)
    assert [e.id for e in window] == [first.id, second.id]
    assert window[1].details == {"auc": 0.8, "nested": {"psi": [0.1, 0.2]}}
    assert window[0].created_at.tzinfo is not None
    state = store.current_states()[model]
    assert state == DeploymentState(champion=1, challenger=2, canary_weight=0.1)
    assert state.champion_since == first.applied_at
    assert store.last(model, Action.CANARY) == second


def test_a_missing_postgres_database_is_reported_naming_the_url(postgres_admin_url: str) -> None:
    """A missing database raises EventStoreUnavailable naming it, without the password."""
    from sqlalchemy.engine import make_url

    url = make_url(postgres_admin_url).set(database="mlplat_no_such_db", password="pw")
    store = EventStore(url.render_as_string(hide_password=False))
    with pytest.raises(EventStoreUnavailable, match="mlplat_no_such_db") as caught:
        store.history("m")
    assert ":pw@" not in str(caught.value)


def test_querying_postgres_before_create_schema_says_what_to_do(
    postgres_database: PostgresDatabaseFactory,
) -> None:
    """Querying an empty database says to call EventStore.create_schema()."""
    store = EventStore(postgres_database())
    with pytest.raises(EventStoreError, match=r"call EventStore.create_schema\(\)"):
        store.pending()


def test_begin_compare_and_set_is_atomic_under_read_committed(stack: PostgresStack) -> None:
    """A move that reads, then stalls before its insert, cannot also log a move from the old state.

    Before the advisory lock, B read "champion 1, nothing pending", A began and applied 1->2 in
    the gap, and B's 1->3 was inserted too: two moves from the same state, in 6 of 6 tries.
    """
    model = f"cas-{uuid.uuid4().hex[:8]}"
    events = EventStore(stack.events_url)
    first = DeploymentState(champion=1)
    events.record(model, Action.BOOTSTRAP, state=first, actor="it", reason="r")
    slow = EventStore(stack.events_url)
    b_read, a_finished = threading.Event(), threading.Event()
    outcomes: dict[str, str] = {}

    @sa.event.listens_for(slow._engine, "before_cursor_execute")
    def _stall_before_insert(*args: object) -> None:
        if str(args[2]).lstrip().upper().startswith("INSERT INTO DEPLOYMENT_EVENTS"):
            b_read.set()
            a_finished.wait(timeout=3)  # A gets every chance to move in the gap

    def move(store: EventStore, name: str, to: int) -> None:
        try:
            event = store.begin(
                model,
                Action.PROMOTE,
                state=DeploymentState(champion=to, previous_champion=1),
                actor=name,
                reason="race",
                alias="champion",
                from_version=1,
                to_version=to,
                expected=DeploymentState(champion=1),
            )
            store.mark_applied(event.id)
            outcomes[name] = "applied"
        except (MoveInProgressError, StaleStateError) as exc:
            outcomes[name] = type(exc).__name__
        finally:
            if name == "a":
                a_finished.set()

    b = threading.Thread(target=move, args=(slow, "b", 3))
    b.start()
    assert b_read.wait(timeout=20)
    a = threading.Thread(target=move, args=(events, "a", 2))
    a.start()
    a.join(timeout=30)
    b.join(timeout=30)

    moved_from_1 = [
        e.to_version
        for e in events.history(model)
        if e.action is Action.PROMOTE and e.status is not EventStatus.ABORTED
    ]
    assert len(moved_from_1) == 1, (moved_from_1, outcomes)
    assert sorted(outcomes.values()) in (
        ["MoveInProgressError", "applied"],
        ["StaleStateError", "applied"],
    )
