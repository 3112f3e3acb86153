"""What the controller hands the judge: cumulative data per variant, and its evidence form.

These models validate what comes from outside (Prometheus, the inference log, a test) with
errors that name the field and the rule. :func:`observation_evidence` turns an observation into
the judge's :class:`~monitoring.judge.evidence.CanaryEvidence`: one stratum (the canary's whole
life) and no cluster information, which is what cumulative counters can say
(``monitoring/judge/counters.py`` builds the observation from them). The inference log says
more (windows, routing-key groups, slices; :mod:`monitoring.judge.log_evidence`), and the judge
accepts either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitoring.judge.evidence import CanaryEvidence, MeanEvidence, stratum_evidence
from monitoring.judge.psi import ScoreEvidence

__all__ = [
    "CanaryObservation",
    "JudgeInputError",
    "LatencySummary",
    "LossSummary",
    "ScoreHistogram",
    "VariantWindow",
]

# Scores are clipped before log loss: a confident wrong answer costs a lot, not infinity.
_LOG_LOSS_EPS = 1e-6


class JudgeInputError(ValueError):
    """Input the judge cannot use; the message names the field and the rule it breaks."""


class LatencySummary(BaseModel):
    """Running moments of log latency (natural log of seconds) for one variant.

    Attributes:
        count: Number of latency observations.
        mean_log: Mean of ``ln(seconds)``.
        m2_log: Sum of squared deviations of ``ln(seconds)`` from ``mean_log``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: int = Field(ge=0)
    mean_log: float = 0.0
    m2_log: float = Field(0.0, ge=0.0)

    @classmethod
    def from_samples(cls, seconds: Sequence[float] | npt.NDArray[np.float64]) -> LatencySummary:
        """Summarise raw latencies (seconds, each > 0), e.g. from the inference log."""
        values = np.asarray(seconds, dtype=np.float64)
        if values.size and not np.all(np.isfinite(values) & (values > 0)):
            raise JudgeInputError("latency samples must be finite and > 0 seconds")
        if values.size == 0:
            return cls(count=0)
        logs = np.log(values)
        return cls(
            count=int(logs.size),
            mean_log=float(logs.mean()),
            m2_log=float(((logs - logs.mean()) ** 2).sum()),
        )

    @classmethod
    def from_histogram(
        cls, upper_bounds: Sequence[float], cumulative_counts: Sequence[float]
    ) -> LatencySummary:
        """Summarise a Prometheus latency histogram (cumulative ``le`` buckets).

        Each bucket's observations are placed at its geometric midpoint (the first bucket's lower
        edge is taken as half its upper edge); observations above the last finite bound are placed
        at that bound, which understates them. Finer buckets give closer moments.

        Args:
            upper_bounds: Bucket upper bounds ``le`` in seconds, increasing; may end with ``inf``.
            cumulative_counts: Cumulative counts per bound, as Prometheus exposes them.
        """
        bounds = np.asarray(upper_bounds, dtype=np.float64)
        cumulative = np.asarray(cumulative_counts, dtype=np.float64)
        if bounds.ndim != 1 or bounds.shape != cumulative.shape or bounds.size == 0:
            raise JudgeInputError(
                "latency histogram: upper_bounds and cumulative_counts must be equal-length lists"
            )
        finite = bounds[np.isfinite(bounds)]
        if finite.size == 0 or np.any(finite <= 0) or np.any(np.diff(bounds) <= 0):
            raise JudgeInputError("latency histogram: upper_bounds must be increasing and > 0")
        counts = np.diff(cumulative, prepend=0.0)
        if np.any(counts < 0):
            raise JudgeInputError("latency histogram: cumulative_counts must not decrease")
        lowers = np.concatenate(([finite[0] / 2.0], bounds[:-1]))
        mids = np.where(
            np.isfinite(bounds),
            np.sqrt(lowers * np.where(np.isfinite(bounds), bounds, 1.0)),
            finite[-1],
        )
        logs = np.log(mids)
        n = counts.sum()
        if n <= 0:
            return cls(count=0)
        mean = float((counts * logs).sum() / n)
        return cls(count=round(n), mean_log=mean, m2_log=float((counts * (logs - mean) ** 2).sum()))


