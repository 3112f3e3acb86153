"""Crash recovery: a process killed between an event and its MLflow move is repaired next time.

Failures are injected through the constructor: the MLflow client and the event store are
wrapped so that a chosen call raises :class:`SimulatedCrash` (a ``BaseException``, like the
process dying: nothing in the registry catches it). Then a *new* registry on the same stores —
the restarted process — must find the half-done move and finish or abort it.
"""

from __future__ import annotations

from typing import Any

import pytest
from mlflow import MlflowClient

from registry import (
    CANARY_WEIGHT_TAG,
    Action,
    DeploymentEvent,
    DeploymentState,
    EventStatus,
    EventStore,
    ModelRegistry,
)
from tests.unit.registry.stores import LocalStores, SimulatedCrash

pytestmark = pytest.mark.unit

_MLFLOW_WRITES = {
    "set_registered_model_alias",
    "delete_registered_model_alias",
    "set_registered_model_tag",
    "delete_registered_model_tag",
    "set_model_version_tag",
}


class CrashingClient:
    """An MLflow client that dies on the ``crash_at``-th write (1-based), after ``crash_at-1``."""

    def __init__(self, client: MlflowClient, crash_at: int) -> None:
        self._client = client
        self._crash_at = crash_at
        self.writes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in _MLFLOW_WRITES:
            return attribute

        def write(*args: Any, **kwargs: Any) -> Any:
            if len(self.writes) + 1 == self._crash_at:
                raise SimulatedCrash(f"died before {name}{args}")
            self.writes.append(name)
            return attribute(*args, **kwargs)

        return write


class CrashBeforeMarkApplied(EventStore):
    """An event store whose process dies after the MLflow move, before the event is applied."""

    def mark_applied(self, event_id: int, *, note: str | None = None) -> DeploymentEvent:
        raise SimulatedCrash(f"died before marking event {event_id} applied")


