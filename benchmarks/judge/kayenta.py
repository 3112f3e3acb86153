"""The Kayenta / Spinnaker peer judge (``NetflixACAJudge``), implemented from its docs and source.

It gives verdicts in our vocabulary (:class:`~monitoring.judge.Verdict`), explains a single
interval in its own terms (:class:`~benchmarks.judge.peer_result.PeerResult`), and has a batch
form that the simulation drives over thousands of canaries at once
(:class:`benchmarks.judge.batch_judges.KayentaBatchJudge`). It is not tuned to look bad: the
settings are the ones its documentation's examples use
(:func:`benchmarks.judge.batch_judges.default_judges`), reported next to every figure.

**Kayenta / Spinnaker** (:class:`KayentaMannWhitneyJudge`) — the default ``NetflixACAJudge``.
From the Spinnaker docs ("How canary judgment works") and Kayenta's source
(``NetflixACAJudge.scala``, ``MannWhitneyClassifier.scala``, ``WeightedSumScorer.scala``,
orca's ``MonitorKayentaCanaryTask`` and ``RunCanaryIntervalsStage``):

* "The judge merely receives timeseries from Kayenta": one value per metric per ``step`` for the
  canary and for the baseline. Each series is cleaned (NaNs removed; outliers beyond
  ``IQRDetector(factor = 3.0, reduceSensitivity = true)``'s fences removed).
* Each metric is classified Pass, High or Low by a Mann-Whitney U test: the judge computes the
  confidence interval of the location shift (R's ``wilcox.test`` asymptotic interval with
  continuity and tie corrections, ``confLevel = 0.98``, hard-coded in ``NetflixACAJudge``) and
  its Hodges-Lehmann estimate; the metric is High when the interval's lower end exceeds
  ``tolerance * |estimate|`` (``tolerance = 0.25``) *and* the mean ratio canary/baseline is at
  least ``allowedIncrease`` (default 1.0); Low symmetrically. The metric's ``direction``
  (``increase``/``decrease``/``either``, default ``either``) says which of the two fail it.
* "The score is computed as the ratio of metrics classified as Pass out of the total", per group,
  weighted across groups (``WeightedSumScorer``); a failed *critical* metric scores 0.
* Score thresholds ``marginal`` and ``pass`` (the docs' examples use 75 and 95): after each
  interval, "Canary score is not above the marginal score threshold" (``score <= marginal``)
  ends the canary as failed; at the end of the lifetime the final score must reach ``pass``.
* Intervals: ``RunCanaryIntervalsStage`` judges interval ``i`` on data from the start (or, with
  ``lookbackMins``, from ``end - lookback``) to ``start + i * interval``. The benchmark uses a
  lookback of one window, so "each interval is judged on its own data".

The Mann-Whitney statistics themselves are in :mod:`benchmarks.judge.mann_whitney`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from benchmarks.judge.mann_whitney import clean, mann_whitney_shift_interval, nanmean
from benchmarks.judge.peer_result import PeerMetricResult, PeerResult, finite_or_none
from monitoring.judge import VERDICT_BY_CODE, Verdict, VerdictCode

__all__ = ["KayentaConfig", "KayentaMannWhitneyJudge", "KayentaMetric", "MetricClass"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class MetricClass(IntEnum):
    """Kayenta's metric classifications."""

    PASS = 0
    HIGH = 1
    LOW = 2
    NODATA = 3
    ERROR = 4