class LossSummary(BaseModel):
    """Running moments of a per-row loss on labelled predictions for one variant.

    Attributes:
        kind: ``"log_loss"`` (nats) or ``"brier"``; both variants must use the same.
        count: Number of labelled predictions.
        mean: Mean per-row loss.
        m2: Sum of squared deviations of the per-row loss from ``mean``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["log_loss", "brier"] = "log_loss"
    count: int = Field(ge=0)
    mean: float = 0.0
    m2: float = Field(0.0, ge=0.0)

    @classmethod
    def from_labelled(
        cls,
        scores: Sequence[float] | npt.NDArray[np.float64],
        labels: Sequence[int] | npt.NDArray[np.int64],
        *,
        kind: Literal["log_loss", "brier"] = "log_loss",
    ) -> LossSummary:
        """Summarise ``(score, label)`` pairs: predicted P(label = 1) and the 0/1 outcome."""
        p = np.asarray(scores, dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64)
        if p.shape != y.shape or p.ndim != 1:
            raise JudgeInputError("labelled predictions: scores and labels must be equal-length")
        if p.size and not np.all((p >= 0.0) & (p <= 1.0)):
            raise JudgeInputError("labelled predictions: scores must be probabilities in [0, 1]")
        if y.size and not np.all((y == 0.0) | (y == 1.0)):
            raise JudgeInputError("labelled predictions: labels must be 0 or 1")
        if p.size == 0:
            return cls(kind=kind, count=0)
        if kind == "log_loss":
            clipped = np.clip(p, _LOG_LOSS_EPS, 1.0 - _LOG_LOSS_EPS)
            loss = -(y * np.log(clipped) + (1.0 - y) * np.log1p(-clipped))
        else:
            loss = (p - y) ** 2
        return cls(
            kind=kind,
            count=int(loss.size),
            mean=float(loss.mean()),
            m2=float(((loss - loss.mean()) ** 2).sum()),
        )


class ScoreHistogram(BaseModel):
    """Counts of predicted scores per bin, over fixed edges (a Prometheus histogram's buckets).

    Attributes:
        edges: Bin edges, strictly increasing, ``len(counts) + 1`` of them.
        counts: Scores per bin.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    edges: tuple[float, ...]
    counts: tuple[int, ...]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(self.edges) != len(self.counts) + 1 or len(self.counts) < 2:
            raise ValueError(
                f"edges must have len(counts) + 1 entries and at least 2 bins; got "
                f"{len(self.edges)} edges for {len(self.counts)} counts"
            )
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("edges must be strictly increasing")
        if any(c < 0 for c in self.counts):
            raise ValueError("counts must be >= 0")
        return self

    @property
    def total(self) -> int:
        """Number of scores."""
        return sum(self.counts)

    @classmethod
    def from_scores(
        cls, scores: Sequence[float] | npt.NDArray[np.float64], edges: Sequence[float]
    ) -> ScoreHistogram:
        """Bin raw scores; scores outside the edges go to the first or last bin."""
        edge_array = np.asarray(edges, dtype=np.float64)
        values = np.clip(np.asarray(scores, dtype=np.float64), edge_array[0], edge_array[-1])
        counts, _ = np.histogram(values, bins=edge_array)
        return cls(edges=tuple(float(e) for e in edge_array), counts=tuple(int(c) for c in counts))


class VariantWindow(BaseModel):
    """Cumulative data for one variant since the canary started.

    Attributes:
        requests: Requests (rows scored) the variant served.
        errors: Of those, the ones that failed server-side.
        latency: Moments of log latency, or ``None`` if not collected.
        scores: Histogram of predicted scores, or ``None`` if not collected.
        quality: Loss moments on predictions whose labels arrived, or ``None``.
        latency_exceedances: Of the ``latency.count`` answered requests, those slower than the
            observation's ``tail_threshold_s``, or ``None`` if not counted.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests: int = Field(ge=0)
    errors: int = Field(ge=0)
    latency: LatencySummary | None = None
    scores: ScoreHistogram | None = None
    quality: LossSummary | None = None
    latency_exceedances: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _errors_within_requests(self) -> Self:
        if self.errors > self.requests:
            raise ValueError(f"errors ({self.errors}) must not exceed requests ({self.requests})")
        if self.latency_exceedances is not None and (
            self.latency is None or self.latency_exceedances > self.latency.count
        ):
            raise ValueError("latency_exceedances needs latency and must not exceed latency.count")
        return self


class CanaryObservation(BaseModel):
    """What the controller knows after window ``window``: cumulative data for both variants.

    Attributes:
        window: Windows elapsed since the canary started (1 after the first window).
        champion: The serving model, on the same traffic period.
        canary: The candidate.
        tail_threshold_s: The latency (seconds) whose exceedances ``latency_exceedances``
            counts: the champion's tail quantile, fixed before the comparison.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int = Field(ge=1)
    champion: VariantWindow
    canary: VariantWindow
    tail_threshold_s: float | None = Field(None, gt=0.0)

    @model_validator(mode="after")
    def _comparable(self) -> Self:
        ch, ca = self.champion.scores, self.canary.scores
        if ch is not None and ca is not None and ch.edges != ca.edges:
            raise ValueError("champion.scores and canary.scores must use the same edges")
        qh, qa = self.champion.quality, self.canary.quality
        if qh is not None and qa is not None and qh.kind != qa.kind:
            raise ValueError(
                f"champion.quality.kind ({qh.kind}) and canary.quality.kind ({qa.kind}) differ"
            )
        return self


def _pair(champion: float, canary: float) -> npt.NDArray[np.float64]:
    """Shape ``(1, 2, 1)``: one canary, two variants, one cluster."""
    return np.array([[[champion], [canary]]], dtype=np.float64)


def _moments_evidence(
    champion: tuple[float, float, float], canary: tuple[float, float, float]
) -> MeanEvidence:
    """Evidence from ``(count, mean, m2)`` of each variant."""
    (n0, m0, q0), (n1, m1, q1) = champion, canary
    return stratum_evidence(
        _pair(n0, n1),
        _pair(n0 * m0, n1 * m1),
        np.array([[q0 + n0 * m0 * m0, q1 + n1 * m1 * m1]], dtype=np.float64),
    )


def observation_evidence(observation: CanaryObservation) -> CanaryEvidence:
    """The judge's evidence from cumulative counters: one stratum, independent requests."""
    ch, ca = observation.champion, observation.canary
    errors = stratum_evidence(
        _pair(ch.requests, ca.requests),
        _pair(ch.errors, ca.errors),
        np.array([[ch.errors, ca.errors]], dtype=np.float64),
    )
    latency = None
    if ch.latency is not None and ca.latency is not None:
        latency = _moments_evidence(
            (ch.latency.count, ch.latency.mean_log, ch.latency.m2_log),
            (ca.latency.count, ca.latency.mean_log, ca.latency.m2_log),
        )
    quality = None
    if ch.quality is not None and ca.quality is not None:
        quality = _moments_evidence(
            (ch.quality.count, ch.quality.mean, ch.quality.m2),
            (ca.quality.count, ca.quality.mean, ca.quality.m2),
        )
    scores = None
    if ch.scores is not None and ca.scores is not None:
        scores = ScoreEvidence.stratum([ca.scores.counts], [ch.scores.counts])
    tail = None
    if (
        observation.tail_threshold_s is not None
        and ch.latency_exceedances is not None
        and ca.latency_exceedances is not None
        and ch.latency is not None
        and ca.latency is not None
    ):
        n0, n1 = ch.latency.count, ca.latency.count
        e0, e1 = ch.latency_exceedances, ca.latency_exceedances
        tail = stratum_evidence(_pair(n0, n1), _pair(e0, e1), np.array([[e0, e1]], dtype=float))
    return CanaryEvidence(
        errors=errors,
        latency=latency,
        latency_tail=tail,
        quality=quality,
        scores=scores,
        tail_threshold_s=observation.tail_threshold_s,
    )
