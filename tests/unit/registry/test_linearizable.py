"""Issue 10: the registry never lies, even when processes race or die mid-move.

Each test reproduces one failure the issue measured (it failed before the model lock existed)
and pins the fixed behaviour: reconcile does not act on a stale view or on a live owner's move,
a dead owner's move is finished only after its lease ran out, rollback never restores a rejected
version, a live move whose event could not be closed says so, a retried register makes one
version, and a lost bootstrap race ends cleanly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from mlflow import MlflowClient

from ci.stages import place_version
from registry import (
    Action,
    DeploymentEvent,
    DeploymentState,
    EventStatus,
    EventStore,
    EventStoreUnavailable,
    InvalidMoveError,
    ModelRegistry,
    MoveInProgressError,
    MoveNotRecordedError,
    get_settings,
)
from registry.event_table import model_locks
from tests.unit.registry.stores import LocalStores

pytestmark = pytest.mark.unit


class InterleavingClient:
    """An MLflow client whose first model read lets another process's move run before returning.

    That is the window the issue measured: reconcile read MLflow, a promote by another process
    completed, then reconcile read the log and took the difference for an outside change.
    """

    def __init__(self, client: MlflowClient, interleave: Callable[[], None]) -> None:
        self._client = client
        self._interleave = interleave
        self._fired = False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name != "get_registered_model" or self._fired:
            return attribute

        def read(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            self._fired = True
            self._interleave()
            return result

        return read


def _set_lease(local: LocalStores, owner: str, expires_at: datetime) -> None:
    """Write the model's lock row as another (live or dead) process holds it."""
    engine = sa.create_engine(local.events_url)
    with engine.begin() as conn:
        conn.execute(model_locks.delete().where(model_locks.c.model_name == local.model))
        conn.execute(
            model_locks.insert().values(
                model_name=local.model, owner=owner, token=1, expires_at=expires_at
            )
        )
    engine.dispose()


def _actions(local: LocalStores) -> list[str]:
    return [e.action.value for e in reversed(local.events.history(local.model))]


def test_reconcile_racing_a_promote_records_no_false_external_event(local: LocalStores) -> None:
    """A promote that completes while reconcile reads is not taken for a change outside mlplat."""
    v1, v2 = local.register(), local.register()
    local.registry.bootstrap(v1, reason="first")
    other = local.new_registry(actor="ci")
    movers: list[threading.Thread] = []

    def promote_meanwhile() -> None:
        mover = threading.Thread(target=lambda: other.promote(v2, reason="canary passed"))
        movers.append(mover)
        mover.start()
        mover.join(timeout=3.0)  # before the fix it completed here; now it waits for the lock

    watcher = ModelRegistry(
        InterleavingClient(local.client, promote_meanwhile),  # type: ignore[arg-type]
        EventStore(local.events_url),
        local.model,
        "controller",
    )
    watcher.reconcile(wait=True)
    movers[0].join(timeout=60)

    assert Action.EXTERNAL.value not in _actions(local)
    assert local.registry.state() == DeploymentState(champion=v2, previous_champion=v1)
    assert local.events.applied_state(local.model) == local.registry.state()


def test_reconcile_leaves_a_live_owners_move_alone_and_finishes_it_once_the_lease_expires(
    local: LocalStores,
) -> None:
    """In flight: not completed, not external; after its owner's lease ran out: rolled forward."""
    v1, v2 = local.register(), local.register()
    local.registry.bootstrap(v1, reason="first")
    # Another process holds the lock, wrote its pending promote, and moved the alias so far.
    _set_lease(local, "ci#alive", datetime.now(UTC) + timedelta(seconds=60))
    event = local.events.begin(
        local.model,
        Action.PROMOTE,
        state=DeploymentState(champion=v2, previous_champion=v1),
        actor="ci",
        reason="canary passed",
        alias="champion",
        from_version=v1,
        to_version=v2,
        expected=DeploymentState(champion=v1),
    )
    local.client.set_registered_model_alias(local.model, "champion", str(v2))

    assert local.new_registry().reconcile() == []
    assert [e.id for e in local.events.pending(local.model)] == [event.id]
    impatient = ModelRegistry(
        local.client, EventStore(local.events_url), local.model, "ctl", lock_timeout_seconds=0.2
    )
    with pytest.raises(MoveInProgressError, match=r"holds its lock: ci#alive"):
        impatient.rollback(reason="regression")

    _set_lease(local, "ci#alive", datetime.now(UTC) - timedelta(seconds=1))  # it died
    repaired = local.new_registry().reconcile()

    assert [(e.id, e.status) for e in repaired] == [(event.id, EventStatus.APPLIED)]
    assert repaired[0].status_reason == "interrupted move completed by reconcile"
    assert local.registry.state() == DeploymentState(champion=v2, previous_champion=v1)
    assert Action.EXTERNAL.value not in _actions(local)


