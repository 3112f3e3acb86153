"""Which registry versions may serve, and how much traffic a canary may take.

The registry's aliases say what *should* serve, but anyone who can write to MLflow can move
them. So the service does not take an alias on trust: on every poll it reads the tags of the
versions it is asked to serve and refuses one that was rejected (``mlplat.status=rejected``) or
never passed the evaluation gate (``mlplat.gate_verdict`` other than ``passed``), whoever moved
the alias. A canary weight above the platform's cap is clamped to the cap. Each refusal is shown
in ``/model`` and ``/ready``, counted in ``mlplat_model_load_refusals_total`` and logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Protocol

from interfaces.tags import GATE_PASSED, GATE_VERDICT_TAG, STATUS_TAG

MAX_CANARY_WEIGHT: Final = 0.5
"""The largest share of traffic a canary may take: the deploy guardrail refuses more, the
service clamps to it (a canary that takes most of the traffic is a release, not a test)."""

RefusalReason = Literal["rejected", "gate_not_passed", "canary_weight_above_cap"]
REFUSAL_REASONS: Final[tuple[RefusalReason, ...]] = (
    "rejected",
    "gate_not_passed",
    "canary_weight_above_cap",
)
"""Every value of the ``reason`` label of the refusal metrics."""


@dataclass(frozen=True)
class Veto:
    """Why the registry's choice is not served as asked.

    Attributes:
        reason: Machine-readable reason (a metric label).
        detail: One sentence for people: what was found and what serves instead.
    """

    reason: RefusalReason
    detail: str


class VersionTags(Protocol):
    """What :func:`vet` reads of a registered version (``registry.ModelVersionInfo``)."""

    @property
    def version(self) -> int:
        """Version number."""
        ...

    @property
    def rejected(self) -> bool:
        """Whether the version is tagged rejected."""
        ...

    @property
    def gate_verdict(self) -> str | None:
        """The evaluation gate's verdict tag, if any."""
        ...


def vet(info: VersionTags) -> Veto | None:
    """Return why ``info`` may not serve, or ``None`` when it may.

    Args:
        info: The version's tags as the registry holds them now.
    """
    if info.rejected:
        return Veto(
            "rejected",
            f"version {info.version} is tagged {STATUS_TAG}=rejected and may never serve",
        )
    if info.gate_verdict != GATE_PASSED:
        return Veto(
            "gate_not_passed",
            f"version {info.version} has {GATE_VERDICT_TAG}={info.gate_verdict!r}, not "
            f"{GATE_PASSED!r}: it never passed the evaluation gate and may not serve",
        )
    return None


def clamp_weight(weight: float, cap: float) -> tuple[float, Veto | None]:
    """The canary weight to apply, and why it differs from the registry's when it does.

    Args:
        weight: The registry's canary weight.
        cap: The platform's largest canary weight.
    """
    if weight <= cap:
        return weight, None
    return cap, Veto(
        "canary_weight_above_cap",
        f"the registry asks for canary weight {weight:g}, above the platform's cap of {cap:g}; "
        f"serving {cap:g}",
    )
