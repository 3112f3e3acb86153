"""What the process serves: an immutable snapshot of loaded models, swapped atomically.

A request reads :attr:`DeploymentHolder.current` once and uses that snapshot to the end, so a
swap (one attribute assignment) can never hand it half of the old deployment and half of the
new one, and a model stays alive for as long as a request still holds it. Models come from a
:class:`ModelSource`: the real one reads the MLflow registry (:class:`RegistryModelSource`);
tests pass a small fake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from serving.batcher import Predictor
from serving.routing import CANARY, CHAMPION, Variant, choose_variant

if TYPE_CHECKING:
    from registry import ModelRegistry


@dataclass(frozen=True)
class DesiredState:
    """What the registry says should serve.

    Attributes:
        champion: Version behind the ``champion`` alias, if any.
        challenger: Version behind the ``challenger`` alias, if any.
        canary_weight: Share of routing keys for the challenger, in [0, 1].
        champion_since: When the champion took the role, if known.
        challenger_since: When the challenger took the role, if known.
    """

    champion: int | None
    challenger: int | None = None
    canary_weight: float = 0.0
    champion_since: datetime | None = None
    challenger_since: datetime | None = None

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
    def from_environment(cls) -> RegistryModelSource:
        """A source for the registry configured by ``MLFLOW_TRACKING_URI`` / ``MLPLAT_*``."""
        from registry import get_settings, open_registry

        def open_configured() -> ModelRegistry:
            import mlflow

            settings = get_settings()
            # ``load_model`` resolves ``models:/`` URIs through MLflow's process-wide URIs;
            # point them at the registry we read (done here at startup, never at import).
            mlflow.set_tracking_uri(settings.tracking_uri)
            mlflow.set_registry_uri(settings.tracking_uri)
            return open_registry(settings)

        return cls(open_configured)

    def _client(self) -> ModelRegistry:
        if self._registry is None:
            assert self._opener is not None
            self._registry = self._opener()
        return self._registry

    def desired(self) -> DesiredState:
        """Read aliases and canary weight from the registry."""
        state = self._client().state()
        return DesiredState(
            champion=state.champion,
            challenger=state.challenger,
            canary_weight=state.canary_weight,
            champion_since=state.champion_since,
            challenger_since=state.challenger_since,
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
    """

    champion: LoadedModel | None = None
    canary: LoadedModel | None = None
    canary_weight: float = 0.0
    failures: tuple[LoadFailure, ...] = ()
    reconciled_at: datetime | None = None

    @property
    def ready(self) -> bool:
        """Whether predictions can be served."""
        return self.champion is not None

    def route(self, routing_key: str) -> tuple[Variant, LoadedModel] | None:
        """Return the variant and model that serve ``routing_key``, or None when not ready."""
        champion, canary = self.champion, self.canary
        if champion is None:
            return None  # an unproven canary never serves alone
        if canary is not None and (
            choose_variant(routing_key, self.canary_weight, canary.label) == CANARY
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


def now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)
