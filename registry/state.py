"""The deployment state of one model and how it is written into MLflow.

MLflow holds it: the ``champion`` and ``challenger`` aliases point at versions, and two
registered-model tags carry what aliases cannot — the share of traffic the challenger gets
(``mlplat.canary_weight``) and the champion a rollback returns to (``mlplat.previous_champion``).
Keeping all of it in the registry means any process (serving, the controller, CI) reads one
truth, and can be killed and restarted without losing it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime

from registry.errors import InvalidMoveError

__all__ = [
    "CANARY_WEIGHT_TAG",
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS_CHAMPION_TAG",
    "DeploymentState",
    "format_weight",
    "interim_weight",
    "parse_version",
    "validate_weight",
]

CHAMPION = "champion"
CHALLENGER = "challenger"
CANARY_WEIGHT_TAG = "mlplat.canary_weight"
PREVIOUS_CHAMPION_TAG = "mlplat.previous_champion"

# Weights are stored as text in a tag; rounding keeps 0.1 + 0.2 from becoming a "different" weight.
_WEIGHT_DECIMALS = 6


def parse_version(value: object, *, field_name: str = "version") -> int:
    """A model version number from whatever MLflow returned.

    The SQLite store returns alias targets and versions as ``int``, the REST client as ``str``;
    everything past this function sees ``int``.

    Args:
        value: ``3``, ``"3"`` or anything else.
        field_name: Named in the error message.

    Returns:
        The version as a positive ``int``.

    Raises:
        InvalidMoveError: If ``value`` is not a positive whole number.
    """
    if isinstance(value, bool):
        raise InvalidMoveError(f"{field_name} must be a positive whole number, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise InvalidMoveError(f"{field_name} must be a positive whole number, got {value!r}")
    if number < 1:
        raise InvalidMoveError(f"{field_name} must be a positive whole number, got {value!r}")
    return number


def validate_weight(weight: float) -> float:
    """Check a canary weight and round it to the precision it is stored with.

    Raises:
        InvalidMoveError: If ``weight`` is not a finite number between 0 and 1 inclusive.
    """
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise InvalidMoveError(f"canary_weight must be a number between 0 and 1, got {weight!r}")
    if not math.isfinite(weight) or not 0.0 <= weight <= 1.0:
        raise InvalidMoveError(
            f"canary_weight must be between 0 and 1 inclusive (share of traffic sent to the "
            f"challenger), got {weight!r}"
        )
    return round(float(weight), _WEIGHT_DECIMALS)


def format_weight(weight: float) -> str:
    """The tag text for a weight (``0.25``, ``1``)."""
    return format(weight, "g")


@dataclass(frozen=True)
class DeploymentState:
    """Which version serves, which is being tried, and how much traffic the trial gets.

    Equality compares the placement only (versions and weight), not the timestamps.

    Attributes:
        champion: Version behind the ``champion`` alias, or ``None`` before the first bootstrap.
        challenger: Version behind the ``challenger`` alias, or ``None`` when no canary runs.
        canary_weight: Share of traffic (0..1) routed to the challenger; 0 without a challenger.
        previous_champion: The champion a rollback would return to, or ``None``.
        champion_since: When the current champion took over (from the event log), if known.
        challenger_since: When the current challenger was set (from the event log), if known.
    """

    champion: int | None = None
    challenger: int | None = None
    canary_weight: float = 0.0
    previous_champion: int | None = None
    champion_since: datetime | None = field(default=None, compare=False)
    challenger_since: datetime | None = field(default=None, compare=False)

    @property
    def canary_active(self) -> bool:
        """Whether some traffic goes to a challenger right now."""
        return self.challenger is not None and self.canary_weight > 0

    def placement(self) -> DeploymentState:
        """This state without timestamps (what events store and moves compare)."""
        return replace(self, champion_since=None, challenger_since=None)

    def describe(self) -> str:
        """One line for messages and event reasons."""
        return (
            f"champion={self.champion}, challenger={self.challenger}, "
            f"canary_weight={format_weight(self.canary_weight)}, "
            f"previous_champion={self.previous_champion}"
        )


def interim_weight(current: DeploymentState, target: DeploymentState) -> float:
    """The canary weight to write *first* when moving from ``current`` to ``target``.

    Traffic to the challenger is cut before anything else changes, and to 0 when the challenger
    itself changes, so a new challenger never inherits the old one's share; it is raised last.
    """
    if target.challenger != current.challenger:
        return 0.0
    return min(current.canary_weight, target.canary_weight)
