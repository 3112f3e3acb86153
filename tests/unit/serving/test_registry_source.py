"""The registry source loads models from its own MLflow, and changes nothing process-wide."""

from __future__ import annotations

from pathlib import Path

import mlflow
import mlflow.sklearn
import pytest
from mlflow import MlflowClient
from sklearn.pipeline import Pipeline

from pipeline.model_io import SKOPS_TRUSTED_TYPES
from registry import EventStore, ModelRegistry
from serving.batcher import positive_probabilities
from serving.deployment import RegistryModelSource
from serving.reconcile import SMOKE_ROW

pytestmark = pytest.mark.unit


def test_a_registered_model_loads_from_the_registrys_mlflow_not_the_process_default(
    small_model: Pipeline, tmp_path: Path
) -> None:
    """MLflow's global tracking and registry URIs point elsewhere before and after the load."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("serving", artifact_location=(tmp_path / "a").as_uri())
    mlflow.sklearn.save_model(
        small_model,
        tmp_path / "model",
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
    )
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(tmp_path / "model"), "model")
    events = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    events.create_schema()
    registry = ModelRegistry(client, events, "credit-default", "tester")
    version = registry.register(
        f"runs:/{run.info.run_id}/model", run.info.run_id, {"gate_verdict": "passed"}, reason="t"
    )
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    assert uri not in before

    predictor = RegistryModelSource(registry).load(version)

    (probability,) = positive_probabilities(predictor, [SMOKE_ROW])
    assert 0.0 <= probability <= 1.0
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before
