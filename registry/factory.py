"""Build a :class:`~registry.registry.ModelRegistry` from settings: the one place that wires it."""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from registry.events import EventStore
from registry.mlflow_store import unavailable_as_error
from registry.registry import ModelRegistry
from registry.settings import RegistrySettings, get_settings

__all__ = ["ensure_experiment", "open_registry"]


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """Create the experiment unless it exists, and return its id.

    Args:
        client: MLflow client.
        name: Experiment name.
        artifact_location: Where its runs store artifacts; ``None`` leaves it to the server
            (``mlflow-artifacts:/`` when the server proxies artifacts).

    Returns:
        The experiment id.
    """
    with unavailable_as_error(str(client.tracking_uri)):
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        try:
            return str(client.create_experiment(name, artifact_location=artifact_location))
        except MlflowException as exc:
            # Another process created it between the lookup and the create.
            created = client.get_experiment_by_name(name)
            if exc.error_code != "RESOURCE_ALREADY_EXISTS" or created is None:
                raise
            return str(created.experiment_id)


def open_registry(settings: RegistrySettings | None = None) -> ModelRegistry:
    """A ready registry: directories, MLflow client, event schema and experiment in place.

    Args:
        settings: Where things live; :func:`registry.settings.get_settings` by default.

    Raises:
        RegistryUnavailable: If MLflow cannot be reached.
        EventStoreUnavailable: If the events database cannot be reached.
    """
    settings = settings or get_settings()
    settings.ensure_home()
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    events = EventStore(settings.events_url)
    events.create_schema()
    # A database-backed store without an artifact location would write to ./mlruns.
    location = (
        settings.artifact_root.absolute().as_uri() if settings.uses_local_tracking_store else None
    )
    ensure_experiment(client, settings.experiment_name, location)
    return ModelRegistry(client, events, settings.model_name, settings.actor)
