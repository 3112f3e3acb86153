"""One canary lifecycle, run against every backend: each alias move must leave one event."""

from __future__ import annotations

from collections.abc import Callable

from mlflow import MlflowClient

from registry import (
    Action,
    DeploymentEvent,
    DeploymentState,
    EventStatus,
    ModelRegistry,
    ensure_experiment,
)

EXPECTED_ACTIONS = [
    Action.REGISTER, Action.REGISTER, Action.REGISTER,
    Action.BOOTSTRAP, Action.CANARY, Action.CANARY, Action.PROMOTE,
    Action.CHALLENGER, Action.REJECT, Action.ROLLBACK,
]  # fmt: skip


def stand_in_model(client: MlflowClient, experiment: str = "registry-it") -> tuple[str, str]:
    """A run standing in for a trained model: ``(model_uri, run_id)``."""
    run = client.create_run(ensure_experiment(client, experiment, None))
    return f"runs:/{run.info.run_id}/model", run.info.run_id


def _events_after(registry: ModelRegistry, last_id: int) -> list[DeploymentEvent]:
    events = registry.events.history(registry.model_name, limit=1000)
    return [e for e in reversed(events) if e.id > last_id]


def run_lifecycle(registry: ModelRegistry, client: MlflowClient) -> list[DeploymentEvent]:
    """Register three versions and walk them through every kind of move.

    After each call, if the deployment state changed, exactly one new applied event must record
    the new state; a repeated move must write nothing.

    Returns:
        The model's events, oldest first.
    """
    v1, v2, v3 = (
        registry.register(
            *stand_in_model(client),
            {"data_digest": f"sha256:{n}", "code_version": "git:abc", "gate_verdict": "passed"},
            reason="trained",
        )
        for n in range(3)
    )
    moves: list[tuple[bool, Callable[[], object]]] = [
        (True, lambda: registry.bootstrap(v1, reason="first model")),
        (False, lambda: registry.bootstrap(v1, reason="repeat")),
        (True, lambda: registry.start_canary(v2, 0.1, reason="gate passed", evidence="g.html")),
        (True, lambda: registry.set_canary_weight(0.5, reason="ramp", expected_challenger=v2)),
        (True, lambda: registry.promote(v2, reason="canary healthy", expected_champion=v1)),
        (False, lambda: registry.promote(v2, reason="repeat", expected_champion=v1)),
        (True, lambda: registry.set_challenger(v3, reason="next candidate")),
        (True, lambda: registry.reject(v3, reason="drift", details={"psi": 0.31})),
        (False, lambda: registry.reject(v3, reason="repeat")),
        (True, lambda: registry.rollback(reason="regression", expected_champion=v2)),
        (False, lambda: registry.rollback(reason="repeat", expected_champion=v2)),
    ]
    for moves_something, move in moves:
        last_id = max((e.id for e in registry.events.history(registry.model_name, 1)), default=0)
        before = registry.state()
        move()
        after = registry.state()
        written = _events_after(registry, last_id)
        if not moves_something:
            assert written == [], f"a repeated move wrote {written}"
            assert after == before
            continue
        assert len(written) == 1, f"expected exactly one event, got {written}"
        assert written[0].status is EventStatus.APPLIED
        assert written[0].state == after
    assert registry.state() == DeploymentState(champion=v1)
    assert registry.version(v3).rejected
    assert registry.events.pending(registry.model_name) == []
    history = list(reversed(registry.events.history(registry.model_name)))
    assert [e.action for e in history] == EXPECTED_ACTIONS
    return history
