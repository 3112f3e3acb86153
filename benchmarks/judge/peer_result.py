"""What a peer judge says about one interval, in its own terms and in our verdict vocabulary."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict

from monitoring.judge import Verdict

__all__ = ["PeerMetricResult", "PeerResult", "finite_or_none"]


class PeerMetricResult(BaseModel):
    """One peer metric's outcome in the peer's own terms, and its numbers.

    Attributes:
        name: Metric name.
        outcome: Argo's measurement phase (``Successful``/``Failed``/``Inconclusive``) or
            Kayenta's classification (``Pass``/``High``/``Low``/``Nodata``/``Error``).
        failed: Whether this outcome counts against the canary.
        value: The measured value (Argo) or Hodges-Lehmann shift (Kayenta).
        threshold: The condition's number (Argo) or ``tolerance * |shift|`` (Kayenta).
        ci_low: Lower end of Kayenta's Mann-Whitney interval.
        ci_high: Upper end of Kayenta's Mann-Whitney interval.
        reason: The outcome in words.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    outcome: str
    failed: bool
    value: float | None
    threshold: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    reason: str


class PeerResult(BaseModel):
    """A peer's verdict for one interval, with every metric behind it.

    Attributes:
        verdict: What the peer would do (in our verdict vocabulary).
        window: Measurement or interval number (1-based).
        score: Kayenta's canary score (``None`` for Argo).
        metrics: Each metric's outcome.
        reason: The verdict in the peer's words.
    """

    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    window: int
    score: float | None
    metrics: tuple[PeerMetricResult, ...]
    reason: str

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return self.model_dump(mode="json")


def finite_or_none(value: float) -> float | None:
    """``value``, or ``None`` when it is NaN or infinite (JSON has no such numbers)."""
    return value if math.isfinite(value) else None
