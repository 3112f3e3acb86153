"""The canary judge: continue, promote, roll back, or stop and page a human.

The controller calls :meth:`CanaryJudge.evaluate` after every window with *cumulative* data for
the champion and the canary, both serving the same traffic at the same time. Four signals are
compared, each with a minimum sample and effect-size thresholds:

========================  ===================================  ===============================
signal                    statistic (canary - champion)        method
========================  ===================================  ===============================
``error_rate``            difference of error rates            anytime-valid CS (proportions)
``latency``               ratio of geometric-mean latencies    anytime-valid CS (mean of logs)
``quality``               difference of mean per-row log loss  anytime-valid CS (means)
                          on delayed labels (or Brier)
``prediction_distribution``  PSI of the score histograms       guardrail, alpha spent per look
========================  ===================================  ===============================

Each comparison has two effect sizes. The **floor** is the smallest regression worth a rollback:
the judge rolls back only when the anytime-valid lower bound of the regression clears it. The
**margin** is the largest regression a promotion may accept: a signal is *not worse* when the
anytime-valid upper bound is below it. Between the two the judge keeps watching. The bounds come
from :mod:`monitoring.sequential` and stay valid however often the judge is asked, so checking
after every window does not inflate false rollbacks: a canary within every floor is rolled back
with probability at most ``alpha_rollback`` over its whole life (split evenly across the signals
that can roll back), and a canary beyond a margin is promoted with probability at most
``alpha_promote`` (an intersection-union test needs no split).

Verdict rules, in order of precedence:

1. **ROLLBACK** when any signal that may roll back is confidently worse than its floor —
   unless the only harm is latency and quality is confidently *better* than its margin: that is
   a trade-off a person should make (rule 2).
2. **INCONCLUSIVE** (pause the canary, page a human) when signals disagree in a way rules can't
   settle: latency worse but quality better, or the prediction distribution moved beyond its
   guardrail while nothing shows harm (a model that ranks the same traffic very differently is
   either an intended change or a broken feature; only a person knows which).
3. **PROMOTE** when every signal required for promotion is *not worse* than its margin, no signal
   is worse, and the minimum duration has passed. Quality is not required by default: with
   delayed, partial labels it rarely has the sample to prove a small margin within a canary's
   life (the simulation benchmark shows how many labels it would need), so it acts as a tripwire
   for gross regressions, and the offline evaluation gate guards small ones.
4. **INCONCLUSIVE** when the maximum duration is reached without a decision.
5. **CONTINUE** otherwise (including while minimum samples are not reached).

The prediction-distribution guardrail: PSI between the champion's and canary's score histograms
on the same traffic, after merging bins thinner than 5 % of the champion's mass. An unchanged
canary's PSI is noise of size ``(1/n1 + 1/n0) chi2(df)``; the guardrail fires only when PSI
exceeds ``psi_floor`` *plus* that noise's ``1 - alpha_k`` quantile, with ``alpha_k = psi_alpha /
(k (k + 1))`` at window ``k``, so over any number of windows it fires on noise with probability
at most ``psi_alpha``. The default floor 0.2 sits above the 0.1-0.25 band a routine retrain
usually shows, so only a large change in behaviour pauses the canary.

Everything is computed on arrays with a leading batch axis (:meth:`CanaryJudge.decide`), so the
simulation benchmark judges a thousand canaries with the very code the controller runs on one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitoring.sequential import (
    DifferenceSequence,
    difference_of_means,
    difference_of_proportions,
    population_stability_index,
    psi_noise_allowance,
    spent_alpha,
)

__all__ = [
    "DECISION_BY_CODE",
    "VERDICT_BY_CODE",
    "CanaryJudge",
    "CanaryObservation",
    "Decision",
    "DecisionCode",
    "JudgeConfig",
    "JudgeInputError",
    "JudgeResult",
    "LatencySummary",
    "LossSummary",
    "Moments",
    "ScoreHistogram",
    "SignalArrays",
    "SignalName",
    "SignalResult",
    "VariantStats",
    "VariantWindow",
    "Verdict",
    "VerdictCode",
    "BatchJudgement",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Scores are clipped before log loss: a confident wrong answer costs a lot, not infinity.
_LOG_LOSS_EPS = 1e-6


class JudgeInputError(ValueError):
    """Input the judge cannot use; the message names the field and the rule it breaks."""


class Verdict(StrEnum):
    """What the controller should do after this window."""

    CONTINUE = "continue"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    INCONCLUSIVE = "inconclusive"


class VerdictCode(IntEnum):
    """Integer codes of :class:`Verdict`, for arrays."""

    CONTINUE = 0
    PROMOTE = 1
    ROLLBACK = 2
    INCONCLUSIVE = 3


VERDICT_BY_CODE: dict[int, Verdict] = {
    VerdictCode.CONTINUE: Verdict.CONTINUE,
    VerdictCode.PROMOTE: Verdict.PROMOTE,
    VerdictCode.ROLLBACK: Verdict.ROLLBACK,
    VerdictCode.INCONCLUSIVE: Verdict.INCONCLUSIVE,
}


class Decision(StrEnum):
    """One signal's reading at this window."""

    INSUFFICIENT = "insufficient_data"
    UNDECIDED = "undecided"
    NOT_WORSE = "not_worse"
    BETTER = "better"
    WORSE = "worse"


