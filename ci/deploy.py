"""The deploy stage: guardrails in front of the registry's canary move.

The CI workflow's canary job and ``mlplat deploy canary`` both call :func:`start_canary`, so the
same rules hold whoever ships: only a version that passed the promotion gate, was never rejected
and is not already the champion may take traffic, and never more than ``MAX_CANARY_WEIGHT`` of it
(a canary that takes most of the traffic is a deploy, not a canary).
"""

from __future__ import annotations

from registry import DeploymentEvent, InvalidMoveError, ModelRegistry

MAX_CANARY_WEIGHT = 0.5
"""Largest share of traffic a canary may take before it is promoted."""


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
        InvalidMoveError: The version failed its gate, was rejected, is the champion, or the
            weight is outside (0, MAX_CANARY_WEIGHT].
        VersionNotFoundError: The version does not exist.
    """
    if not 0.0 < weight <= MAX_CANARY_WEIGHT:
        raise InvalidMoveError(
            f"canary weight must be in (0, {MAX_CANARY_WEIGHT}], got {weight}: "
            "promote the version instead of sending it most of the traffic"
        )
    info = registry.version(version)
    if info.rejected:
        raise InvalidMoveError(
            f"version {version} was rejected earlier and cannot take traffic again; "
            "train and register a new version"
        )
    if info.gate_verdict != "passed":
        raise InvalidMoveError(
            f"version {version} has no passed gate verdict (tag mlplat.gate_verdict="
            f"{info.gate_verdict!r}); only gated versions may take traffic"
        )
    if registry.state().champion == version:
        raise InvalidMoveError(f"version {version} is already the champion")
    return registry.start_canary(version, weight, reason=reason, evidence=evidence)
