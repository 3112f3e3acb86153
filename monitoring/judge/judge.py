"""The canary judge: continue, promote, roll back, or stop and page a human.

The controller calls :meth:`CanaryJudge.evaluate` after every window (and at once when an alert
asks for a look) with everything known about the champion and the canary since the canary
started. Each signal compares canary with champion on the *same* traffic period:

=======================  =========================================  ==============================
signal                   statistic (canary - champion)              method
=======================  =========================================  ==============================
``error_rate``           difference of server-error rates           anytime-valid CS (rates)
``latency``              ratio of geometric-mean latencies          anytime-valid CS (mean of logs)
``latency_tail``         difference of the shares slower than the   anytime-valid CS (rates)
                         champion's tail quantile (p99)
``quality``              difference of mean per-row log loss        anytime-valid CS (means)
                         on delayed labels
``slice_error_rate``     ``error_rate`` within each traffic slice    one CS per slice
``slice_quality``        ``quality`` within each traffic slice       one CS per slice
``prediction_distribution``  PSI of the score histograms           guardrail, alpha spent per look
=======================  =========================================  ==============================

Every comparison is **time-matched** and **cluster-robust** (:mod:`monitoring.evidence`): the
variants are compared only within the same windows, so a platform-wide drift during a weight
ramp cancels, and the variance is estimated over routing-key groups, so customers whose requests
are correlated (and routed to one variant, sticky) do not pass for independent evidence.

Each comparison has two effect sizes. The **floor** is the smallest regression worth a rollback:
the judge rolls back only when the anytime-valid lower bound clears it. The **margin** is the
largest regression a promotion may accept: a signal is *not worse* when the anytime-valid upper
bound is below it. The bounds come from :mod:`monitoring.sequential` and stay valid however often
the judge looks, so a canary within every floor is rolled back with probability at most
``alpha_rollback`` over its whole life. That budget is split evenly across every test that can
roll back — four whole-traffic signals plus two per slice — and a canary beyond a margin is
promoted with probability at most ``alpha_promote`` (an intersection-union test needs no split).

The error-rate margin is relative *and* absolute: ``max(error_rate_margin_min,
min(error_rate_margin, error_rate_relative_margin * champion rate))``. At a 1 % champion it is
half a point; against a champion with no errors it is 0.05 points, so a canary that brings new
errors to a clean service is never promoted (and is rolled back once its errors clear the floor).

Verdict rules, in order of precedence:

1. **ROLLBACK** when any signal that may roll back is confidently worse than its floor —
   unless the only harm is latency and quality is confidently *better*: that trade-off is a
   person's (rule 2).
2. **INCONCLUSIVE** (pause, page a human) when signals disagree in a way rules cannot settle:
   slower but better, or the prediction distribution moved beyond its guardrail with no harm
   shown (an intended change or a broken feature; only a person knows which).
3. **PROMOTE** when every signal required for promotion — error rate, latency, its tail, every
   slice with at least ``slice_min_share`` of the canary's traffic, the prediction distribution,
   and quality if ``quality_required_for_promotion`` — is *not worse* than its margin, none is
   worse, and ``min_windows_before_promote`` windows have passed. A signal whose data is not
   collected at all (``not_collected``) does not block, and says so. Quality is not required by
   default: with delayed, partial labels it rarely has the sample to prove a small margin, so it
   is a tripwire for gross regressions and the offline gate guards small ones.
4. **Slow evidence extends the canary; stuck evidence pages.** At ``max_windows`` an undecided
   canary keeps running quietly when every open signal is *on course* — its upper bound, at the
   information the canary will have by ``max_windows * extension_factor`` windows, would be
   below the margin (a slice: it will reach its minimum sample). Otherwise, or at that hard cap,
   the verdict is **INCONCLUSIVE** and names the signal that cannot settle (an estimate sitting
   between floor and margin will not be decided by more of the same traffic).
5. **CONTINUE** otherwise (including while minimum samples are not reached).

Everything is computed on arrays with a leading batch axis (:meth:`CanaryJudge.decide`), so the
simulation benchmark judges a thousand canaries with the very code the controller runs on one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitoring.evidence import (
    CanaryEvidence,
    MeanEvidence,
    ScoreEvidence,
    mean_sequence,
    proportion_sequence,
)
from monitoring.observation import (
    CanaryObservation,
    JudgeInputError,
    LatencySummary,
    LossSummary,
    ScoreHistogram,
    VariantWindow,
    observation_evidence,
)
from monitoring.sequential import (
    DifferenceSequence,
    mixture_radius,
    population_stability_index,
    psi_noise_allowance,
    spent_alpha,
)

__all__ = [
    "DECISION_BY_CODE",
    "VERDICT_BY_CODE",
    "BatchJudgement",
    "CanaryEvidence",
    "CanaryJudge",
    "CanaryObservation",
    "Decision",
    "DecisionCode",
    "JudgeConfig",
    "JudgeInputError",
    "JudgeResult",
    "LatencySummary",
    "LossSummary",
    "ScoreHistogram",
    "SignalArrays",
    "SignalName",
    "SignalResult",
    "VariantWindow",
    "Verdict",
    "VerdictCode",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


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
    NOT_COLLECTED = "not_collected"


class DecisionCode(IntEnum):
    """Integer codes of :class:`Decision`, for arrays."""

    INSUFFICIENT = 0
    UNDECIDED = 1
    NOT_WORSE = 2
    BETTER = 3
    WORSE = 4
    NOT_COLLECTED = 5


DECISION_BY_CODE: dict[int, Decision] = {code.value: Decision[code.name] for code in DecisionCode}


class SignalName(StrEnum):
    """The comparisons the judge makes."""

    ERROR_RATE = "error_rate"
    LATENCY = "latency"
    LATENCY_TAIL = "latency_tail"
    QUALITY = "quality"
    SLICE_ERROR_RATE = "slice_error_rate"
    SLICE_QUALITY = "slice_quality"
    PREDICTIONS = "prediction_distribution"


_SLICE_SIGNALS = (SignalName.SLICE_ERROR_RATE, SignalName.SLICE_QUALITY)


class JudgeConfig(BaseModel):
    """Thresholds and budgets of the canary judge.

    Attributes:
        alpha_rollback: Probability, over the canary's whole life, of rolling back a canary that
            is within every floor (split evenly across the tests that may roll back).
        alpha_promote: Probability of promoting a canary that is beyond a margin.
        error_rate_floor: Error-rate increase (absolute, 0.001 = 0.1 point) worth a rollback.
        error_rate_margin: Largest error-rate increase a promotion accepts, at most.
        error_rate_relative_margin: The margin as a share of the champion's rate (0.5 = +50 %),
            when that is smaller than ``error_rate_margin``.
        error_rate_margin_min: The margin never goes below this (a champion with no errors).
        error_rate_min_requests: Requests each variant needs before the error rate is judged.
        error_rate_mixture_scale: Rate difference where the confidence sequence is tightest.
        latency_ratio_floor: Geometric-mean latency ratio (canary / champion) worth a rollback.
        latency_ratio_margin: Largest latency ratio a promotion accepts.
        latency_min_samples: Latency observations each variant needs before latency is judged.
        latency_mixture_scale: Log-ratio where the latency sequence is tightest.
        tail_floor: Increase of the share above that quantile worth a rollback (0.005 = half a
            point: at p99, 1.5 times the champion's tail).
        tail_margin: Largest increase of that share a promotion accepts.
        tail_min_samples: Latency observations each variant needs before the tail is judged.
        tail_mixture_scale: Share difference where the tail sequence is tightest.
        quality_floor: Increase in mean per-row loss (nats of log loss) worth a rollback.
        quality_margin: Largest loss increase a promotion accepts.
        quality_min_labels: Labelled predictions each variant needs before quality is judged.
        quality_mixture_scale: Loss difference where the quality sequence is tightest.
        quality_required_for_promotion: Whether promotion waits for quality to prove its margin.
        slice_error_rate_floor: Error-rate increase within a slice worth a rollback.
        slice_error_rate_margin: Largest error-rate increase within a slice a promotion accepts.
        slice_min_requests: Requests each variant needs in a slice before it is judged.
        slice_min_customers: Routing-key groups (customers) each variant needs in a slice before
            it is judged: a slice served by a handful of customers compares those customers,
            not the models, and no variance estimate from so few is trustworthy.
        slice_min_share: Slices with at least this share of the canary's requests must be shown
            not worse before a promotion; thinner slices are checked for rollback only.
        slice_quality_floor: Loss increase within a slice worth a rollback.
        slice_quality_margin: Loss increase within a slice reported as not worse.
        slice_min_labels: Labelled predictions each variant needs in a slice.
        slice_mixture_scale: Difference where the slice sequences are tightest.
        psi_floor: PSI between the score distributions that the guardrail tolerates.
        psi_alpha: Probability, over all windows, that the guardrail fires on an unchanged canary.
        psi_min_samples: Scores each variant needs before the guardrail is checked.
        prediction_shift_action: ``"pause"`` (INCONCLUSIVE, page a human) or ``"rollback"``.
        rollback_alpha_shares: How ``alpha_rollback`` is split between the signals (weights
            per signal name; see :meth:`rollback_alpha`).
        min_windows_before_promote: Windows that must pass before a promotion.
        max_windows: Windows after which an undecided canary pages, unless it is on course.
        extension_factor: An on-course canary runs up to ``max_windows * extension_factor``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha_rollback: float = Field(0.01, gt=0.0, lt=0.5)
    alpha_promote: float = Field(0.05, gt=0.0, lt=0.5)

    error_rate_floor: float = Field(0.001, ge=0.0, lt=1.0)
    error_rate_margin: float = Field(0.005, gt=0.0, lt=1.0)
    error_rate_relative_margin: float = Field(0.5, gt=0.0)
    error_rate_margin_min: float = Field(0.002, gt=0.0, lt=1.0)
    error_rate_min_requests: int = Field(400, ge=1)
    error_rate_mixture_scale: float = Field(0.01, gt=0.0)

    latency_ratio_floor: float = Field(1.1, ge=1.0)
    latency_ratio_margin: float = Field(1.2, gt=1.0)
    latency_min_samples: int = Field(100, ge=2)
    latency_mixture_scale: float = Field(0.2, gt=0.0)

    tail_floor: float = Field(0.005, ge=0.0, lt=1.0)
    tail_margin: float = Field(0.01, gt=0.0, lt=1.0)
    tail_min_samples: int = Field(400, ge=1)
    tail_mixture_scale: float = Field(0.01, gt=0.0)

    quality_floor: float = Field(0.002, ge=0.0)
    quality_margin: float = Field(0.005, gt=0.0)
    quality_min_labels: int = Field(200, ge=2)
    quality_mixture_scale: float = Field(0.01, gt=0.0)
    quality_required_for_promotion: bool = False

    slice_error_rate_floor: float = Field(0.005, ge=0.0, lt=1.0)
    slice_error_rate_margin: float = Field(0.02, gt=0.0, lt=1.0)
    slice_min_requests: int = Field(200, ge=1)
    slice_min_customers: int = Field(20, ge=0)
    slice_min_share: float = Field(0.05, ge=0.0, le=1.0)
    slice_quality_floor: float = Field(0.02, ge=0.0)
    slice_quality_margin: float = Field(0.05, gt=0.0)
    slice_min_labels: int = Field(100, ge=2)
    slice_mixture_scale: float = Field(0.02, gt=0.0)

    psi_floor: float = Field(0.2, gt=0.0)
    psi_alpha: float = Field(0.005, gt=0.0, lt=0.5)
    psi_min_samples: int = Field(400, ge=1)
    prediction_shift_action: Literal["pause", "rollback"] = "pause"

    rollback_alpha_shares: dict[str, float] = Field(
        default_factory=lambda: {
            SignalName.ERROR_RATE.value: 0.3,
            SignalName.LATENCY.value: 0.15,
            SignalName.LATENCY_TAIL.value: 0.15,
            SignalName.QUALITY.value: 0.1,
            SignalName.SLICE_ERROR_RATE.value: 0.2,
            SignalName.SLICE_QUALITY.value: 0.1,
            SignalName.PREDICTIONS.value: 0.1,
        }
    )

    min_windows_before_promote: int = Field(3, ge=1)
    max_windows: int = Field(30, ge=1)
    extension_factor: int = Field(10, ge=1, le=20)

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
            ("tail_floor", self.tail_floor, "tail_margin", self.tail_margin),
            ("quality_floor", self.quality_floor, "quality_margin", self.quality_margin),
            (
                "slice_error_rate_floor",
                self.slice_error_rate_floor,
                "slice_error_rate_margin",
                self.slice_error_rate_margin,
            ),
            (
                "slice_quality_floor",
                self.slice_quality_floor,
                "slice_quality_margin",
                self.slice_quality_margin,
            ),
            (
                "error_rate_margin_min",
                self.error_rate_margin_min,
                "error_rate_margin",
                self.error_rate_margin,
            ),
        )
        for floor_name, floor, margin_name, margin in pairs:
            if floor > margin:
                raise ValueError(
                    f"{floor_name} ({floor}) must not exceed {margin_name} ({margin}): a "
                    "regression worth a rollback cannot be one a promotion accepts"
                )
        unknown = set(self.rollback_alpha_shares) - {n.value for n in SignalName}
        missing = {n.value for n in SignalName} - set(self.rollback_alpha_shares)
        if unknown or missing:
            raise ValueError(
                "rollback_alpha_shares must name every signal once: "
                f"unknown {sorted(unknown)}, missing {sorted(missing)}"
            )
        if any(v <= 0 for v in self.rollback_alpha_shares.values()):
            raise ValueError("rollback_alpha_shares must all be > 0")
        if self.min_windows_before_promote > self.max_windows:
            raise ValueError(
                f"min_windows_before_promote ({self.min_windows_before_promote}) must not exceed "
                f"max_windows ({self.max_windows})"
            )
        return self

    @property
    def hard_max_windows(self) -> int:
        """Windows after which an undecided canary pages whatever its course."""
        return self.max_windows * self.extension_factor

    @property
    def rollback_signals(self) -> tuple[SignalName, ...]:
        """Signals whose regression rolls the canary back."""
        signals = (
            SignalName.ERROR_RATE,
            SignalName.LATENCY,
            SignalName.LATENCY_TAIL,
            SignalName.QUALITY,
            SignalName.SLICE_ERROR_RATE,
            SignalName.SLICE_QUALITY,
        )
        if self.prediction_shift_action == "rollback":
            return (*signals, SignalName.PREDICTIONS)
        return signals

    @property
    def promotion_signals(self) -> tuple[SignalName, ...]:
        """Signals that must be *not worse* (when collected) before a promotion."""
        signals = (
            SignalName.ERROR_RATE,
            SignalName.LATENCY,
            SignalName.LATENCY_TAIL,
            SignalName.SLICE_ERROR_RATE,
            SignalName.PREDICTIONS,
        )
        if self.quality_required_for_promotion:
            return (*signals, SignalName.QUALITY)
        return signals

    def rollback_alpha(self, slices: int) -> dict[SignalName, float]:
        """The share of ``alpha_rollback`` each test may spend (weighted Bonferroni).

        Each rollback signal gets its ``rollback_alpha_shares`` weight, renormalised over the
        signals that can roll back (slice signals only when there are slices); a slice signal's
        share is split evenly across the slices. The shares sum to ``alpha_rollback``, so a
        canary within every floor is rolled back with probability at most that, over every
        signal, slice and look.

        Args:
            slices: How many slices the traffic has.

        Returns:
            The alpha of one test of each signal (of one slice, for a slice signal).
        """
        live = [name for name in self.rollback_signals if name not in _SLICE_SIGNALS or slices > 0]
        total = sum(self.rollback_alpha_shares[name.value] for name in live)
        alpha = {}
        for name in live:
            share = self.alpha_rollback * self.rollback_alpha_shares[name.value] / total
            alpha[name] = share / slices if name in _SLICE_SIGNALS else share
        return alpha


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
        slice: For a slice signal, the slice whose numbers are shown (the closest to a rollback).
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
    slice: str | None = None
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