class DecisionCode(IntEnum):
    """Integer codes of :class:`Decision`, for arrays."""

    INSUFFICIENT = 0
    UNDECIDED = 1
    NOT_WORSE = 2
    BETTER = 3
    WORSE = 4


DECISION_BY_CODE: dict[int, Decision] = {
    DecisionCode.INSUFFICIENT: Decision.INSUFFICIENT,
    DecisionCode.UNDECIDED: Decision.UNDECIDED,
    DecisionCode.NOT_WORSE: Decision.NOT_WORSE,
    DecisionCode.BETTER: Decision.BETTER,
    DecisionCode.WORSE: Decision.WORSE,
}


class SignalName(StrEnum):
    """The comparisons the judge makes."""

    ERROR_RATE = "error_rate"
    LATENCY = "latency"
    QUALITY = "quality"
    PREDICTIONS = "prediction_distribution"


class JudgeConfig(BaseModel):
    """Thresholds and budgets of the canary judge.

    Attributes:
        alpha_rollback: Probability, over the canary's whole life, of rolling back a canary that
            is within every floor (split evenly across the signals that may roll back).
        alpha_promote: Probability of promoting a canary that is beyond a margin.
        error_rate_floor: Error-rate increase (absolute, 0.001 = 0.1 point) worth a rollback.
        error_rate_margin: Largest error-rate increase a promotion accepts.
        error_rate_min_requests: Requests each variant needs before the error rate is judged.
        error_rate_mixture_scale: Rate difference where the confidence sequence is tightest.
        latency_ratio_floor: Geometric-mean latency ratio (canary / champion) worth a rollback.
        latency_ratio_margin: Largest latency ratio a promotion accepts.
        latency_min_samples: Latency observations each variant needs before latency is judged.
        latency_mixture_scale: Log-ratio where the latency sequence is tightest.
        quality_floor: Increase in mean per-row loss (nats of log loss, or Brier) worth a rollback.
        quality_margin: Largest loss increase a promotion accepts.
        quality_min_labels: Labelled predictions each variant needs before quality is judged.
        quality_mixture_scale: Loss difference where the quality sequence is tightest.
        quality_required_for_promotion: Whether promotion waits for quality to prove its margin.
        psi_floor: PSI between the score distributions that the guardrail tolerates.
        psi_alpha: Probability, over all windows, that the guardrail fires on an unchanged canary.
        psi_min_samples: Scores each variant needs before the guardrail is checked.
        prediction_shift_action: ``"pause"`` (INCONCLUSIVE, page a human) or ``"rollback"``.
        min_windows_before_promote: Windows that must pass before a promotion.
        max_windows: Windows after which an undecided canary is INCONCLUSIVE.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha_rollback: float = Field(0.01, gt=0.0, lt=0.5)
    alpha_promote: float = Field(0.05, gt=0.0, lt=0.5)

    error_rate_floor: float = Field(0.001, ge=0.0, lt=1.0)
    error_rate_margin: float = Field(0.005, gt=0.0, lt=1.0)
    error_rate_min_requests: int = Field(400, ge=1)
    error_rate_mixture_scale: float = Field(0.01, gt=0.0)

    latency_ratio_floor: float = Field(1.1, ge=1.0)
    latency_ratio_margin: float = Field(1.2, gt=1.0)
    latency_min_samples: int = Field(100, ge=2)
    latency_mixture_scale: float = Field(0.2, gt=0.0)

    quality_floor: float = Field(0.002, ge=0.0)
    quality_margin: float = Field(0.005, gt=0.0)
    quality_min_labels: int = Field(200, ge=2)
    quality_mixture_scale: float = Field(0.01, gt=0.0)
    quality_required_for_promotion: bool = False

    psi_floor: float = Field(0.2, gt=0.0)
    psi_alpha: float = Field(0.01, gt=0.0, lt=0.5)
    psi_min_samples: int = Field(400, ge=1)
    prediction_shift_action: Literal["pause", "rollback"] = "pause"

    min_windows_before_promote: int = Field(3, ge=1)
    max_windows: int = Field(30, ge=1)

    @model_validator(mode="after")
    def _floors_below_margins(self) -> Self:
        pairs = (
            (
                "error_rate_floor",
                self.error_rate_floor,
                "error_rate_margin",
                self.error_rate_margin,
            ),
            (
                "latency_ratio_floor",
                self.latency_ratio_floor,
                "latency_ratio_margin",
                self.latency_ratio_margin,
            ),
            ("quality_floor", self.quality_floor, "quality_margin", self.quality_margin),
        )
        for floor_name, floor, margin_name, margin in pairs:
            if floor > margin:
                raise ValueError(
                    f"{floor_name} ({floor}) must not exceed {margin_name} ({margin}): a "
                    "regression worth a rollback cannot be one a promotion accepts"
                )
        if self.min_windows_before_promote > self.max_windows:
            raise ValueError(
                f"min_windows_before_promote ({self.min_windows_before_promote}) must not exceed "
                f"max_windows ({self.max_windows})"
            )
        return self

    @property
    def rollback_signals(self) -> tuple[SignalName, ...]:
        """Signals whose regression rolls the canary back; they share ``alpha_rollback``."""
        signals = (SignalName.ERROR_RATE, SignalName.LATENCY, SignalName.QUALITY)
        if self.prediction_shift_action == "rollback":
            return (*signals, SignalName.PREDICTIONS)
        return signals

    @property
    def promotion_signals(self) -> tuple[SignalName, ...]:
        """Signals that must be *not worse* before a promotion."""
        signals = (SignalName.ERROR_RATE, SignalName.LATENCY, SignalName.PREDICTIONS)
        if self.quality_required_for_promotion:
            return (*signals, SignalName.QUALITY)
        return signals


# --- inputs: cumulative data per variant --------------------------------------------------------


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

    @classmethod
    def from_cumulative(
        cls,
        upper_bounds: Sequence[float],
        cumulative_counts: Sequence[float],
        *,
        lowest: float = 0.0,
    ) -> ScoreHistogram:
        """Build from a Prometheus histogram's cumulative ``le`` buckets, starting at ``lowest``."""
        cumulative = np.asarray(cumulative_counts, dtype=np.float64)
        counts = np.diff(cumulative, prepend=0.0)
        if np.any(counts < 0):
            raise JudgeInputError("score histogram: cumulative_counts must not decrease")
        return cls(
            edges=(float(lowest), *(float(b) for b in upper_bounds)),
            counts=tuple(round(c) for c in counts),
        )


