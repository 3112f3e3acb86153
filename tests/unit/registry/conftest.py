"""Fixtures for registry unit tests: a real MLflow SQLite store and a fresh event log per test.

Opening an MLflow SQLite store costs about half a second (schema checks) and creating one runs
its migrations (seconds), so the session shares one store and isolates tests by giving each its
own registered model name; every test still gets its own event database.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from mlflow import MlflowClient

from registry import EventStore, ModelRegistry
from tests.unit.registry.stores import EXPERIMENT, LocalStores

_model_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def mlflow_client(tmp_path_factory: pytest.TempPathFactory) -> MlflowClient:
    """One migrated MLflow SQLite store for the session, with the experiment created."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_experiment(EXPERIMENT, artifact_location=(root / "artifacts").as_uri())
    return client


@pytest.fixture
def local(tmp_path: Path, mlflow_client: MlflowClient) -> LocalStores:
    """A registry for a model no other test uses, with a fresh SQLite event log."""
    model = f"credit-default-{next(_model_numbers)}"
    events_url = f"sqlite:///{tmp_path / 'events.db'}"
    events = EventStore(events_url)
    events.create_schema()
    experiment = mlflow_client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    return LocalStores(
        client=mlflow_client,
        events=events,
        registry=ModelRegistry(mlflow_client, events, model, "tester"),
        model=model,
        experiment_id=experiment.experiment_id,
        events_url=events_url,
    )


@pytest.fixture
def event_store(tmp_path: Path) -> EventStore:
    """An empty SQLite event log with its schema."""
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    store.create_schema()
    return store
