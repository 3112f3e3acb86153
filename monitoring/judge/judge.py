"""The canary judge: every signal's reading, combined into one verdict per canary.

The signals, their statistics and the verdict rules are described in :mod:`monitoring.judge`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from monitoring.judge.config import JudgeConfig
from monitoring.judge.evidence import CanaryEvidence, MeanEvidence
from monitoring.judge.observation import CanaryObservation, JudgeInputError, observation_evidence
from monitoring.judge.reasons import signal_result, verdict_reason
from monitoring.judge.results import (
    VERDICT_BY_CODE,
    BatchJudgement,
    DecisionCode,
    JudgeResult,
    SignalArrays,
    SignalName,
    VerdictCode,
)
from monitoring.judge.signals import Comparison, absent, compare, is_open, predictions, slices

__all__ = ["CanaryJudge"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class CanaryJudge:
    """Judges a canary against its champion after every window (see :mod:`monitoring.judge`).

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
        signals = tuple(signal_result(batch.signals[name], self.config) for name in SignalName)
        verdict = VERDICT_BY_CODE[int(batch.verdict[0])]
        return JudgeResult(
            verdict=verdict,
            window=window,
            signals=signals,
            reason=verdict_reason(verdict, signals, window, bool(batch.stuck[0]), self.config),
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
        signals = self._whole_traffic(evidence, alpha, growth)
        signals.update(self._per_slice(evidence, alpha, growth))
        signals[SignalName.PREDICTIONS] = predictions(
            evidence.scores, windows, growth, alpha.get(SignalName.PREDICTIONS), size, c
        )
        verdict, stuck = self._verdict(signals, windows)
        return BatchJudgement(
            verdict=verdict, signals={name: signals[name] for name in SignalName}, stuck=stuck
        )

    # --- signals -------------------------------------------------------------------------------

    def _whole_traffic(
        self, evidence: CanaryEvidence, alpha: dict[SignalName, float], growth: FloatArray
    ) -> dict[SignalName, SignalArrays]:
        """Error rate, latency, its tail and quality over all the traffic."""
        c = self.config
        champion_rate = evidence.errors.matched_means[:, 0]
        error_margin = np.maximum(
            c.error_rate_margin_min,
            np.minimum(
                c.error_rate_margin,
                c.error_rate_relative_margin * np.nan_to_num(champion_rate, nan=1.0),
            ),
        )
        comparisons = {
            SignalName.ERROR_RATE: Comparison(
                SignalName.ERROR_RATE, True, c.error_rate_floor, error_margin,
                c.error_rate_min_requests, c.error_rate_mixture_scale,
            ),
            SignalName.LATENCY: Comparison(
                SignalName.LATENCY, False, math.log(c.latency_ratio_floor),
                math.log(c.latency_ratio_margin), c.latency_min_samples,
                c.latency_mixture_scale, np.exp,
            ),
            SignalName.LATENCY_TAIL: Comparison(
                SignalName.LATENCY_TAIL, True, c.tail_floor, c.tail_margin, c.tail_min_samples,
                c.tail_mixture_scale,
            ),
            SignalName.QUALITY: Comparison(
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
        size = evidence.batch
        signals: dict[SignalName, SignalArrays] = {}
        for name, comparison in comparisons.items():
            source = sources[name]
            signals[name] = (
                absent(name, size)
                if source is None
                else compare(source, comparison, alpha[name], growth, c)
            )
        return signals

    def _per_slice(
        self, evidence: CanaryEvidence, alpha: dict[SignalName, float], growth: FloatArray
    ) -> dict[SignalName, SignalArrays]:
        """Error rate and quality within each traffic slice, each reduced to one reading."""
        c = self.config
        size = evidence.batch
        slice_error = Comparison(
            SignalName.SLICE_ERROR_RATE, True, c.slice_error_rate_floor, c.slice_error_rate_margin,
            c.slice_min_requests, c.slice_mixture_scale, min_clusters=c.slice_min_customers,
        )  # fmt: skip
        slice_quality = Comparison(
            SignalName.SLICE_QUALITY, False, c.slice_quality_floor, c.slice_quality_margin,
            c.slice_min_labels, c.slice_mixture_scale, min_clusters=c.slice_min_customers,
        )  # fmt: skip
        total_canary = evidence.errors.count[:, 1]
        return {
            SignalName.SLICE_ERROR_RATE: slices(
                evidence.slice_errors, slice_error, alpha.get(SignalName.SLICE_ERROR_RATE, 0.0),
                growth, total_canary, size, c, blocking=True,
            ),
            SignalName.SLICE_QUALITY: slices(
                evidence.slice_quality, slice_quality, alpha.get(SignalName.SLICE_QUALITY, 0.0),
                growth, total_canary, size, c, blocking=False,
            ),
        }  # fmt: skip

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
            on_course &= ~is_open(reading.decision) | reading.on_course
        stuck = (windows >= c.max_windows) & ~ready & (~on_course | (windows >= c.hard_max_windows))

        verdict = np.full(size, VerdictCode.CONTINUE, dtype=np.int64)
        verdict[stuck] = VerdictCode.INCONCLUSIVE
        verdict[ready] = VerdictCode.PROMOTE
        verdict[shifted] = VerdictCode.INCONCLUSIVE
        verdict[worse] = VerdictCode.ROLLBACK
        verdict[tradeoff] = VerdictCode.INCONCLUSIVE
        return verdict, stuck & ~ready & ~shifted & ~worse