class VariantWindow(BaseModel):
    """Cumulative data for one variant since the canary started.

    Attributes:
        requests: Requests (rows scored) the variant served.
        errors: Of those, the ones that failed server-side.
        latency: Moments of log latency, or ``None`` if not collected.
        scores: Histogram of predicted scores, or ``None`` if not collected.
        quality: Loss moments on predictions whose labels arrived, or ``None``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests: int = Field(ge=0)
    errors: int = Field(ge=0)
    latency: LatencySummary | None = None
    scores: ScoreHistogram | None = None
    quality: LossSummary | None = None

    @model_validator(mode="after")
    def _errors_within_requests(self) -> Self:
        if self.errors > self.requests:
            raise ValueError(f"errors ({self.errors}) must not exceed requests ({self.requests})")
        return self


class CanaryObservation(BaseModel):
    """What the controller knows after window ``window``: cumulative data for both variants.

    Attributes:
        window: Windows elapsed since the canary started (1 after the first window).
        champion: The serving model, on the same traffic period.
        canary: The candidate.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int = Field(ge=1)
    champion: VariantWindow
    canary: VariantWindow

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


# --- batch form: the same data as arrays ---------------------------------------------------------


@dataclass(frozen=True)
class Moments:
    """Count, mean and sum of squared deviations, elementwise over a batch."""

    count: FloatArray
    mean: FloatArray
    m2: FloatArray