class FailingClient(CrashingClient):
    """Raises an ordinary error (a network failure, say) instead of dying."""

    def __getattr__(self, name: str) -> Any:
        attribute = super().__getattr__(name)
        if name not in _MLFLOW_WRITES:
            return attribute

        def write(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            except SimulatedCrash as crash:
                raise ConnectionError("connection reset by peer") from crash

        return write


def _canary(local: LocalStores) -> tuple[int, int]:
    """Champion v1 with v2 as a 25% canary."""
    v1, v2 = local.register(), local.register()
    local.registry.bootstrap(v1, reason="first")
    local.registry.start_canary(v2, 0.25, reason="gate passed")
    return v1, v2


def _crashing_registry(local: LocalStores, crash_at: int) -> ModelRegistry:
    client = CrashingClient(local.client, crash_at)
    return ModelRegistry(client, local.events, local.model, "controller")  # type: ignore[arg-type]


def test_crash_after_the_move_before_mark_applied_is_confirmed_on_restart(
    local: LocalStores,
) -> None:
    """A crash after the MLflow move but before mark_applied is confirmed applied on restart."""
    v1, v2 = _canary(local)
    doomed = ModelRegistry(
        local.client, CrashBeforeMarkApplied(local.events_url), local.model, "ctl"
    )
    with pytest.raises(SimulatedCrash):
        doomed.promote(v2, reason="canary healthy")
    pending = local.events.pending(local.model)
    assert [e.action for e in pending] == [Action.PROMOTE]
    assert local.registry.state().champion == v2  # MLflow moved; the log does not say so yet

    repaired = local.new_registry().reconcile()

    assert [(e.id, e.status) for e in repaired] == [(pending[0].id, EventStatus.APPLIED)]
    assert repaired[0].status_reason == "move found done by reconcile"
    assert local.events.current_state(local.model) == DeploymentState(
        champion=v2, previous_champion=v1
    )
    assert local.events.pending(local.model) == []


def test_crash_between_begin_and_the_move_is_rolled_forward_on_restart(
    local: LocalStores,
) -> None:
    """A crash between begin and the MLflow move is completed on restart, rejecting once."""
    v1, v2 = _canary(local)
    with pytest.raises(SimulatedCrash):
        _crashing_registry(local, crash_at=1).reject(v2, reason="error rate doubled")
    assert local.registry.state().challenger == v2  # nothing reached MLflow
    [pending] = local.events.pending(local.model)

    restarted = local.new_registry()
    [repaired] = restarted.reconcile()

    assert repaired.id == pending.id
    assert repaired.status is EventStatus.APPLIED
    assert repaired.status_reason == "interrupted move completed by reconcile"
    assert restarted.state() == DeploymentState(champion=v1)
    assert restarted.version(v2).rejected
    assert [e.action for e in local.events.history(local.model)].count(Action.REJECT) == 1


@pytest.mark.parametrize("crash_at", [2, 3, 4])
def test_crash_in_the_middle_of_a_multi_write_move_is_completed(
    local: LocalStores, crash_at: int
) -> None:
    """A promote from a canary writes weight, previous-champion tag, both aliases."""
    v1, v2 = _canary(local)
    with pytest.raises(SimulatedCrash):
        _crashing_registry(local, crash_at).promote(v2, reason="canary healthy")

    restarted = local.new_registry()
    restarted.reconcile()

    expected = DeploymentState(champion=v2, previous_champion=v1)
    assert restarted.state() == expected
    assert local.events.current_state(local.model) == expected
    assert [e.status for e in local.events.history(local.model, limit=1)] == [EventStatus.APPLIED]


def test_the_next_move_repairs_first_then_acts_once(local: LocalStores) -> None:
    """A restarted controller repeating the promote it was doing when it died does not double it."""
    v1, v2 = _canary(local)
    with pytest.raises(SimulatedCrash):
        _crashing_registry(local, crash_at=1).promote(v2, reason="canary healthy")

    again = local.new_registry().promote(v2, reason="canary healthy", expected_champion=v1)

    assert again is None  # the repair completed it; the repeat is a no-op
    promotes = [e for e in local.events.history(local.model) if e.action is Action.PROMOTE]
    assert [e.status for e in promotes] == [EventStatus.APPLIED]


def test_a_pending_move_contradicted_by_mlflow_is_aborted_and_the_truth_recorded(
    local: LocalStores,
) -> None:
    """A pending move MLflow contradicts is aborted and MLflow's state recorded as EXTERNAL."""
    _, v2 = _canary(local)
    v3 = local.register()
    with pytest.raises(SimulatedCrash):
        _crashing_registry(local, crash_at=1).promote(v2, reason="canary healthy")
    local.client.set_registered_model_alias(local.model, "champion", str(v3))  # someone in the UI

    repaired = local.new_registry().reconcile()

    assert [(e.action, e.status) for e in repaired] == [
        (Action.PROMOTE, EventStatus.ABORTED),
        (Action.EXTERNAL, EventStatus.APPLIED),
    ]
    assert "neither the state before" in (repaired[0].status_reason or "")
    assert repaired[1].state.champion == v3
    assert local.events.current_state(local.model) == local.registry.state()


def test_an_ordinary_mlflow_failure_leaves_a_pending_event_that_says_so(
    local: LocalStores,
) -> None:
    """An MLflow error mid-move leaves a pending event, says so, and reconcile finishes it."""
    _, v2 = _canary(local)
    flaky = FailingClient(local.client, crash_at=1)
    registry = ModelRegistry(flaky, local.events, local.model, "ctl")  # type: ignore[arg-type]
    with pytest.raises(ConnectionError) as caught:
        registry.promote(v2, reason="canary healthy")
    assert any("stays pending" in note for note in caught.value.__notes__)
    assert len(local.events.pending(local.model)) == 1
    local.new_registry().reconcile()
    assert local.registry.state().champion == v2


def test_an_alias_moved_outside_the_api_is_recorded_as_external(local: LocalStores) -> None:
    """An alias moved outside mlplat is recorded once as EXTERNAL by an unknown actor."""
    v1, v2 = _canary(local)
    local.client.set_registered_model_alias(local.model, "champion", str(v2))

    [event] = local.registry.reconcile()

    assert event.action is Action.EXTERNAL
    assert (event.alias, event.from_version, event.to_version) == ("champion", v1, v2)
    assert event.actor == "unknown (outside mlplat)"
    assert event.details == {"detected_by": "tester"}
    assert local.events.current_state(local.model) == local.registry.state()
    assert local.registry.reconcile() == []


def test_a_weight_edited_in_the_ui_is_recorded_and_an_unreadable_one_reads_as_zero(
    local: LocalStores,
) -> None:
    """A weight tag edited outside is recorded as EXTERNAL; an unreadable one reads as 0."""
    _canary(local)
    local.client.set_registered_model_tag(local.model, CANARY_WEIGHT_TAG, "0.9")
    [event] = local.registry.reconcile()
    assert (event.action, event.alias, event.state.canary_weight) == (Action.EXTERNAL, None, 0.9)

    local.client.set_registered_model_tag(local.model, CANARY_WEIGHT_TAG, "lots")
    assert local.registry.state().canary_weight == 0.0


def test_a_version_registered_without_an_event_gets_a_repair_event(local: LocalStores) -> None:
    """A version registered without its event gets one REPAIR event with its tags."""

    class CrashOnRegisterEvent(EventStore):
        def record(self, *args: Any, **kwargs: Any) -> DeploymentEvent:
            raise SimulatedCrash("died after creating the version")

    doomed = ModelRegistry(local.client, CrashOnRegisterEvent(local.events_url), local.model, "ci")
    with pytest.raises(SimulatedCrash):
        doomed.register(*local.log_model(), {"data_digest": "d"}, reason="trained")

    [event] = local.registry.reconcile()

    assert (event.action, event.to_version) == (Action.REPAIR, 1)
    assert event.details["mlplat.data_digest"] == "d"
    assert local.registry.reconcile() == []


def test_reconcile_with_nothing_to_repair_writes_nothing(local: LocalStores) -> None:
    """Reconcile with nothing to repair writes no event."""
    _canary(local)
    before = len(local.events.history(local.model))
    assert local.registry.reconcile() == []
    assert len(local.events.history(local.model)) == before


def test_reconcile_of_an_unregistered_model_is_empty(local: LocalStores) -> None:
    """Reconcile of a model not yet registered returns no events."""
    assert local.registry.reconcile() == []
