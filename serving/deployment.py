"""What the process serves: an immutable snapshot of loaded models, swapped atomically.

A request reads :attr:`DeploymentHolder.current` once and uses that snapshot to the end, so a
swap (one attribute assignment) can never hand it half of the old deployment and half of the
new one, and a model stays alive for as long as a request still holds it. Models come from a
:class:`ModelSource`: the real one reads the MLflow registry (:class:`RegistryModelSource`);
tests pass a small fake.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from interfaces.routing import CANARY, CHAMPION, Variant, canary_salt, key_hash, variant_at
from registry.admission import RefusalReason, Veto, vet
from serving.batcher import Predictor

if TYPE_CHECKING:
    from registry import ModelRegistry, RegistrySettings
    from serving.settings import ServingSettings

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
        loader: Loads a model from a registry URI; default
            :func:`pipeline.model_io.load_model` (skops, trusted types only).
    """

    def __init__(
        self,
        model_registry: ModelRegistry | Callable[[], ModelRegistry],
        loader: Callable[[str], Predictor] | None = None,
    ) -> None:
        self._opener = model_registry if callable(model_registry) else None
        self._registry = None if callable(model_registry) else model_registry
        if loader is None:
            from pipeline.model_io import load_model

            loader = load_model
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
        from registry import get_settings

        if settings is None:
            from serving.settings import get_settings as get_serving_settings

            settings = get_serving_settings()
        os.environ.update(settings.mlflow_client_environment())

        def open_configured() -> ModelRegistry:
            import mlflow

            registry_settings = get_settings()
            # ``load_model`` resolves ``models:/`` URIs through MLflow's process-wide URIs;
            # point them at the registry we read (done here at startup, never at import).
            mlflow.set_tracking_uri(registry_settings.tracking_uri)
            mlflow.set_registry_uri(registry_settings.tracking_uri)
            return open_read_only(registry_settings)

        return cls(open_configured)

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
        return self._loader(self._client().model_uri(version))


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
        from pipeline.model_io import load_skops

        predictor: Predictor = load_skops(self.path)
        return predictor


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to serve.

    Attributes:
        version: Registry version.
        predictor: The fitted model.
        loaded_at: When this process loaded it.
        since: When the registry gave it its current role (``loaded_at`` when unknown).
    """

    version: int
    predictor: Predictor = field(repr=False, compare=False)
    loaded_at: datetime
    since: datetime | None = None

    @property
    def label(self) -> str:
        """The ``model_version`` metric label."""
        return str(self.version)


@dataclass(frozen=True)
class Refusal:
    """A registry choice the service refuses to serve as asked (see :mod:`registry.admission`).

    Attributes:
        variant: The role the registry gave the version.
        version: The refused version (for a clamped weight: the canary's).
        reason: Machine-readable reason.
        detail: What was found and what serves instead.
        since: When this process first refused it.
    """

    variant: Variant
    version: int
    reason: RefusalReason
    detail: str
    since: datetime


@dataclass(frozen=True)
class LoadFailure:
    """A version that could not be loaded; an older model (or none) serves instead."""

    variant: Variant
    version: int
    error: str
    since: datetime


@dataclass(frozen=True)
class Deployment:
    """One immutable serving snapshot.

    Attributes:
        champion: The model serving everyone not in the canary, if loaded.
        canary: The challenger, while a canary runs and it is loaded.
        canary_weight: Share of routing keys sent to ``canary`` (0 without one).
        failures: Versions the registry asks for that could not be loaded.
        reconciled_at: When the snapshot was last checked against the registry.
        refusals: Registry choices refused as asked (a rejected or ungated version, a canary
            weight above the cap).
        from_cache: Whether the models came from the local cache (the registry was not
            reachable at startup) and have not been confirmed by the registry since.
    """

    champion: LoadedModel | None = None
    canary: LoadedModel | None = None
    canary_weight: float = 0.0
    failures: tuple[LoadFailure, ...] = ()
    reconciled_at: datetime | None = None
    refusals: tuple[Refusal, ...] = ()
    from_cache: bool = False

    @property
    def ready(self) -> bool:
        """Whether predictions can be served."""
        return self.champion is not None

    def route(self, routing_key: str) -> tuple[Variant, LoadedModel] | None:
        """Return the variant and model that serve ``routing_key``, or None when not ready."""
        return self.route_point(key_hash(routing_key))

    def route_point(self, point: float) -> tuple[Variant, LoadedModel] | None:
        """:meth:`route` for a routing key already hashed (:func:`interfaces.routing.key_hash`)."""
        champion, canary = self.champion, self.canary
        if champion is None:
            return None  # an unproven canary never serves alone
        if canary is not None and (
            variant_at(point, self.canary_weight, canary_salt(canary.version)) == CANARY
        ):
            return CANARY, canary
        return CHAMPION, champion

    def placement(self) -> tuple[int | None, int | None, float]:
        """(champion version, canary version, weight): what a swap compares."""
        return (
            self.champion.version if self.champion else None,
            self.canary.version if self.canary else None,
            self.canary_weight,
        )


class DeploymentHolder:
    """The mutable cell holding the current :class:`Deployment`."""

    def __init__(self, initial: Deployment | None = None) -> None:
        self.current = initial or Deployment()

    def swap(self, new: Deployment) -> Deployment:
        """Install ``new`` (atomically: one reference assignment); return the old snapshot."""
        old, self.current = self.current, new
        return old


def open_read_only(settings: RegistrySettings) -> ModelRegistry:
    """A registry client for reading only: creates no schema, experiment or directory.

    :func:`registry.open_registry` prepares everything a writer needs (the events schema, the
    experiment), so it fails while the events database is down. The service only reads the
    aliases and tags (and, best effort, the "since" times from the event log), so it must
    start without the events database.
    """
    from mlflow import MlflowClient

    from registry import EventStore, registry_from_settings

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    events = EventStore(_with_connect_timeout(settings.events_url))
    return registry_from_settings(settings, client, events)


def _with_connect_timeout(url: str, seconds: int = 5) -> str:
    """A PostgreSQL URL that gives up connecting after ``seconds`` (libpq waits for the OS)."""
    if url.startswith(("postgresql", "postgres:")) and "connect_timeout=" not in url:
        return f"{url}{'&' if '?' in url else '?'}connect_timeout={seconds}"
    return url


def now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)
