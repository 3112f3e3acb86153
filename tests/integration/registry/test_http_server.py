"""The registry against a real ``mlflow server`` over HTTP (SQLite backend store)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from registry import (
    Action,
    DeploymentEvent,
    DeploymentState,
    EventStatus,
    EventStore,
    ModelRegistry,
    RegistrySettings,
    ensure_experiment,
    open_registry,
)
from tests.integration.registry.scenario import run_lifecycle, stand_in_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class SimulatedCrash(BaseException):
    """The process dying between the event and the MLflow move."""


@pytest.fixture
def http_registry(mlflow_server_url: str, tmp_path: Path) -> ModelRegistry:
    client = MlflowClient(tracking_uri=mlflow_server_url, registry_uri=mlflow_server_url)
    events = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    events.create_schema()
    return ModelRegistry(client, events, f"credit-http-{uuid.uuid4().hex[:8]}", "it")


def test_every_alias_move_is_an_event_over_http(http_registry: ModelRegistry) -> None:
    """The whole alias lifecycle against a real mlflow server records every move as an event."""
    history = run_lifecycle(http_registry, _client(http_registry))
    assert history[-1].action is Action.ROLLBACK


def test_alias_values_arrive_as_str_over_http_and_leave_as_int(
    http_registry: ModelRegistry,
) -> None:
    """Aliases come back from the REST client as strings; the registry returns int versions."""
    client = _client(http_registry)
    http_registry.bootstrap(_register(http_registry, client), reason="first")
    raw = client.get_registered_model(http_registry.model_name).aliases
    assert raw == {"champion": "1"}  # the REST client's type
    state = http_registry.state()
    assert state == DeploymentState(champion=1)
    assert isinstance(state.champion, int)
    assert http_registry.versions()[0].aliases == ("champion",)


def test_a_crash_between_event_and_move_is_repaired_over_http(
    http_registry: ModelRegistry, tmp_path: Path
) -> None:
    """A crash after the move but before marking the event applied is repaired by reconcile."""
    client = _client(http_registry)
    v1, v2 = _register(http_registry, client), _register(http_registry, client)
    http_registry.bootstrap(v1, reason="first")

    class CrashBeforeMarkApplied(EventStore):
        def mark_applied(self, event_id: int, *, note: str | None = None) -> DeploymentEvent:
            raise SimulatedCrash(event_id)

    doomed = ModelRegistry(
        client, CrashBeforeMarkApplied(http_registry.events.url), http_registry.model_name, "it"
    )
    with pytest.raises(SimulatedCrash):
        doomed.start_canary(v2, 0.2, reason="gate passed")

    [repaired] = http_registry.reconcile()
    assert (repaired.action, repaired.status) == (Action.CANARY, EventStatus.APPLIED)
    assert http_registry.state() == DeploymentState(champion=v1, challenger=v2, canary_weight=0.2)


def test_open_registry_against_a_server_leaves_artifacts_to_the_server(
    mlflow_server_url: str, tmp_path: Path
) -> None:
    """Against a server, artifacts go to mlflow-artifacts: and only the event log is local."""
    settings = RegistrySettings(
        home=tmp_path / "home",
        tracking_uri=mlflow_server_url,
        model_name=f"credit-open-{uuid.uuid4().hex[:8]}",
        experiment_name=f"exp-{uuid.uuid4().hex[:8]}",
        actor="it",
    )
    registry = open_registry(settings)
    client = _client(registry)
    experiment = client.get_experiment_by_name(settings.experiment_name)
    assert experiment is not None
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    assert (tmp_path / "home" / "events.db").exists()
    assert not (tmp_path / "home" / "mlflow.db").exists()


def _client(registry: ModelRegistry) -> MlflowClient:
    uri = registry.tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _register(registry: ModelRegistry, client: MlflowClient) -> int:
    return registry.register(*stand_in_model(client), {"data_digest": "d"}, reason="trained")


def test_a_real_sklearn_model_is_registered_and_loads_by_alias(
    http_registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the pipeline does: ``log_model`` gives ``models:/m-…``; serving loads ``@champion``."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    url = http_registry.tracking_uri
    features = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticRegression().fit(features, [0, 0, 1, 1])
    previous = mlflow.get_tracking_uri()
    previous_registry = mlflow.get_registry_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)  # restored after the test
    # Both globals: an earlier test in the same process may have pointed the registry elsewhere.
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    try:
        experiment_id = ensure_experiment(_client(http_registry), "registry-it-models", None)
        with mlflow.start_run(experiment_id=experiment_id):
            info = mlflow.sklearn.log_model(
                model, name="model", pip_requirements=["scikit-learn>=1.9,<1.10"]
            )
        version = http_registry.register(
            info.model_uri, info.run_id, {"data_digest": "sha256:0"}, reason="trained"
        )
        http_registry.bootstrap(version, reason="first model")
        loaded = mlflow.sklearn.load_model(http_registry.model_uri("champion"))
    finally:
        mlflow.set_tracking_uri(previous)
        mlflow.set_registry_uri(previous_registry)
    assert http_registry.version(version).source == info.model_uri
    assert list(loaded.predict(features)) == [0, 0, 1, 1]
