"""From what the registry asks for to the snapshot that serves it: pure functions, no I/O.

:func:`admit` applies the admission rules (:mod:`registry.admission`) to the desired state: a
vetoed champion or canary is dropped and a canary weight above the cap is clamped, each with
the refusal that says why. :func:`next_deployment` then builds the snapshot that serves the
admitted :class:`Target`, reusing the models already loaded wherever it can, and keeping the
model that served a role when its successor could not be loaded or was refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from interfaces.routing import CANARY, CHAMPION, Variant
from registry.admission import Veto, clamp_weight
from serving.batcher import Predictor
from serving.deployment import DesiredState
from serving.snapshot import Deployment, LoadedModel, LoadFailure, Refusal


@dataclass(frozen=True)
class Target:
    """What may serve after the admission checks: versions, weight and refusals."""

    champion: int | None
    canary: int | None
    canary_weight: float
    refusals: tuple[tuple[Variant, int, Veto], ...]


def admit(desired: DesiredState, max_canary_weight: float) -> Target:
    """What of ``desired`` may serve, and the refusals of what may not (or not as asked)."""
    refusals: list[tuple[Variant, int, Veto]] = []
    champion = desired.champion
    if champion is not None and champion in desired.vetoes:
        refusals.append((CHAMPION, champion, desired.vetoes[champion]))
        champion = None
    canary = desired.challenger if desired.canary_active else None
    weight = desired.canary_weight if canary is not None else 0.0
    if canary is not None and canary in desired.vetoes:
        refusals.append((CANARY, canary, desired.vetoes[canary]))
        canary, weight = None, 0.0
    if canary is not None:
        weight, veto = clamp_weight(weight, max_canary_weight)
        if veto is not None:
            refusals.append((CANARY, canary, veto))
    return Target(champion, canary, weight, tuple(refusals))


def next_deployment(
    desired: DesiredState,
    target: Target,
    current: Deployment,
    fresh: Mapping[int, tuple[Predictor, datetime]],
    failed: Mapping[int, LoadFailure],
    refusals: tuple[Refusal, ...],
    at: datetime,
) -> Deployment:
    """The snapshot that serves ``target``, reusing loaded models wherever possible.

    Args:
        desired: What the registry asks for (its "since" times name when each role was taken).
        target: What of it may serve (:func:`admit`).
        current: The snapshot serving now.
        fresh: Models loaded for this snapshot, by version, with when they were loaded.
        failed: Versions that failed to load, by version.
        refusals: The refusals of ``target``, as the snapshot lists them.
        at: Now.
    """

    def model(variant: Variant, version: int | None) -> LoadedModel | None:
        held = current.champion if variant == CHAMPION else current.canary
        since = desired.champion_since if variant == CHAMPION else desired.challenger_since
        if version is None:
            return None
        for loaded in (current.champion, current.canary):
            if loaded is not None and loaded.version == version:
                # Promotion reuses the loaded object: no reload, no cold start.
                role_since = since or (loaded.since if loaded is held else at)
                return LoadedModel(version, loaded.predictor, loaded.loaded_at, role_since)
        if version in fresh:
            predictor, loaded_at = fresh[version]
            return LoadedModel(version, predictor, loaded_at, since or loaded_at)
        return held  # failed to load: what served this role before keeps serving

    champion_vetoed = desired.champion is not None and target.champion is None
    # A refused champion is never installed; the one already serving keeps serving.
    champion = current.champion if champion_vetoed else model(CHAMPION, target.champion)
    canary = model(CANARY, target.canary) if target.canary is not None else None
    weight = target.canary_weight if canary is not None else 0.0
    wanted = {v for v in (target.champion, target.canary) if v is not None}
    failures = tuple(f for v, f in sorted(failed.items()) if v in wanted)
    return Deployment(champion, canary, weight, failures, at, refusals)
