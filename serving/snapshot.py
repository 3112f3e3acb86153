"""What the process serves: an immutable snapshot of loaded models, swapped atomically.

A request reads :attr:`DeploymentHolder.current` once and uses that snapshot to the end, so a
swap (one attribute assignment) can never hand it half of the old deployment and half of the
new one, and a model stays alive for as long as a request still holds it. The reconciler
(:mod:`serving.reconcile`) builds each snapshot from what the registry asks for
(:class:`serving.deployment.DesiredState`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from interfaces.routing import CANARY, CHAMPION, Variant, canary_salt, key_hash, variant_at
from registry.admission import RefusalReason
from serving.batcher import Predictor


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


def now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)
