"""The deploy stage: guardrails in front of the registry's canary and promote moves.

The CI workflow's canary job, ``mlplat deploy canary`` and ``mlplat deploy promote`` call these
functions, so the same rules hold whoever ships: only a version the service would serve — it
passed the evaluation gate and was never rejected, the one rule in
:func:`serving.admission.vet` — may take traffic or become champion, and a canary never takes
more than ``MAX_CANARY_WEIGHT`` of the traffic (a canary that takes most of the traffic is a
deploy, not a canary).

A person may promote a version that never passed the gate with ``force=True`` and a reason;
the event records the override. A rejected version is never promoted, forced or not: the
registry refuses it (:meth:`registry.ModelRegistry.promote`).
"""

from __future__ import annotations

import math

from registry import (
    GATE_VERDICT_TAG,
    DeploymentEvent,
    InvalidMoveError,
    ModelRegistry,
    ModelVersionInfo,
)
from serving.admission import Veto, vet

__all__ = [
    "MAX_CANARY_WEIGHT",
    "NotServableError",
    "check_canary_weight",
    "promote",
    "start_canary",
]

MAX_CANARY_WEIGHT = 0.5
"""Largest share of traffic a canary may take before it is promoted."""


class NotServableError(InvalidMoveError):
    """The version may not serve: it was rejected or never passed the evaluation gate.

    Attributes:
        version: The refused version.
        veto: The service's reason (:func:`serving.admission.vet`): ``rejected`` or
            ``gate_not_passed``.
    """

    def __init__(self, version: int, veto: Veto, move: str) -> None:
        self.version = version
        self.veto = veto
        super().__init__(f"{veto.detail}, so it cannot {move}")


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
    force: bool = False,
    evidence: str | None = None,
) -> DeploymentEvent | None:
    """Make ``version`` the champion if the service would serve it, or if forced past the gate.

    A forced promote writes the override into the event: its reason starts with
    ``forced past the gate`` and its details hold ``forced: true`` and the gate verdict found,
    beside the actor the registry records on every event. The service still refuses to serve
    a version that did not pass the gate (:mod:`serving.admission`): forcing moves the alias,
    the previous champion keeps serving until a gated version is promoted.

    Args:
        registry: The registry to move.
        version: The new champion.
        reason: Why; kept in the event.
        force: Promote even though the version has no passed gate verdict.
        evidence: Link or path to evidence.

    Returns:
        The applied event, or ``None`` if ``version`` already is the champion.

    Raises:
        NotServableError: The version was rejected (even with ``force``), or has no passed
            gate verdict and ``force`` is not set.
        VersionNotFoundError: The version does not exist.
    """
    info = registry.version(version)
    veto = vet(info)
    if veto is None:
        return registry.promote(version, reason=reason, evidence=evidence)
    if veto.reason == "rejected" or not force:
        raise NotServableError(info.version, veto, "become champion")
    if not reason.strip():
        raise InvalidMoveError("a forced promote needs a reason: it is recorded on the event")
    verdict = info.gate_verdict
    return registry.promote(
        version,
        reason=f"forced past the gate ({GATE_VERDICT_TAG}={verdict!r}): {reason}",
        evidence=evidence,
        details={"forced": True, "refusal": veto.reason, "gate_verdict": verdict},
    )


def _refuse_unservable(info: ModelVersionInfo, move: str) -> None:
    veto = vet(info)
    if veto is not None:
        raise NotServableError(info.version, veto, move)
