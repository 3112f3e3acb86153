"""The drift policy: what a drift result asks for, in one place — never a rollback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from monitoring.drift.check import DriftResult
from monitoring.drift.config import DriftAction, Severity

__all__ = ["DriftRecommendation", "Variant", "recommend"]

Variant = Literal["champion", "canary"]


@dataclass(frozen=True)
class DriftRecommendation:
    """What the controller should do about one drift result.

    Attributes:
        variant: ``champion`` or ``canary``.
        actions: Subset of ``alert``, ``retrain``, ``inform-judge``; never a rollback.
        severity: ``critical`` for broad input drift on the champion, ``warning`` for other
            champion drift, ``none`` otherwise.
        reasons: Sentences for the alert annotation and the audit log.
    """

    variant: Variant
    actions: tuple[DriftAction, ...]
    severity: Severity
    reasons: tuple[str, ...]

    @property
    def alert(self) -> bool:
        """Whether a person should be told."""
        return "alert" in self.actions

    @property
    def retrain(self) -> bool:
        """Whether to call the pipeline's ``drift`` training trigger."""
        return "retrain" in self.actions

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form."""
        return {
            "variant": self.variant,
            "actions": list(self.actions),
            "severity": self.severity,
            "reasons": list(self.reasons),
        }


def recommend(result: DriftResult, variant: Variant) -> DriftRecommendation:
    """Turn a drift result into actions: the drift policy, in one place.

    - **Champion, input drift**: alert and ask for a retrain (``ci/triggers.py::drift``, which
      applies its own cool-down). *Never a rollback*: the previous model would see exactly the
      same drifted inputs, so rolling back trades a model trained on more recent data for an
      older one without fixing anything. The retrain produces a candidate that still has to pass
      the validation and evaluation gates and a canary before it serves anyone. Broad drift
      (``dataset_drifted``) is ``critical``: many features moving at once is more often a broken
      upstream (a unit change, a failed join) than a changed world, and retraining on broken
      data would bake the defect in, so a person should look before the retrain is promoted.
    - **Champion, prediction drift without input drift**: alert only. The inputs did not move
      but the scores did, which points at the model or the serving path, not at the world, and
      retraining would not explain it.
    - **Canary, any drift**: context for the canary judge (``inform-judge``), not an action.
      Canary and champion are served the same traffic, so input drift says nothing about which
      is better; the champion's own check raises the alert. Whether the canary's scores depart
      from the champion's is the judge's comparison of the two variants' live predictions.
    - **Insufficient data or no drift**: nothing.

    Args:
        result: The window's verdict.
        variant: The variant whose traffic the window holds.

    Returns:
        The recommendation; its ``actions`` type has no rollback member on purpose.
    """
    if result.status == "insufficient-data":
        return DriftRecommendation(variant, (), "none", (f"not judged: {result.reason}",))
    if result.status == "ok":
        return DriftRecommendation(variant, (), "none", (result.reason,))
    if variant == "canary":
        return DriftRecommendation(
            variant,
            ("inform-judge",),
            "none",
            (
                f"canary window {result.reason}; same traffic as the champion, so this is "
                "context for the judge, not a rollback signal",
            ),
        )
    reasons = [f"champion window {result.reason}"]
    if result.input_drifted:
        reasons.append(
            f"input drift on {', '.join(result.drifted_features)}: retrain on fresh data "
            "(rolling back would not help: the previous model sees the same inputs)"
        )
        severity: Severity = "critical" if result.dataset_drifted else "warning"
        if result.dataset_drifted:
            reasons.append(
                f"{result.share_drifted:.0%} of features drifted at once: check the upstream "
                "data before the retrained model is promoted"
            )
        return DriftRecommendation(variant, ("alert", "retrain"), severity, tuple(reasons))
    reasons.append("scores moved while inputs did not: inspect the model and the serving path")
    return DriftRecommendation(variant, ("alert",), "warning", tuple(reasons))