class KayentaMetric(BaseModel):
    """One metric of a Kayenta canary config (``analysisConfigurations.canary``).

    Attributes:
        name: Metric name (also the key of its time series).
        direction: Which change fails the metric (Kayenta default ``either``).
        critical: A failed critical metric scores the whole canary 0.
        allowed_increase: ``effectSize.allowedIncrease``: mean ratio needed for High (default 1).
        allowed_decrease: ``effectSize.allowedDecrease``: mean ratio needed for Low (default 1).
        critical_increase: ``effectSize.criticalIncrease`` for critical metrics (default 1).
        critical_decrease: ``effectSize.criticalDecrease`` for critical metrics (default 1).
        groups: Metric groups it scores in (its own name if empty).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    direction: Literal["increase", "decrease", "either"] = "either"
    critical: bool = False
    allowed_increase: float = Field(1.0, gt=0.0)
    allowed_decrease: float = Field(1.0, gt=0.0)
    critical_increase: float = Field(1.0, gt=0.0)
    critical_decrease: float = Field(1.0, gt=0.0)
    groups: tuple[str, ...] = ()

    @property
    def group_names(self) -> tuple[str, ...]:
        """The groups the metric scores in."""
        return self.groups or (self.name,)


class KayentaConfig(BaseModel):
    """A Kayenta canary config plus the stage's score thresholds and lifetime.

    Attributes:
        metrics: The metrics compared.
        confidence_level: Mann-Whitney confidence (``NetflixACAJudge`` hard-codes 0.98).
        tolerance: Fraction of the Hodges-Lehmann shift the interval must clear (0.25).
        marginal: ``scoreThresholds.marginal``: a score at or below it fails the canary.
        pass_threshold: ``scoreThresholds.pass``: the final score must reach it.
        group_weights: ``classifier.groupWeights`` (unweighted groups share the rest of 100).
        intervals: Intervals in the lifetime; the last one's score decides pass or fail.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    metrics: tuple[KayentaMetric, ...] = Field(min_length=1)
    confidence_level: float = Field(0.98, gt=0.0, lt=1.0)
    tolerance: float = Field(0.25, ge=0.0)
    marginal: float = Field(75.0, ge=0.0, le=100.0)
    pass_threshold: float = Field(95.0, ge=0.0, le=100.0)
    group_weights: dict[str, float] = Field(default_factory=dict)
    intervals: int = Field(ge=1)

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> KayentaConfig:
        if self.marginal > self.pass_threshold:
            raise ValueError(
                f"marginal ({self.marginal}) must not exceed pass_threshold ({self.pass_threshold})"
            )
        return self


@dataclass(frozen=True)
class _Classification:
    label: IntArray
    lower: FloatArray
    upper: FloatArray
    estimate: FloatArray
    ratio: FloatArray
    critical: npt.NDArray[np.bool_]


def _classify(
    metric: KayentaMetric,
    experiment: FloatArray,
    control: FloatArray,
    config: KayentaConfig,
    rng: np.random.Generator,
) -> _Classification:
    """``MannWhitneyClassifier.classify`` for a batch of series pairs."""
    x = clean(np.atleast_2d(np.asarray(experiment, dtype=np.float64)))
    y = clean(np.atleast_2d(np.asarray(control, dtype=np.float64)))
    size = x.shape[0]
    nx = np.isfinite(x).sum(axis=-1)
    ny = np.isfinite(y).sum(axis=-1)
    nodata = (nx == 0) | (ny == 0)
    if x.shape[-1] == y.shape[-1]:
        xs, ys = np.sort(x, axis=-1), np.sort(y, axis=-1)
        same = (xs == ys) | (np.isnan(xs) & np.isnan(ys))
        identical = (nx == ny) & np.all(same, axis=-1) & ~nodata
    else:
        identical = np.zeros(size, dtype=bool)
    x, y, one_value = _degenerate_with_noise(x, y, nodata, rng)

    lower, upper, estimate = mann_whitney_shift_interval(x, y, confidence=config.confidence_level)
    mean_x, mean_y = nanmean(x), nanmean(y)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(mean_y == 0.0, 1.0, np.where(mean_x == 0.0, np.nan, mean_x / mean_y))
    bound = config.tolerance * np.abs(estimate)
    may_be_high = metric.direction in ("increase", "either")
    may_be_low = metric.direction in ("decrease", "either")
    with np.errstate(invalid="ignore"):
        high = may_be_high & (lower > bound) & (ratio >= metric.allowed_increase)
        low = may_be_low & (upper < -bound) & (ratio <= metric.allowed_decrease)
    label = np.full(size, MetricClass.PASS, dtype=np.int64)
    label[low] = MetricClass.LOW
    label[high] = MetricClass.HIGH
    label[~np.isfinite(lower) & ~nodata] = MetricClass.ERROR  # all tied: Kayenta throws
    label[identical | one_value] = MetricClass.PASS
    label[nodata] = MetricClass.NODATA
    ratio = np.where(identical | one_value | nodata, 1.0, ratio)
    with np.errstate(invalid="ignore"):
        critical = metric.critical & (
            ((label == MetricClass.HIGH) & (ratio >= metric.critical_increase))
            | ((label == MetricClass.LOW) & (ratio <= metric.critical_decrease))
            | (label == MetricClass.NODATA)
            | (label == MetricClass.ERROR)
        )
    return _Classification(label, lower, upper, estimate, ratio, np.asarray(critical))


