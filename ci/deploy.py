"""The deploy stage: guardrails in front of the registry's canary and promote moves.

The CI workflow's canary job, ``mlplat deploy canary`` and ``mlplat deploy promote`` call these
functions, so the same rules hold whoever ships: only a version the service would serve — it
passed the evaluation gate and was never rejected, the one rule in
:func:`registry.admission.vet` — may take traffic or become champion, and a canary never takes
more than ``MAX_CANARY_WEIGHT`` of the traffic (a canary that takes most of the traffic is a
deploy, not a canary).

There is no override: a version the service refuses would not serve whoever moved the alias, so
moving it would only leave the previous version serving while the registry says otherwise. A
version gets its gate verdict from one place, the pipeline that trained it
(:func:`ci.stages.run_pipeline`); the refusal says to run it (``mlplat pipeline run``).
"""

from __future__ import annotations

import math

from registry import (
    DeploymentEvent,
    InvalidMoveError,
    ModelRegistry,
    ModelVersionInfo,
)
from registry.admission import MAX_CANARY_WEIGHT, Veto, vet

__all__ = [
    "MAX_CANARY_WEIGHT",
    "NotServableError",
    "check_canary_weight",
    "promote",
    "start_canary",
]

"""Largest share of traffic a canary may take before it is promoted."""


_GATE_ADVICE = (
    "a gate verdict comes only from the pipeline, for a model it trains: "
    '`mlplat pipeline run --reason "..."` trains, evaluates and gates a candidate '
    "and registers it as a new version if it passes"
)
"""How a version gets a passed gate verdict: what a move refused for ``gate_not_passed`` says."""


class NotServableError(InvalidMoveError):
    """The version may not serve: it was rejected or never passed the evaluation gate.

    Attributes:
        version: The refused version.
        veto: The service's reason (:func:`registry.admission.vet`): ``rejected`` or
            ``gate_not_passed``.
    """

    def __init__(self, version: int, veto: Veto, move: str) -> None:
        self.version = version
        self.veto = veto
        message = f"{veto.detail}, so it cannot {move}"
        if veto.reason == "gate_not_passed":
            message += f"; {_GATE_ADVICE}, which can then {move}"
        super().__init__(message)


def check_canary_weight(weight: float) -> float:
    """Return ``weight`` if a canary may take that share of the traffic.

    Raises:
        InvalidMoveError: If ``weight`` is not in (0, MAX_CANARY_WEIGHT] (NaN included).
    """
    if not math.isfinite(weight) or weight <= 0.0:
        raise InvalidMoveError(
            f"canary weight must be a number in (0, {MAX_CANARY_WEIGHT}], got {weight}"
        )
    if weight > MAX_CANARY_WEIGHT:
        raise InvalidMoveError(
            f"canary weight must be in (0, {MAX_CANARY_WEIGHT}], got {weight}: "
            "promote the version instead of sending it most of the traffic"
        )
    return weight


def start_canary(
    registry: ModelRegistry,
    version: int,
    weight: float,
    *,
    reason: str,
    evidence: str | None = None,
) -> DeploymentEvent | None:
    """Route ``weight`` of the traffic to ``version`` as the canary (``challenger`` alias).

    Returns:
        The event written, or ``None`` when the canary already runs exactly so (no-op).

    Raises:
        NotServableError: The version failed its gate or was rejected.
        InvalidMoveError: The version is the champion, or the weight is outside
            (0, MAX_CANARY_WEIGHT].
        VersionNotFoundError: The version does not exist.
    """
    check_canary_weight(weight)
    info = registry.version(version)
    _refuse_unservable(info, "take canary traffic")
    if registry.state().champion == version:
        raise InvalidMoveError(f"version {version} is already the champion")
    return registry.start_canary(version, weight, reason=reason, evidence=evidence)


def promote(
    registry: ModelRegistry,
    version: int,
    *,
    reason: str,
    evidence: str | None = None,
) -> DeploymentEvent | None:
    """Make ``version`` the champion if the service would serve it.

    Args:
        registry: The registry to move.
        version: The new champion.
        reason: Why; kept in the event.
        evidence: Link or path to evidence.

    Returns:
        The applied event, or ``None`` if ``version`` already is the champion.

    Raises:
        NotServableError: The version was rejected or has no passed gate verdict.
        VersionNotFoundError: The version does not exist.
    """
    _refuse_unservable(registry.version(version), "become champion")
    return registry.promote(version, reason=reason, evidence=evidence)


def _refuse_unservable(info: ModelVersionInfo, move: str) -> None:
    veto = vet(info)
    if veto is not None:
        raise NotServableError(info.version, veto, move)