def test_rollback_refuses_to_restore_a_rejected_version(local: LocalStores) -> None:
    """The previous champion was rejected after it served: rollback names it and moves nothing."""
    v1, v2 = local.register(), local.register()
    local.registry.bootstrap(v1, reason="first")
    local.registry.promote(v2, reason="canary passed")
    local.registry.reject(v1, reason="found to leak labels")

    with pytest.raises(InvalidMoveError, match=rf"to version {v1}: it was rejected"):
        local.registry.rollback(reason="regression")

    assert local.registry.state().champion == v2
    assert Action.ROLLBACK.value not in _actions(local)


class EventDatabaseDownAfterTheMove(EventStore):
    """The event database goes away between the MLflow writes and marking the event applied."""

    def mark_applied(self, event_id: int, *, note: str | None = None) -> DeploymentEvent:
        raise EventStoreUnavailable(self.url, "connection refused")


def test_a_live_move_whose_event_cannot_be_closed_says_what_is_live(local: LocalStores) -> None:
    """Not a bare error: the message says the version is live and reconcile records it."""
    v1, v2 = local.register(), local.register()
    local.registry.bootstrap(v1, reason="first")
    flaky = ModelRegistry(
        local.client, EventDatabaseDownAfterTheMove(local.events_url), local.model, "ci"
    )

    with pytest.raises(MoveNotRecordedError) as caught:
        flaky.promote(v2, reason="canary passed")

    [pending] = local.events.pending(local.model)
    message = str(caught.value)
    assert f"promote of '{local.model}' done (champion {v1}->{v2})" in message
    assert "this is live in MLflow" in message
    assert f"deployment event {pending.id} could not be marked applied" in message
    assert "`mlplat deploy reconcile` marks it applied" in message
    assert local.registry.state().champion == v2
    [done] = local.new_registry().reconcile()
    assert (done.id, done.status) == (pending.id, EventStatus.APPLIED)


def test_the_cli_reports_a_live_but_unrecorded_promote_without_a_bare_error(
    local: LocalStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``deploy promote`` exits 0 saying the move is live; ``deploy reconcile`` records it."""
    from ci.deploy_cli import deploy

    v1, v2 = local.register(), local.register()
    local.registry.bootstrap(v1, reason="first")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(local.client.tracking_uri))
    monkeypatch.setenv("MLPLAT_EVENTS_URL", local.events_url)
    monkeypatch.setenv("MLPLAT_MODEL_NAME", local.model)
    working = EventStore.mark_applied
    monkeypatch.setattr(EventStore, "mark_applied", EventDatabaseDownAfterTheMove.mark_applied)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(deploy, ["promote", "--version", str(v2), "--reason", "ok"])
        monkeypatch.setattr(EventStore, "mark_applied", working)  # the database is back
        repaired = CliRunner().invoke(deploy, ["reconcile"])
    finally:
        get_settings.cache_clear()

    assert result.exit_code == 0, result.output
    assert "Error" not in result.output
    assert "done, not yet recorded: promote of" in result.output
    assert "this is live in MLflow" in result.output
    assert repaired.exit_code == 0, repaired.output
    assert f"promote champion {v1}->{v2} [applied]" in repaired.output
    assert local.events.pending(local.model) == []


class RetriedCreateClient:
    """An MLflow client whose create was sent twice (the first response was lost, it retried)."""

    def __init__(self, client: MlflowClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name != "create_model_version":
            return attribute

        def create_twice(*args: Any, **kwargs: Any) -> Any:
            attribute(*args, **kwargs)
            return attribute(*args, **kwargs)

        return create_twice


def test_a_retried_register_leaves_exactly_one_version(local: LocalStores) -> None:
    """A create retried under the hood and a re-run job both end with one version, one event."""
    registry = ModelRegistry(
        RetriedCreateClient(local.client),  # type: ignore[arg-type]
        local.events,
        local.model,
        "ci",
    )
    uri, run_id = local.log_model()

    first = registry.register(uri, run_id, {"data_digest": "d"}, reason="trained")
    again = registry.register(uri, run_id, {"data_digest": "d"}, reason="job retried")

    assert again == first
    assert [v.version for v in local.registry.versions()] == [first]
    assert _actions(local) == ["register"]


def test_two_first_runs_racing_end_with_one_champion_and_a_clear_message(
    local: LocalStores,
) -> None:
    """Both runs saw no champion; the second ends cleanly with its version gated, no alias."""
    v1, v2 = local.register(), local.register()

    assert place_version(local.registry, v1, None, "runs:/a")[0] == "champion"
    alias, detail = place_version(local.new_registry(), v2, None, "runs:/b")

    assert alias is None
    assert f"version {v2} passed the gates and is registered, but version {v1} became" in detail
    assert f"mlplat deploy canary --version {v2}" in detail
    assert local.registry.state() == DeploymentState(champion=v1)