@dataclass(frozen=True)
class VariantStats:
    """Cumulative data for one variant as arrays over a batch of canaries.

    Attributes:
        requests: Requests served.
        errors: Server-side errors.
        latency: Moments of log latency, or ``None``.
        score_counts: Score histogram counts, shape ``(batch, bins)``, or ``None``.
        quality: Moments of the per-row loss on labelled predictions, or ``None``.
    """

    requests: FloatArray
    errors: FloatArray
    latency: Moments | None = None
    score_counts: FloatArray | None = None
    quality: Moments | None = None

    @classmethod
    def from_window(cls, window: VariantWindow) -> VariantStats:
        """A batch of one from an observation's variant."""

        def one(value: float) -> FloatArray:
            return np.array([value], dtype=np.float64)

        latency = (
            Moments(
                one(window.latency.count), one(window.latency.mean_log), one(window.latency.m2_log)
            )
            if window.latency is not None
            else None
        )
        quality = (
            Moments(one(window.quality.count), one(window.quality.mean), one(window.quality.m2))
            if window.quality is not None
            else None
        )
        scores = (
            np.array([window.scores.counts], dtype=np.float64)
            if window.scores is not None
            else None
        )
        return cls(
            requests=one(window.requests),
            errors=one(window.errors),
            latency=latency,
            score_counts=scores,
            quality=quality,
        )


@dataclass(frozen=True)
class SignalArrays:
    """One signal's reading for every canary in a batch.

    ``estimate``, ``lower`` and ``upper`` are in the signal's reporting units (a ratio for
    latency, PSI for the prediction distribution); ``statistic`` is compared with ``threshold`` to
    decide WORSE.
    """

    name: SignalName
    decision: IntArray
    estimate: FloatArray
    lower: FloatArray
    upper: FloatArray
    statistic: FloatArray
    threshold: FloatArray
    n_canary: FloatArray
    n_champion: FloatArray


@dataclass(frozen=True)
class BatchJudgement:
    """Verdict codes (:class:`VerdictCode`) and signal readings for a batch of canaries."""

    verdict: IntArray
    signals: dict[SignalName, SignalArrays]


# --- outputs -------------------------------------------------------------------------------------