_UNITS: dict[SignalName, str] = {
    SignalName.ERROR_RATE: "error rate difference (canary - champion)",
    SignalName.LATENCY: "geometric-mean latency ratio (canary / champion)",
    SignalName.LATENCY_TAIL: "difference of the shares slower than the champion's tail quantile",
    SignalName.QUALITY: "mean per-row loss difference (canary - champion)",
    SignalName.SLICE_ERROR_RATE: "error rate difference within the slice shown",
    SignalName.SLICE_QUALITY: "mean per-row loss difference within the slice shown",
    SignalName.PREDICTIONS: "population stability index (0 = identical)",
}


# --- batch readings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalArrays:
    """One signal's reading for every canary in a batch.

    ``estimate``, ``lower`` and ``upper`` are in the signal's reporting units (a ratio for
    latency, PSI for the prediction distribution); ``statistic`` is compared with ``threshold`` to
    decide WORSE; ``margin`` is what ``upper`` must be below for NOT_WORSE. ``on_course`` says,
    for an open signal, whether the evidence expected by the hard cap would settle it.
    ``detail`` names the slice behind a slice signal's numbers (the worst one).
    """

    name: SignalName
    decision: IntArray
    estimate: FloatArray
    lower: FloatArray
    upper: FloatArray
    statistic: FloatArray
    threshold: FloatArray
    margin: FloatArray
    n_canary: FloatArray
    n_champion: FloatArray
    on_course: BoolArray
    detail: tuple[str, ...] | None = None


