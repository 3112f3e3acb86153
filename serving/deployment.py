"""What should serve, and where the models come from.

:class:`DesiredState` is what the registry asks for: champion, challenger, canary weight and the
versions that may not serve. A :class:`ModelSource` answers it and loads models: the real one
reads the MLflow registry (:class:`RegistryModelSource`), :class:`FileModelSource` serves one
file, and tests pass a small fake. What the process actually serves is the snapshot in
:mod:`serving.snapshot`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import mlflow.artifacts
from mlflow import MlflowClient

from pipeline.model_io import load_model, load_skops, read_compile_check
from registry import EventStore, ModelRegistry, RegistrySettings, registry_from_settings
from registry import get_settings as get_registry_settings
from registry.admission import Veto, vet
from serving.batcher import Predictor
from serving.inference_path import Recorded
from serving.settings import ServingSettings, get_settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DesiredState:
    """What the registry says should serve.

    Attributes:
        champion: Version behind the ``champion`` alias, if any.
        challenger: Version behind the ``challenger`` alias, if any.
        canary_weight: Share of routing keys for the challenger, in [0, 1].
        champion_since: When the champion took the role, if known.
        challenger_since: When the challenger took the role, if known.
        vetoes: Versions among these that may not serve, and why (see
            :mod:`registry.admission`). A source that knows the evaluation gate (the registry)
            fills it; a source without one (a local file, a test fake) leaves it empty.
    """

    champion: int | None
    challenger: int | None = None
    canary_weight: float = 0.0
    champion_since: datetime | None = None
    challenger_since: datetime | None = None
    vetoes: Mapping[int, Veto] = field(default_factory=dict)

    @property
    def canary_active(self) -> bool:
        """Whether the challenger should get traffic."""
        return self.challenger is not None and self.canary_weight > 0.0


class ModelSource(Protocol):
    """Where the desired deployment and the models come from."""

    def desired(self) -> DesiredState:
        """Return the deployment the registry asks for (may block; called from a thread)."""
        ...

    def load(self, version: int) -> Predictor:
        """Load one model version (may block; called from a thread)."""
        ...


class RegistryModelSource:
    """The real source: aliases and canary weight from :mod:`registry`, models via skops.

    Args:
        model_registry: An open registry client, or a function that opens one. A function is
            called on first use and again after a failure, so the service can start (and say
            "not ready") while the registry is still down.
        loader: Loads a model from its registry URI (``models:/<name>/<version>``); default
            :func:`load_registered_model` from the registry's own MLflow (skops, trusted types
            only).
    """

    def __init__(
        self,
        model_registry: ModelRegistry | Callable[[], ModelRegistry],
        loader: Callable[[str], Predictor] | None = None,
    ) -> None:
        self._opener = model_registry if callable(model_registry) else None
        self._registry = None if callable(model_registry) else model_registry
        self._loader = loader

    @classmethod
    def from_environment(cls, settings: ServingSettings | None = None) -> RegistryModelSource:
        """A read-only source for the registry configured by ``MLFLOW_TRACKING_URI``/``MLPLAT_*``.

        Sets the MLflow client's retries and timeout from ``settings`` (process-wide variables
        MLflow reads on each call: this runs in the service process at startup, never at
        import). Connects to nothing: the registry is opened on the first poll.

        Args:
            settings: The service's settings; default :func:`serving.settings.get_settings`.
        """
        settings = settings or get_settings()
        os.environ.update(settings.mlflow_client_environment())
        return cls(lambda: open_read_only(get_registry_settings()))

    def _client(self) -> ModelRegistry:
        if self._registry is None:
            assert self._opener is not None
            self._registry = self._opener()
        return self._registry

    @property
    def events_error(self) -> str | None:
        """Why the registry's event log cannot be read (see ``ModelRegistry.events_error``)."""
        return None if self._registry is None else self._registry.events_error

    def desired(self) -> DesiredState:
        """Read aliases, canary weight and the tags of the aliased versions from the registry.

        The tags are read on every poll, not once per load: a version rejected after it was
        loaded (or moved from canary to champion, which reuses the loaded model) is caught too.
        """
        registry = self._client()
        state = registry.state()
        vetoes: dict[int, Veto] = {}
        for version in (state.champion, state.challenger):
            if version is not None and version not in vetoes:
                veto = vet(registry.version(version))
                if veto is not None:
                    vetoes[version] = veto
        return DesiredState(
            champion=state.champion,
            challenger=state.challenger,
            canary_weight=state.canary_weight,
            champion_since=state.champion_since,
            challenger_since=state.challenger_since,
            vetoes=vetoes,
        )

    def load(self, version: int) -> Predictor:
        """Load ``version`` from its registry URI."""
        registry = self._client()
        if self._loader is not None:
            return self._loader(registry.model_uri(version))
        return load_registered_model(registry.artifact_uri(version), registry.tracking_uri)


def load_registered_model(artifact_uri: str, tracking_uri: str) -> Predictor:
    """Load the model stored at ``artifact_uri`` from the MLflow at ``tracking_uri``.

    :func:`pipeline.model_io.load_model` resolves URIs through MLflow's process-wide tracking and
    registry URIs (a ``models:/`` URI always does, whatever client asks); pointing those at this
    registry would change them for every other MLflow user in the process. So the version's
    own storage URI (:meth:`registry.ModelRegistry.artifact_uri`) is downloaded here with the
    tracking URI given explicitly, and ``load_model`` reads the local copy: the skops format
    and trusted-type checks stay in one place. The model comes back with the compile check its
    registration recorded (:func:`pipeline.model_io.read_compile_check`), which decides whether
    it may serve through the compiled path (:mod:`serving.inference_path`).
    """
    with tempfile.TemporaryDirectory(prefix="mlplat-download-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=artifact_uri, dst_path=tmp, tracking_uri=tracking_uri
        )
        model: Predictor = load_model(local)
        check = read_compile_check(Path(local))
    return Recorded(model, check)


class FileModelSource:
    """Serves one skops file as the champion, with no registry and no canary.

    For benchmarks and local runs: the serving path is the real one, only the model's origin
    differs.

    Args:
        path: A skops file written by :func:`skops.io.dump` of a fitted pipeline.
        version: The version number to report.
    """

    def __init__(self, path: Path, version: int = 1) -> None:
        self.path = path
        self.version = version

    def desired(self) -> DesiredState:
        """The file is always the champion."""
        return DesiredState(champion=self.version)

    def load(self, version: int) -> Predictor:
        """Load the file (trusting only the pipeline's known types)."""
        predictor: Predictor = load_skops(self.path)
        return predictor


def open_read_only(settings: RegistrySettings) -> ModelRegistry:
    """A registry client for reading only: creates no schema, experiment or directory.

    :func:`registry.open_registry` prepares everything a writer needs (the events schema, the
    experiment), so it fails while the events database is down. The service only reads the
    aliases and tags (and, best effort, the "since" times from the event log), so it must
    start without the events database.
    """
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    # The event store gives up connecting to PostgreSQL after 5 s (registry/database.py).
    events = EventStore(settings.events_url)
    return registry_from_settings(settings, client, events)