def _number(value: float | None) -> float | None:
    """A JSON-safe float: ``None`` for missing, infinite or NaN values."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


class SignalResult(BaseModel):
    """One comparison and the numbers behind it.

    Attributes:
        name: Which comparison.
        decision: Its reading at this window.
        statistic: The value compared with ``threshold`` to decide WORSE (an anytime-valid lower
            bound of the regression; PSI for the prediction distribution).
        threshold: The floor it must clear (floor plus noise allowance for PSI).
        estimate: Point estimate of canary versus champion.
        ci_low: Anytime-valid lower bound (at the rollback level).
        ci_high: Anytime-valid upper bound (at the promotion level).
        margin: The promotion margin ``ci_high`` must be below.
        units: What the numbers measure.
        n_canary: Canary sample behind the comparison.
        n_champion: Champion sample behind the comparison.
        reason: The reading in words.
    """

    model_config = ConfigDict(frozen=True)

    name: SignalName
    decision: Decision
    statistic: float | None
    threshold: float | None
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    margin: float | None
    units: str
    n_canary: int
    n_champion: int
    reason: str


class JudgeResult(BaseModel):
    """The verdict for one window, every signal behind it, and why.

    Attributes:
        verdict: What the controller should do.
        window: The window judged.
        signals: Every comparison, in a fixed order.
        reason: The verdict in words, naming the signals that decided it.
    """

    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    window: int
    signals: tuple[SignalResult, ...]
    reason: str

    def signal(self, name: SignalName | str) -> SignalResult:
        """The result of one signal, by name."""
        for result in self.signals:
            if result.name == name:
                return result
        raise KeyError(f"no signal named {name!r}")

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict: the verdict, the reason and every number."""
        return self.model_dump(mode="json")


# --- the judge -----------------------------------------------------------------------------------

_UNITS: dict[SignalName, str] = {
    SignalName.ERROR_RATE: "error rate difference (canary - champion)",
    SignalName.LATENCY: "geometric-mean latency ratio (canary / champion)",
    SignalName.QUALITY: "mean per-row loss difference (canary - champion)",
    SignalName.PREDICTIONS: "population stability index (0 = identical)",
}


def _decide(
    sequence: DifferenceSequence, enough: npt.NDArray[np.bool_], floor: float, margin: float
) -> IntArray:
    decision = np.full(enough.shape, DecisionCode.INSUFFICIENT, dtype=np.int64)
    decision[enough] = DecisionCode.UNDECIDED
    decision[enough & sequence.within(margin)] = DecisionCode.NOT_WORSE
    decision[enough & (sequence.upper < -margin)] = DecisionCode.BETTER
    decision[enough & sequence.exceeds(floor)] = DecisionCode.WORSE
    return decision


def _absent(name: SignalName, size: int) -> SignalArrays:
    nan = np.full(size, np.nan)
    zero = np.zeros(size)
    return SignalArrays(
        name=name,
        decision=np.full(size, DecisionCode.INSUFFICIENT, dtype=np.int64),
        estimate=nan,
        lower=nan,
        upper=nan,
        statistic=nan,
        threshold=nan,
        n_canary=zero,
        n_champion=zero,
    )


