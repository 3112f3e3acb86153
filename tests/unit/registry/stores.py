"""Test doubles and handles shared by the registry unit tests."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow import MlflowClient

from registry import EventStore, ModelRegistry

EXPERIMENT = "credit-default"


@dataclass
class LocalStores:
    """A registry for one model on the shared SQLite MLflow store and its own event log."""

    client: MlflowClient
    events: EventStore
    registry: ModelRegistry
    model: str
    experiment_id: str
    events_url: str

    def new_registry(self, actor: str = "tester") -> ModelRegistry:
        """A second registry on the same stores, as another process (or a restart) would open."""
        return ModelRegistry(self.client, EventStore(self.events_url), self.model, actor)

    def log_model(self) -> tuple[str, str]:
        """A run standing in for a trained model: ``(model_uri, run_id)``."""
        run = self.client.create_run(self.experiment_id)
        return f"runs:/{run.info.run_id}/model", run.info.run_id

    def register(self, **lineage: str) -> int:
        """Register a fresh model version with default lineage."""
        tags = {"data_digest": "sha256:abc", "code_version": "git:1234", "gate_verdict": "passed"}
        return self.registry.register(*self.log_model(), {**tags, **lineage}, reason="trained")


class SimulatedCrash(BaseException):
    """Stands in for the process dying: not an ``Exception``, so nothing on the way catches it."""
