"""Build a :class:`~registry.registry.ModelRegistry` from settings: the one place that wires it."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from registry.event_store import EventStore
from registry.mlflow_store import unavailable_as_error
from registry.registry import ModelRegistry
from registry.settings import RegistrySettings, get_settings, sqlite_path

__all__ = ["ensure_experiment", "open_registry", "registry_from_settings"]


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
    events = EventStore(settings.events_url)
    events.create_schema()
    # A database-backed store without an artifact location would write to ./mlruns.
    location = (
        settings.artifact_root.absolute().as_uri() if settings.uses_local_tracking_store else None
    )
    with _store_creation_lock(sqlite_path(settings.tracking_uri)):
        # The first use of a fresh SQLite store runs MLflow's schema migrations (tracking and
        # registry stores; the client opens the first): two processes at once crash one.
        client = MlflowClient(
            tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri
        )
        ensure_experiment(client, settings.experiment_name, location)
        with unavailable_as_error(settings.tracking_uri):
            client.search_registered_models(max_results=1)
    return registry_from_settings(settings, client, events)


def registry_from_settings(
    settings: RegistrySettings, client: MlflowClient, events: EventStore
) -> ModelRegistry:
    """A registry on ``client`` and ``events`` with every knob ``settings`` holds.

    Connects to nothing and prepares nothing (:func:`open_registry` does): for a process that
    must start while MLflow or the event database is down and wait for them, yet move aliases
    with the same lock lease, failpoints and timeouts as every other process once they answer.

    Args:
        settings: Model name, actor, lock, "since" read and failpoint settings.
        client: MLflow client on ``settings.tracking_uri``.
        events: The event log at ``settings.events_url``.
    """
    return ModelRegistry(
        client,
        events,
        settings.model_name,
        settings.actor,
        failpoints=settings.failpoint_actions(),
        lock_lease_seconds=settings.lock_lease_seconds,
        lock_timeout_seconds=settings.lock_timeout_seconds,
        since_timeout_seconds=settings.since_timeout_seconds,
        since_retry_seconds=settings.since_retry_seconds,
    )


@contextmanager
def _store_creation_lock(db_file: Path | None) -> Iterator[None]:
    """Serialise first use of a SQLite MLflow store across processes (a file lock beside it)."""
    if db_file is None:
        yield
        return
    db_file.parent.mkdir(parents=True, exist_ok=True)
    with db_file.with_name(db_file.name + ".init-lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