class CanaryJudge:
    """Judges a canary against its champion after every window (see the module docstring).

    Args:
        config: Thresholds and error budgets; the defaults suit 1 % error rates and a few hundred
            canary requests per window.
    """

    def __init__(self, config: JudgeConfig | None = None) -> None:
        self.config = config or JudgeConfig()

    @property
    def _alpha_per_rollback_signal(self) -> float:
        return self.config.alpha_rollback / len(self.config.rollback_signals)

    def evaluate(self, observation: CanaryObservation) -> JudgeResult:
        """Judge one canary after one window.

        Args:
            observation: Cumulative champion and canary data after ``observation.window`` windows.

        Returns:
            The verdict, each signal's numbers, and the reason.
        """
        batch = self.decide(
            VariantStats.from_window(observation.champion),
            VariantStats.from_window(observation.canary),
            window=observation.window,
        )
        signals = tuple(self._signal_result(batch.signals[name]) for name in SignalName)
        verdict = VERDICT_BY_CODE[int(batch.verdict[0])]
        return JudgeResult(
            verdict=verdict,
            window=observation.window,
            signals=signals,
            reason=self._verdict_reason(verdict, signals, observation.window),
        )

    def decide(
        self, champion: VariantStats, canary: VariantStats, *, window: int | npt.ArrayLike
    ) -> BatchJudgement:
        """Judge a batch of canaries at once (the array form of :meth:`evaluate`).

        Args:
            champion: Cumulative champion data, one row per canary.
            canary: Cumulative canary data, same shape.
            window: Windows elapsed (scalar or one per canary).

        Returns:
            Verdict codes and each signal's arrays.
        """
        size = canary.requests.shape[0]
        windows = np.broadcast_to(np.asarray(window, dtype=np.float64), (size,))
        signals = {
            SignalName.ERROR_RATE: self._error_rate(champion, canary),
            SignalName.LATENCY: self._latency(champion, canary, size),
            SignalName.QUALITY: self._quality(champion, canary, size),
            SignalName.PREDICTIONS: self._predictions(champion, canary, windows, size),
        }
        return BatchJudgement(verdict=self._verdict(signals, windows), signals=signals)

    # --- signals -------------------------------------------------------------------------------

    def _error_rate(self, champion: VariantStats, canary: VariantStats) -> SignalArrays:
        c = self.config
        seq = difference_of_proportions(
            canary.errors,
            canary.requests,
            champion.errors,
            champion.requests,
            alpha_lower=self._alpha_per_rollback_signal,
            alpha_upper=c.alpha_promote,
            mixture_scale=c.error_rate_mixture_scale,
        )
        enough = (canary.requests >= c.error_rate_min_requests) & (
            champion.requests >= c.error_rate_min_requests
        )
        return SignalArrays(
            name=SignalName.ERROR_RATE,
            decision=_decide(seq, enough, c.error_rate_floor, c.error_rate_margin),
            estimate=seq.estimate,
            lower=seq.lower,
            upper=seq.upper,
            statistic=seq.lower,
            threshold=np.full(enough.shape, c.error_rate_floor),
            n_canary=canary.requests,
            n_champion=champion.requests,
        )

    def _latency(self, champion: VariantStats, canary: VariantStats, size: int) -> SignalArrays:
        c = self.config
        if champion.latency is None or canary.latency is None:
            return _absent(SignalName.LATENCY, size)
        ch, ca = champion.latency, canary.latency
        seq = difference_of_means(
            ca.count,
            ca.mean,
            ca.m2,
            ch.count,
            ch.mean,
            ch.m2,
            alpha_lower=self._alpha_per_rollback_signal,
            alpha_upper=c.alpha_promote,
            mixture_scale=c.latency_mixture_scale,
        )
        enough = (ca.count >= c.latency_min_samples) & (ch.count >= c.latency_min_samples)
        floor, margin = math.log(c.latency_ratio_floor), math.log(c.latency_ratio_margin)
        with np.errstate(over="ignore"):
            lower = np.exp(seq.lower)
            return SignalArrays(
                name=SignalName.LATENCY,
                decision=_decide(seq, enough, floor, margin),
                estimate=np.exp(seq.estimate),
                lower=lower,
                upper=np.exp(seq.upper),
                statistic=lower,
                threshold=np.full(enough.shape, c.latency_ratio_floor),
                n_canary=ca.count,
                n_champion=ch.count,
            )

    def _quality(self, champion: VariantStats, canary: VariantStats, size: int) -> SignalArrays:
        c = self.config
        if champion.quality is None or canary.quality is None:
            return _absent(SignalName.QUALITY, size)
        ch, ca = champion.quality, canary.quality
        seq = difference_of_means(
            ca.count,
            ca.mean,
            ca.m2,
            ch.count,
            ch.mean,
            ch.m2,
            alpha_lower=self._alpha_per_rollback_signal,
            alpha_upper=c.alpha_promote,
            mixture_scale=c.quality_mixture_scale,
        )
        enough = (ca.count >= c.quality_min_labels) & (ch.count >= c.quality_min_labels)
        return SignalArrays(
            name=SignalName.QUALITY,
            decision=_decide(seq, enough, c.quality_floor, c.quality_margin),
            estimate=seq.estimate,
            lower=seq.lower,
            upper=seq.upper,
            statistic=seq.lower,
            threshold=np.full(enough.shape, c.quality_floor),
            n_canary=ca.count,
            n_champion=ch.count,
        )

    def _predictions(
        self, champion: VariantStats, canary: VariantStats, windows: FloatArray, size: int
    ) -> SignalArrays:
        c = self.config
        if champion.score_counts is None or canary.score_counts is None:
            return _absent(SignalName.PREDICTIONS, size)
        n1 = canary.score_counts.sum(axis=-1)
        n0 = champion.score_counts.sum(axis=-1)
        psi, df = population_stability_index(canary.score_counts, champion.score_counts)
        alpha = self.config.psi_alpha
        if c.prediction_shift_action == "rollback":
            alpha = min(alpha, self._alpha_per_rollback_signal)
        allowance = psi_noise_allowance(n1, n0, df, alpha=spent_alpha(alpha, windows))
        threshold = c.psi_floor + allowance
        enough = (n1 >= c.psi_min_samples) & (n0 >= c.psi_min_samples)
        decision = np.full(size, DecisionCode.INSUFFICIENT, dtype=np.int64)
        decision[enough] = DecisionCode.UNDECIDED
        decision[enough & (psi <= c.psi_floor)] = DecisionCode.NOT_WORSE
        decision[enough & (psi > threshold)] = DecisionCode.WORSE
        return SignalArrays(
            name=SignalName.PREDICTIONS,
            decision=decision,
            estimate=psi,
            lower=np.full(size, np.nan),
            upper=np.full(size, np.nan),
            statistic=psi,
            threshold=threshold,
            n_canary=n1,
            n_champion=n0,
        )

    # --- verdict -------------------------------------------------------------------------------

    def _verdict(self, signals: dict[SignalName, SignalArrays], windows: FloatArray) -> IntArray:
        c = self.config
        size = windows.shape[0]

        def is_(name: SignalName, code: DecisionCode) -> npt.NDArray[np.bool_]:
            return np.asarray(signals[name].decision == code, dtype=bool)

        worse = np.zeros(size, dtype=bool)
        for name in c.rollback_signals:
            worse |= is_(name, DecisionCode.WORSE)
        # A slower canary that is confidently better is a trade-off for a person, not a rule.
        tradeoff = (
            is_(SignalName.LATENCY, DecisionCode.WORSE)
            & ~is_(SignalName.ERROR_RATE, DecisionCode.WORSE)
            & is_(SignalName.QUALITY, DecisionCode.BETTER)
        )
        if c.prediction_shift_action == "rollback":
            tradeoff &= ~is_(SignalName.PREDICTIONS, DecisionCode.WORSE)
        shifted = (
            is_(SignalName.PREDICTIONS, DecisionCode.WORSE)
            if c.prediction_shift_action == "pause"
            else np.zeros(size, dtype=bool)
        )
        ready = windows >= c.min_windows_before_promote
        for name in c.promotion_signals:
            ready &= is_(name, DecisionCode.NOT_WORSE) | is_(name, DecisionCode.BETTER)

        verdict = np.full(size, VerdictCode.CONTINUE, dtype=np.int64)
        verdict[windows >= c.max_windows] = VerdictCode.INCONCLUSIVE
        verdict[ready] = VerdictCode.PROMOTE
        verdict[shifted] = VerdictCode.INCONCLUSIVE
        verdict[worse] = VerdictCode.ROLLBACK
        verdict[tradeoff] = VerdictCode.INCONCLUSIVE
        return verdict

    # --- words ---------------------------------------------------------------------------------

    def _signal_result(self, arrays: SignalArrays) -> SignalResult:
        c = self.config
        name = arrays.name
        decision = DECISION_BY_CODE[int(arrays.decision[0])]
        margin: float | None = {
            SignalName.ERROR_RATE: c.error_rate_margin,
            SignalName.LATENCY: c.latency_ratio_margin,
            SignalName.QUALITY: c.quality_margin,
            SignalName.PREDICTIONS: c.psi_floor,
        }[name]
        values = {
            "statistic": _number(float(arrays.statistic[0])),
            "threshold": _number(float(arrays.threshold[0])),
            "estimate": _number(float(arrays.estimate[0])),
            "ci_low": _number(float(arrays.lower[0])),
            "ci_high": _number(float(arrays.upper[0])),
        }
        return SignalResult(
            name=name,
            decision=decision,
            margin=margin,
            units=_UNITS[name],
            n_canary=int(arrays.n_canary[0]),
            n_champion=int(arrays.n_champion[0]),
            reason=self._signal_reason(name, decision, values, margin),
            **values,
        )

    def _signal_reason(
        self,
        name: SignalName,
        decision: Decision,
        values: dict[str, float | None],
        margin: float | None,
    ) -> str:
        c = self.config
        minimum = {
            SignalName.ERROR_RATE: f"{c.error_rate_min_requests} requests",
            SignalName.LATENCY: f"{c.latency_min_samples} latency samples",
            SignalName.QUALITY: f"{c.quality_min_labels} labelled predictions",
            SignalName.PREDICTIONS: f"{c.psi_min_samples} scores",
        }[name]
        if values["estimate"] is None and decision == Decision.INSUFFICIENT:
            return f"no data supplied or fewer than {minimum} per variant"
        if decision == Decision.INSUFFICIENT:
            return f"fewer than {minimum} per variant yet"

        def fmt(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.4g}"

        est, low, high = fmt(values["estimate"]), fmt(values["ci_low"]), fmt(values["ci_high"])
        stat, thr = fmt(values["statistic"]), fmt(values["threshold"])
        if name == SignalName.PREDICTIONS:
            return {
                Decision.WORSE: f"PSI {est} exceeds floor {c.psi_floor} plus noise allowance "
                f"(threshold {thr}): the canary scores this traffic differently",
                Decision.NOT_WORSE: f"PSI {est} is within floor {c.psi_floor}",
                Decision.UNDECIDED: f"PSI {est} is above floor {c.psi_floor} but within its noise "
                f"allowance (threshold {thr})",
            }[decision]
        span = f"estimate {est}, anytime-valid bounds [{low}, {high}]"
        return {
            Decision.WORSE: f"worse: lower bound {stat} exceeds floor {thr} ({span})",
            Decision.BETTER: f"better: upper bound {high} is below -{fmt(margin)} ({span})",
            Decision.NOT_WORSE: f"not worse: upper bound {high} is below margin {fmt(margin)} "
            f"({span})",
            Decision.UNDECIDED: f"undecided: lower bound {low} within floor {thr}, upper bound "
            f"{high} above margin {fmt(margin)} ({span})",
        }[decision]

    def _verdict_reason(
        self, verdict: Verdict, signals: tuple[SignalResult, ...], window: int
    ) -> str:
        c = self.config
        by_name = {s.name: s for s in signals}

        def listing(names: Sequence[SignalName]) -> str:
            return "; ".join(f"{n.value}: {by_name[n].reason}" for n in names)

        worse = [n for n in c.rollback_signals if by_name[n].decision == Decision.WORSE]
        if verdict == Verdict.ROLLBACK:
            return f"roll back: {listing(worse)}"
        if verdict == Verdict.INCONCLUSIVE:
            if worse:
                both = listing([SignalName.LATENCY, SignalName.QUALITY])
                return (
                    "pause and page a human: the canary is slower but confidently better in "
                    f"quality, a trade-off for a person. {both}"
                )
            if by_name[SignalName.PREDICTIONS].decision == Decision.WORSE:
                return (
                    "pause and page a human: the prediction distribution moved beyond its "
                    "guardrail while no signal shows harm; confirm the shift is intended. "
                    f"{listing([SignalName.PREDICTIONS])}"
                )
            pending = [
                n
                for n in c.promotion_signals
                if by_name[n].decision not in (Decision.NOT_WORSE, Decision.BETTER)
            ]
            return (
                f"pause and page a human: no decision after {window} windows (max {c.max_windows});"
                f" still open: {listing(pending)}"
            )
        if verdict == Verdict.PROMOTE:
            return f"promote: {listing(c.promotion_signals)}"
        if window < c.min_windows_before_promote:
            return (
                f"continue: minimum duration not reached ({window} of "
                f"{c.min_windows_before_promote} windows)"
            )
        pending = [
            n
            for n in c.promotion_signals
            if by_name[n].decision not in (Decision.NOT_WORSE, Decision.BETTER)
        ]
        return f"continue: waiting on {listing(pending)}"