def _degenerate_with_noise(
    x: FloatArray, y: FloatArray, nodata: npt.NDArray[np.bool_], rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Kayenta's handling of series with one distinct value; returns ``(x, y, one_value)``.

    Both series one and the same value: ``one_value`` (the metric passes). Each series one
    value, but different: Kayenta adds N(0, (value * 1e-5)^2) noise so the test can run.
    """
    filled_x = np.where(np.isfinite(x), x, np.nan)
    filled_y = np.where(np.isfinite(y), y, np.nan)
    with np.errstate(invalid="ignore"):
        x_min = np.where(nodata, 0.0, np.nanmin(np.where(nodata[:, None], 0.0, filled_x), axis=-1))
        x_max = np.where(nodata, 0.0, np.nanmax(np.where(nodata[:, None], 0.0, filled_x), axis=-1))
        y_min = np.where(nodata, 0.0, np.nanmin(np.where(nodata[:, None], 0.0, filled_y), axis=-1))
        y_max = np.where(nodata, 0.0, np.nanmax(np.where(nodata[:, None], 0.0, filled_y), axis=-1))
    one_value = (x_min == x_max) & (y_min == y_max) & (x_min == y_min)
    degenerate = (x_min == x_max) & (y_min == y_max) & ~one_value & ~nodata
    if np.any(degenerate):
        x_noise = rng.standard_normal(x.shape) * np.abs(x_min)[:, None] * 1e-5
        y_noise = rng.standard_normal(y.shape) * np.abs(y_min)[:, None] * 1e-5
        x = np.where(degenerate[:, None], x + x_noise, x)
        y = np.where(degenerate[:, None], y + y_noise, y)
    return x, y, one_value


@dataclass
class KayentaMannWhitneyJudge:
    """Kayenta's ``NetflixACAJudge`` and the Spinnaker stage's score thresholds.

    Stateless across intervals except for knowing which interval is the last.

    Args:
        config: The canary config, thresholds and lifetime.
        seed: Seed for the tiny noise Kayenta adds to degenerate series.
    """

    config: KayentaConfig
    seed: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def score_batch(
        self, canary: Mapping[str, npt.ArrayLike], baseline: Mapping[str, npt.ArrayLike]
    ) -> tuple[FloatArray, dict[str, _Classification]]:
        """Classify every metric and compute the summary score, for a batch of intervals.

        Args:
            canary: Per metric, the canary's series, shape ``(batch, steps)`` (NaN = no point).
            baseline: Per metric, the baseline's series, shape ``(batch, steps)``.

        Returns:
            The summary score (0-100) per interval and each metric's classification.
        """
        results: dict[str, _Classification] = {}
        for metric in self.config.metrics:
            if metric.name not in canary or metric.name not in baseline:
                raise KeyError(f"no time series for metric {metric.name!r}")
            results[metric.name] = _classify(
                metric,
                np.asarray(canary[metric.name], dtype=np.float64),
                np.asarray(baseline[metric.name], dtype=np.float64),
                self.config,
                self._rng,
            )
        size = next(iter(results.values())).label.shape[0]
        groups = sorted({g for m in self.config.metrics for g in m.group_names})
        weights = self.config.group_weights
        unweighted = [g for g in groups if g not in weights]
        leftover = (100.0 - sum(weights.values())) / len(unweighted) if unweighted else 0.0
        summary = np.zeros(size)
        for group in groups:
            members = [m for m in self.config.metrics if group in m.group_names]
            passed = sum((results[m.name].label == MetricClass.PASS).astype(float) for m in members)
            judged = sum(
                np.isin(
                    results[m.name].label, (MetricClass.PASS, MetricClass.HIGH, MetricClass.LOW)
                ).astype(float)
                for m in members
            )
            judged_array = np.asarray(judged, dtype=np.float64)
            score = np.where(
                judged_array > 0, 100.0 * np.asarray(passed) / np.maximum(judged_array, 1.0), 0.0
            )
            summary += np.where(judged_array > 0, score * weights.get(group, leftover) / 100.0, 0.0)
        critical_failure = np.zeros(size, dtype=bool)
        for result in results.values():
            critical_failure |= result.critical
        return np.where(critical_failure, 0.0, summary), results

    def judge_batch(
        self,
        canary: Mapping[str, npt.ArrayLike],
        baseline: Mapping[str, npt.ArrayLike],
        *,
        interval: int,
    ) -> IntArray:
        """Verdict codes after interval ``interval`` (1-based) for a batch of canaries."""
        score, _ = self.score_batch(canary, baseline)
        return self._verdict(score, interval)

    def _verdict(self, score: FloatArray, interval: int) -> IntArray:
        c = self.config
        verdict = np.full(score.shape, VerdictCode.CONTINUE, dtype=np.int64)
        if interval >= c.intervals:
            verdict[:] = np.where(
                score >= c.pass_threshold, VerdictCode.PROMOTE, VerdictCode.ROLLBACK
            )
        verdict[score <= c.marginal] = VerdictCode.ROLLBACK
        return verdict

    def judge(
        self,
        canary: Mapping[str, Sequence[float]],
        baseline: Mapping[str, Sequence[float]],
        *,
        interval: int,
    ) -> PeerResult:
        """Judge one canary's interval and explain it.

        Args:
            canary: Per metric, the canary's time series for the interval.
            baseline: Per metric, the baseline's time series for the interval.
            interval: Which interval this is (1-based); the last one decides pass or fail.

        Returns:
            The verdict, the score, and each metric's classification with its interval.
        """

        def padded(series: Mapping[str, Sequence[float]]) -> dict[str, FloatArray]:
            return {
                k: np.asarray([list(v) or [np.nan]], dtype=np.float64) for k, v in series.items()
            }

        score, results = self.score_batch(padded(canary), padded(baseline))
        verdict = VERDICT_BY_CODE[int(self._verdict(score, interval)[0])]
        metrics = []
        for metric in self.config.metrics:
            r = results[metric.name]
            label = MetricClass(int(r.label[0]))
            estimate = finite_or_none(float(r.estimate[0]))
            bound = None if estimate is None else self.config.tolerance * abs(estimate)
            lower, upper = finite_or_none(float(r.lower[0])), finite_or_none(float(r.upper[0]))
            metrics.append(
                PeerMetricResult(
                    name=metric.name,
                    outcome=label.name.capitalize(),
                    failed=label in (MetricClass.HIGH, MetricClass.LOW) or bool(r.critical[0]),
                    value=estimate,
                    threshold=bound,
                    ci_low=lower,
                    ci_high=upper,
                    reason=f"{label.name.capitalize()} (direction {metric.direction}, mean ratio "
                    f"{finite_or_none(float(r.ratio[0]))}, "
                    f"{self.config.confidence_level:.0%} interval "
                    f"[{lower}, {upper}], tolerance bound {bound})",
                )
            )
        value = float(score[0])
        return PeerResult(
            verdict=verdict,
            window=interval,
            score=value,
            metrics=tuple(metrics),
            reason=_kayenta_reason(verdict, value, self.config, interval),
        )


def _kayenta_reason(verdict: Verdict, score: float, config: KayentaConfig, interval: int) -> str:
    if verdict == Verdict.ROLLBACK and score <= config.marginal:
        return f"canary score {score:.1f} is not above the marginal threshold {config.marginal}"
    if verdict == Verdict.ROLLBACK:
        return f"final canary score {score:.1f} is below the pass threshold {config.pass_threshold}"
    if verdict == Verdict.PROMOTE:
        return f"final canary score {score:.1f} met the pass threshold {config.pass_threshold}"
    return (
        f"interval {interval} of {config.intervals}: score {score:.1f} above marginal "
        f"{config.marginal}"
    )