@dataclass(frozen=True)
class BatchJudgement:
    """Verdict codes (:class:`VerdictCode`) and signal readings for a batch of canaries."""

    verdict: IntArray
    signals: dict[SignalName, SignalArrays]
    stuck: BoolArray


def _decide(
    sequence: DifferenceSequence, enough: BoolArray, floor: npt.ArrayLike, margin: npt.ArrayLike
) -> IntArray:
    floor_a = np.broadcast_to(np.asarray(floor, dtype=np.float64), enough.shape)
    margin_a = np.broadcast_to(np.asarray(margin, dtype=np.float64), enough.shape)
    decision = np.full(enough.shape, DecisionCode.INSUFFICIENT, dtype=np.int64)
    decision[enough] = DecisionCode.UNDECIDED
    decision[enough & (sequence.upper < margin_a)] = DecisionCode.NOT_WORSE
    decision[enough & (sequence.upper < -margin_a)] = DecisionCode.BETTER
    decision[enough & (sequence.lower > floor_a)] = DecisionCode.WORSE
    return decision


def _absent(name: SignalName, size: int) -> SignalArrays:
    nan = np.full(size, np.nan)
    zero = np.zeros(size)
    return SignalArrays(
        name=name,
        decision=np.full(size, DecisionCode.NOT_COLLECTED, dtype=np.int64),
        estimate=nan,
        lower=nan,
        upper=nan,
        statistic=nan,
        threshold=nan,
        margin=nan,
        n_canary=zero,
        n_champion=zero,
        on_course=np.ones(size, dtype=bool),
    )


def _open(decision: IntArray) -> BoolArray:
    """Signals that neither block nor allow yet."""
    return np.asarray(
        (decision == DecisionCode.INSUFFICIENT) | (decision == DecisionCode.UNDECIDED), dtype=bool
    )


@dataclass(frozen=True)
class _Comparison:
    """How to read one difference-of-means signal (the parts that differ between signals)."""

    name: SignalName
    proportion: bool
    floor: float
    margin: npt.ArrayLike
    minimum: float
    mixture_scale: float
    transform: Callable[[FloatArray], FloatArray] | None = None
    min_clusters: float = 0.0


class CanaryJudge:
    """Judges a canary against its champion after every window (see the module docstring).

    Args:
        config: Thresholds and error budgets; the defaults suit 1 % error rates and a few hundred
            canary requests per window.
    """

    def __init__(self, config: JudgeConfig | None = None) -> None:
        self.config = config or JudgeConfig()

    def evaluate(
        self, observation: CanaryObservation | CanaryEvidence, *, window: int | None = None
    ) -> JudgeResult:
        """Judge one canary after one window.

        Args:
            observation: Cumulative counters (:class:`CanaryObservation`, judged as one stratum
                of independent requests) or full evidence (:class:`CanaryEvidence`, batch of 1).
            window: Windows elapsed; required with evidence, read from an observation.

        Returns:
            The verdict, each signal's numbers, and the reason.
        """
        if isinstance(observation, CanaryObservation):
            evidence = observation_evidence(observation)
            window = observation.window
        else:
            evidence = observation
            if window is None or window < 1:
                raise JudgeInputError("window: judging evidence needs the window, at least 1")
        if evidence.batch != 1:
            raise JudgeInputError(f"evaluate judges one canary; got a batch of {evidence.batch}")
        batch = self.decide(evidence, window=window)
        signals = tuple(self._signal_result(batch.signals[name]) for name in SignalName)
        verdict = VERDICT_BY_CODE[int(batch.verdict[0])]
        return JudgeResult(
            verdict=verdict,
            window=window,
            signals=signals,
            reason=self._verdict_reason(verdict, signals, window, bool(batch.stuck[0])),
        )

    def decide(self, evidence: CanaryEvidence, *, window: int | npt.ArrayLike) -> BatchJudgement:
        """Judge a batch of canaries at once (the array form of :meth:`evaluate`).

        Args:
            evidence: The evidence of every canary in the batch.
            window: Windows elapsed (scalar or one per canary).

        Returns:
            Verdict codes and each signal's arrays.
        """
        c = self.config
        size = evidence.batch
        windows = np.broadcast_to(np.asarray(window, dtype=np.float64), (size,))
        # Information grows about linearly with time; at the hard cap it will be this much more.
        growth = np.maximum(c.hard_max_windows / np.maximum(windows, 1.0), 1.0)
        alpha = c.rollback_alpha(len(evidence.slice_errors))
        champion_rate = evidence.errors.matched_means[:, 0]
        error_margin = np.maximum(
            c.error_rate_margin_min,
            np.minimum(
                c.error_rate_margin,
                c.error_rate_relative_margin * np.nan_to_num(champion_rate, nan=1.0),
            ),
        )
        comparisons = {
            SignalName.ERROR_RATE: _Comparison(
                SignalName.ERROR_RATE, True, c.error_rate_floor, error_margin,
                c.error_rate_min_requests, c.error_rate_mixture_scale,
            ),
            SignalName.LATENCY: _Comparison(
                SignalName.LATENCY, False, math.log(c.latency_ratio_floor),
                math.log(c.latency_ratio_margin), c.latency_min_samples,
                c.latency_mixture_scale, np.exp,
            ),
            SignalName.LATENCY_TAIL: _Comparison(
                SignalName.LATENCY_TAIL, True, c.tail_floor, c.tail_margin, c.tail_min_samples,
                c.tail_mixture_scale,
            ),
            SignalName.QUALITY: _Comparison(
                SignalName.QUALITY, False, c.quality_floor, c.quality_margin,
                c.quality_min_labels, c.quality_mixture_scale,
            ),
        }  # fmt: skip
        sources: dict[SignalName, MeanEvidence | None] = {
            SignalName.ERROR_RATE: evidence.errors,
            SignalName.LATENCY: evidence.latency,
            SignalName.LATENCY_TAIL: evidence.latency_tail,
            SignalName.QUALITY: evidence.quality,
        }
        signals: dict[SignalName, SignalArrays] = {}
        for name, comparison in comparisons.items():
            source = sources[name]
            signals[name] = (
                _absent(name, size)
                if source is None
                else self._compare(source, comparison, alpha[name], growth)
            )
        slice_error = _Comparison(
            SignalName.SLICE_ERROR_RATE, True, c.slice_error_rate_floor, c.slice_error_rate_margin,
            c.slice_min_requests, c.slice_mixture_scale, min_clusters=c.slice_min_customers,
        )  # fmt: skip
        slice_quality = _Comparison(
            SignalName.SLICE_QUALITY, False, c.slice_quality_floor, c.slice_quality_margin,
            c.slice_min_labels, c.slice_mixture_scale, min_clusters=c.slice_min_customers,
        )  # fmt: skip
        total_canary = evidence.errors.count[:, 1]
        signals[SignalName.SLICE_ERROR_RATE] = self._slices(
            evidence.slice_errors,
            slice_error,
            alpha.get(SignalName.SLICE_ERROR_RATE, 0.0),
            growth,
            total_canary,
            size,
            blocking=True,
        )
        signals[SignalName.SLICE_QUALITY] = self._slices(
            evidence.slice_quality, slice_quality, alpha.get(SignalName.SLICE_QUALITY, 0.0),
            growth, total_canary, size,
            blocking=False,
        )  # fmt: skip
        signals[SignalName.PREDICTIONS] = self._predictions(
            evidence.scores, windows, growth, alpha.get(SignalName.PREDICTIONS), size
        )
        verdict, stuck = self._verdict(signals, windows)
        return BatchJudgement(
            verdict=verdict, signals={name: signals[name] for name in SignalName}, stuck=stuck
        )

    # --- signals -------------------------------------------------------------------------------

    def _sequence(
        self, evidence: MeanEvidence, comparison: _Comparison, alpha: float
    ) -> DifferenceSequence:
        build = proportion_sequence if comparison.proportion else mean_sequence
        return build(
            evidence,
            alpha_lower=alpha,
            alpha_upper=self.config.alpha_promote,
            mixture_scale=comparison.mixture_scale,
        )

    def _compare(
        self, evidence: MeanEvidence, comparison: _Comparison, alpha: float, growth: FloatArray
    ) -> SignalArrays:
        seq = self._sequence(evidence, comparison, alpha)
        n0, n1 = evidence.count[:, 0], evidence.count[:, 1]
        groups = evidence.variant_clusters
        enough = (
            (n1 >= comparison.minimum)
            & (n0 >= comparison.minimum)
            & (groups.min(axis=-1) >= comparison.min_clusters)
        )
        margin = np.broadcast_to(np.asarray(comparison.margin, dtype=np.float64), n1.shape)
        decision = _decide(seq, enough, comparison.floor, margin)
        # Stuck, rather than slow: the spread between clusters, which more requests from the
        # same customers cannot shrink, already keeps the upper bound above the margin.
        between = evidence.between_cluster_variance()
        plateau = between >= 0.75 * evidence.variance()
        floor_radius = mixture_radius(
            np.where(np.isfinite(between), between, 0.0),
            alpha=self.config.alpha_promote,
            mixture_scale=comparison.mixture_scale,
        )
        settles = ~plateau | (np.nan_to_num(seq.estimate, nan=np.inf) + floor_radius < margin)
        on_course = np.where(enough, settles, np.minimum(n0, n1) * growth >= comparison.minimum)
        show = comparison.transform or (lambda values: values)
        with np.errstate(over="ignore"):
            lower = show(seq.lower)
            return SignalArrays(
                name=comparison.name,
                decision=decision,
                estimate=show(seq.estimate),
                lower=lower,
                upper=show(seq.upper),
                statistic=lower,
                threshold=show(np.full(n1.shape, comparison.floor)),
                margin=show(margin),
                n_canary=n1,
                n_champion=n0,
                on_course=np.asarray(on_course, dtype=bool),
            )

    def _slices(
        self,
        slices: Mapping[str, MeanEvidence],
        comparison: _Comparison,
        alpha: float,
        growth: FloatArray,
        total_canary: FloatArray,
        size: int,
        *,
        blocking: bool,
    ) -> SignalArrays:
        """All slices as one signal: worse if any slice is; not worse when every big one is."""
        if not slices:
            return _absent(comparison.name, size)
        names = tuple(slices)
        readings = [self._compare(slices[n], comparison, alpha, growth) for n in names]
        decisions = np.stack([r.decision for r in readings])
        share = np.stack(
            [r.n_canary / np.maximum(total_canary, 1.0) for r in readings]
        )  # (slices, batch)
        must = share >= self.config.slice_min_share if blocking else np.zeros_like(share, bool)
        pending = must & (
            (decisions == DecisionCode.INSUFFICIENT) | (decisions == DecisionCode.UNDECIDED)
        )
        judged = decisions != DecisionCode.INSUFFICIENT
        decision = np.full(size, DecisionCode.INSUFFICIENT, dtype=np.int64)
        decision[judged.any(axis=0)] = DecisionCode.NOT_WORSE
        decision[pending.any(axis=0)] = DecisionCode.UNDECIDED
        decision[(pending & ~judged).all(axis=0) & pending.any(axis=0)] = DecisionCode.INSUFFICIENT
        decision[(decisions == DecisionCode.WORSE).any(axis=0)] = DecisionCode.WORSE
        on_course = np.stack([r.on_course | ~p for r, p in zip(readings, pending, strict=True)])
        # Report the slice closest to a rollback: the largest lower bound above its floor.
        lowers = np.stack([np.nan_to_num(r.lower, nan=-np.inf) for r in readings])
        worst = np.argmax(lowers, axis=0)
        pick = np.arange(size)

        def take(field: str) -> FloatArray:
            stacked = np.stack([getattr(r, field) for r in readings])
            return np.asarray(stacked[worst, pick], dtype=np.float64)

        return SignalArrays(
            name=comparison.name,
            decision=decision,
            estimate=take("estimate"),
            lower=take("lower"),
            upper=take("upper"),
            statistic=take("statistic"),
            threshold=take("threshold"),
            margin=take("margin"),
            n_canary=take("n_canary"),
            n_champion=take("n_champion"),
            on_course=np.asarray(on_course.all(axis=0), dtype=bool),
            detail=tuple(names[int(i)] for i in worst),
        )

    def _predictions(
        self,
        scores: ScoreEvidence | None,
        windows: FloatArray,
        growth: FloatArray,
        alpha_rollback: float | None,
        size: int,
    ) -> SignalArrays:
        c = self.config
        if scores is None:
            return _absent(SignalName.PREDICTIONS, size)
        n1 = scores.canary_count
        n0 = scores.champion_effective
        psi, df = population_stability_index(scores.canary, scores.champion_matched)
        alpha = c.psi_alpha
        if c.prediction_shift_action == "rollback" and alpha_rollback is not None:
            alpha = min(alpha, alpha_rollback)
        allowance = scores.design_effect * psi_noise_allowance(
            n1, n0, df, alpha=spent_alpha(alpha, windows)
        )
        threshold = c.psi_floor + allowance
        enough = (n1 >= c.psi_min_samples) & (n0 >= c.psi_min_samples)
        decision = np.full(size, DecisionCode.INSUFFICIENT, dtype=np.int64)
        decision[enough] = DecisionCode.UNDECIDED
        decision[enough & (psi <= c.psi_floor)] = DecisionCode.NOT_WORSE
        decision[enough & (psi > threshold)] = DecisionCode.WORSE
        nan = np.full(size, np.nan)
        return SignalArrays(
            name=SignalName.PREDICTIONS,
            decision=decision,
            estimate=psi,
            lower=nan,
            upper=nan,
            statistic=psi,
            threshold=threshold,
            margin=np.full(size, c.psi_floor),
            n_canary=n1,
            n_champion=n0,
            # PSI's noise allowance shrinks as 1/n: more data settles it either way.
            on_course=enough | (np.minimum(n0, n1) * growth >= c.psi_min_samples),
        )

    # --- verdict -------------------------------------------------------------------------------

    def _verdict(
        self, signals: dict[SignalName, SignalArrays], windows: FloatArray
    ) -> tuple[IntArray, BoolArray]:
        c = self.config
        size = windows.shape[0]

        def is_(name: SignalName, code: DecisionCode) -> BoolArray:
            return np.asarray(signals[name].decision == code, dtype=bool)

        worse = np.zeros(size, dtype=bool)
        for name in c.rollback_signals:
            worse |= is_(name, DecisionCode.WORSE)
        slower = is_(SignalName.LATENCY, DecisionCode.WORSE) | is_(
            SignalName.LATENCY_TAIL, DecisionCode.WORSE
        )
        other_harm = np.zeros(size, dtype=bool)
        for name in c.rollback_signals:
            if name not in (SignalName.LATENCY, SignalName.LATENCY_TAIL):
                other_harm |= is_(name, DecisionCode.WORSE)
        # A slower canary that is confidently better is a trade-off for a person, not a rule.
        tradeoff = slower & ~other_harm & is_(SignalName.QUALITY, DecisionCode.BETTER)
        shifted = (
            is_(SignalName.PREDICTIONS, DecisionCode.WORSE)
            if c.prediction_shift_action == "pause"
            else np.zeros(size, dtype=bool)
        )
        ready = windows >= c.min_windows_before_promote
        on_course = np.ones(size, dtype=bool)
        for name in c.promotion_signals:
            reading = signals[name]
            ready &= np.isin(
                reading.decision,
                (DecisionCode.NOT_WORSE, DecisionCode.BETTER, DecisionCode.NOT_COLLECTED),
            )
            on_course &= ~_open(reading.decision) | reading.on_course
        stuck = (windows >= c.max_windows) & ~ready & (~on_course | (windows >= c.hard_max_windows))

        verdict = np.full(size, VerdictCode.CONTINUE, dtype=np.int64)
        verdict[stuck] = VerdictCode.INCONCLUSIVE
        verdict[ready] = VerdictCode.PROMOTE
        verdict[shifted] = VerdictCode.INCONCLUSIVE
        verdict[worse] = VerdictCode.ROLLBACK
        verdict[tradeoff] = VerdictCode.INCONCLUSIVE
        return verdict, stuck & ~ready & ~shifted & ~worse

    # --- words ---------------------------------------------------------------------------------

    def _signal_result(self, arrays: SignalArrays) -> SignalResult:
        decision = DECISION_BY_CODE[int(arrays.decision[0])]
        values = {
            "statistic": _number(float(arrays.statistic[0])),
            "threshold": _number(float(arrays.threshold[0])),
            "estimate": _number(float(arrays.estimate[0])),
            "ci_low": _number(float(arrays.lower[0])),
            "ci_high": _number(float(arrays.upper[0])),
        }
        margin = _number(float(arrays.margin[0]))
        detail = arrays.detail[0] if arrays.detail else None
        return SignalResult(
            name=arrays.name,
            decision=decision,
            margin=margin,
            units=_UNITS[arrays.name],
            n_canary=int(arrays.n_canary[0]),
            n_champion=int(arrays.n_champion[0]),
            slice=detail,
            reason=self._signal_reason(arrays.name, decision, values, margin, detail),
            **values,
        )

    def _signal_reason(
        self,
        name: SignalName,
        decision: Decision,
        values: Mapping[str, float | None],
        margin: float | None,
        detail: str | None,
    ) -> str:
        c = self.config
        if decision == Decision.NOT_COLLECTED:
            return "not collected: this signal is not checked"
        minimum = {
            SignalName.ERROR_RATE: f"{c.error_rate_min_requests} requests",
            SignalName.LATENCY: f"{c.latency_min_samples} latency samples",
            SignalName.LATENCY_TAIL: f"{c.tail_min_samples} latency samples",
            SignalName.QUALITY: f"{c.quality_min_labels} labelled predictions",
            SignalName.SLICE_ERROR_RATE: (
                f"{c.slice_min_requests} requests from {c.slice_min_customers} customers in a slice"
            ),
            SignalName.SLICE_QUALITY: (
                f"{c.slice_min_labels} labelled predictions from {c.slice_min_customers} "
                "customers in a slice"
            ),
            SignalName.PREDICTIONS: f"{c.psi_min_samples} scores",
        }[name]
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
        where = f" in slice {detail!r}" if detail else ""
        span = f"estimate {est}, anytime-valid bounds [{low}, {high}]"
        if name in _SLICE_SIGNALS and decision == Decision.NOT_WORSE:
            return f"not worse in any slice that is judged (closest: {detail!r}, {span})"
        return {
            Decision.WORSE: f"worse{where}: lower bound {stat} exceeds floor {thr} ({span})",
            Decision.BETTER: f"better{where}: upper bound {high} is below -{fmt(margin)} ({span})",
            Decision.NOT_WORSE: f"not worse: upper bound {high} is below margin {fmt(margin)} "
            f"({span})",
            Decision.UNDECIDED: f"undecided{where}: lower bound {low} within floor {thr}, upper "
            f"bound {high} above margin {fmt(margin)} ({span})",
        }[decision]

    def _verdict_reason(
        self, verdict: Verdict, signals: tuple[SignalResult, ...], window: int, stuck: bool
    ) -> str:
        c = self.config
        by_name = {s.name: s for s in signals}

        def listing(names: Sequence[SignalName]) -> str:
            return "; ".join(f"{n.value}: {by_name[n].reason}" for n in names)

        worse = [n for n in c.rollback_signals if by_name[n].decision == Decision.WORSE]
        open_ = (Decision.INSUFFICIENT, Decision.UNDECIDED)
        pending = [n for n in c.promotion_signals if by_name[n].decision in open_]
        if verdict == Verdict.ROLLBACK:
            return f"roll back: {listing(worse)}"
        if verdict == Verdict.INCONCLUSIVE:
            if worse:
                both = listing([SignalName.LATENCY, SignalName.LATENCY_TAIL, SignalName.QUALITY])
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
            if window >= c.hard_max_windows:
                why = f"no decision after {window} windows (hard cap {c.hard_max_windows})"
            else:
                why = (
                    f"no decision after {window} windows (max {c.max_windows}) and more of the "
                    "same traffic will not settle it: an estimate sits between floor and margin"
                )
            return f"pause and page a human: {why}; still open: {listing(pending)}"
        if verdict == Verdict.PROMOTE:
            return f"promote: {listing(c.promotion_signals)}"
        if window < c.min_windows_before_promote:
            return (
                f"continue: minimum duration not reached ({window} of "
                f"{c.min_windows_before_promote} windows)"
            )
        if window >= c.max_windows:
            return (
                f"continue (extended past {c.max_windows} windows, up to "
                f"{c.hard_max_windows}): evidence is still accruing and on course; waiting on "
                f"{listing(pending)}"
            )
        return f"continue: waiting on {listing(pending)}"
