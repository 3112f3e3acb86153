"""Two peer canary judges, implemented from their documentation and source, for the benchmark.

Both give verdicts in our vocabulary (:class:`~monitoring.judge.Verdict`), explain single runs in
their own terms (:class:`PeerResult`), and have a batch form (``*_batch``) that the simulation
drives over thousands of canaries at once, through :class:`monitoring.simulation.BatchJudge`.
Neither is tuned to look bad: the settings are the ones their documentation's examples use (see
:func:`monitoring.simulation.default_judges`), and they are reported next to every figure.

**Argo Rollouts** (:class:`ArgoThresholdJudge`) — an ``AnalysisTemplate`` whose metrics each run
a query every ``interval`` and compare the *interval's* value with a fixed condition. From the
Argo Rollouts docs (Analysis & Progressive Delivery) and ``analysis/analysis.go``:

* "successCondition and failureCondition ... are used to evaluate the result of a measurement";
  in ``EvaluateResult``: "Without a failure condition, a measurement is considered a failure if
  the measurement's success condition is not true", and with both set and neither true the
  measurement is Inconclusive.
* ``failureLimit``: the metric fails when ``failed > failureLimit`` (``assessMetricFailure...``:
  ``"failed (%d) > failureLimit (%d)"``; default 0), so with ``failureLimit: 3`` the fourth
  failed measurement fails the analysis, and a failed analysis aborts the rollout (canary weight
  back to 0). ``inconclusiveLimit`` works the same way and pauses the rollout.
* ``count``: after ``count`` measurements the metric is Successful ("Count Reached").
  ``consecutiveErrorLimit`` counts *query errors* (provider failures), which simulated data never
  has, so it is not modelled. Measurements are taken at the end of each window (as with an
  ``initialDelay`` of one interval), so every measurement sees a full window of canary traffic.

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

Kayenta's Mann-Whitney interval is found in the source with Brent's root finder on a step
function; the root it converges to is a pairwise difference ``x_i - y_j``, which
:func:`mann_whitney_shift_interval` finds exactly by counting, and the Hodges-Lehmann estimate is
the median of the pairwise differences (the zero of the same statistic).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scipy import stats

from monitoring.judge import VERDICT_BY_CODE, Verdict, VerdictCode

__all__ = [
    "ArgoAnalysisTemplate",
    "ArgoMetric",
    "ArgoThresholdJudge",
    "KayentaConfig",
    "KayentaMannWhitneyJudge",
    "KayentaMetric",
    "MetricClass",
    "PeerMetricResult",
    "PeerResult",
    "histogram_quantile",
    "mann_whitney_shift_interval",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# --- PromQL histogram_quantile -------------------------------------------------------------------


def histogram_quantile(
    q: float, upper_bounds: Sequence[float] | FloatArray, bucket_counts: npt.ArrayLike
) -> FloatArray:
    """PromQL's ``histogram_quantile`` on per-bucket (non-cumulative) counts, batched.

    Follows Prometheus' ``bucketQuantile``: find the bucket where rank ``q * total`` falls and
    interpolate linearly inside it, the first bucket starting at 0; a rank in the ``+Inf`` bucket
    returns the largest finite bound; an empty histogram returns NaN.

    Args:
        q: Quantile in [0, 1].
        upper_bounds: Finite bucket upper bounds ``le``, increasing (the ``+Inf`` bucket implied).
        bucket_counts: Counts per bucket, shape ``(..., len(upper_bounds) + 1)``, the last
            being the ``+Inf`` bucket.

    Returns:
        The quantile per histogram.
    """
    bounds = np.asarray(upper_bounds, dtype=np.float64)
    counts = np.asarray(bucket_counts, dtype=np.float64)
    if counts.shape[-1] != bounds.size + 1:
        raise ValueError(
            f"bucket_counts needs {bounds.size + 1} buckets (the last is +Inf), got "
            f"{counts.shape[-1]}"
        )
    cumulative = np.cumsum(counts, axis=-1)
    total = cumulative[..., -1]
    rank = q * total
    b = (cumulative < rank[..., None]).sum(axis=-1)
    b_finite = np.minimum(b, bounds.size - 1)
    upper = bounds[b_finite]
    lower = np.where(b_finite > 0, bounds[np.maximum(b_finite - 1, 0)], 0.0)
    below = np.where(
        b_finite > 0,
        np.take_along_axis(cumulative, np.maximum(b_finite - 1, 0)[..., None], axis=-1)[..., 0],
        0.0,
    )
    in_bucket = np.take_along_axis(counts, b_finite[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        inside = lower + (upper - lower) * (rank - below) / in_bucket
    value = np.where(b >= bounds.size, bounds[-1], inside)
    return np.where(total > 0, value, np.nan)


# --- results ------------------------------------------------------------------------------------


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


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


# --- Argo Rollouts -------------------------------------------------------------------------------

_CONDITION = re.compile(r"^\s*result(?:\[0\])?\s*(<=|>=|==|!=|<|>)\s*([-+0-9.eE]+)\s*$")
_OPS = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


def _parse_condition(text: str) -> tuple[str, float]:
    match = _CONDITION.match(text)
    if match is None:
        raise ValueError(
            f"condition {text!r} is not of the form 'result <op> <number>' "
            "(op one of <, <=, >, >=, ==, !=; 'result[0]' also accepted)"
        )
    return match.group(1), float(match.group(2))


class ArgoMetric(BaseModel):
    """One metric of an Argo ``AnalysisTemplate``.

    Attributes:
        name: Metric name (also the key of its query result).
        success_condition: ``successCondition``, e.g. ``"result < 0.02"``.
        failure_condition: ``failureCondition``, or ``None``.
        failure_limit: ``failureLimit``: failed measurements tolerated (default 0, as Argo).
        inconclusive_limit: ``inconclusiveLimit`` (default 0, as Argo).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    success_condition: str | None = None
    failure_condition: str | None = None
    failure_limit: int = Field(0, ge=0)
    inconclusive_limit: int = Field(0, ge=0)

    @field_validator("success_condition", "failure_condition")
    @classmethod
    def _parsable(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_condition(value)
        return value

    def phase(self, result: FloatArray) -> IntArray:
        """Argo's ``EvaluateResult``: the phase of a measurement, elementwise."""
        shape = np.shape(result)
        success = np.zeros(shape, dtype=bool)
        failure = np.zeros(shape, dtype=bool)
        if self.success_condition is None and self.failure_condition is None:
            return np.full(shape, _Phase.SUCCESSFUL, dtype=np.int64)
        if self.success_condition is not None:
            op, value = _parse_condition(self.success_condition)
            with np.errstate(invalid="ignore"):
                success = np.asarray(_OPS[op](result, value))  # NaN compares false, as in expr
        if self.failure_condition is not None:
            op, value = _parse_condition(self.failure_condition)
            with np.errstate(invalid="ignore"):
                failure = np.asarray(_OPS[op](result, value))
        if self.failure_condition is None:
            failure = ~success
        if self.success_condition is None:
            success = ~failure
        phase = np.full(shape, _Phase.SUCCESSFUL, dtype=np.int64)
        phase[~failure & ~success] = _Phase.INCONCLUSIVE
        phase[failure] = _Phase.FAILED
        return phase


class ArgoAnalysisTemplate(BaseModel):
    """An ``AnalysisTemplate``: metrics measured once per window, ``count`` times.

    Attributes:
        metrics: The metrics, each with its conditions and limits.
        count: Measurements per metric before the analysis succeeds (``count``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    metrics: tuple[ArgoMetric, ...] = Field(min_length=1)
    count: int = Field(ge=1)

    @model_validator(mode="after")
    def _unique_names(self) -> ArgoAnalysisTemplate:
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"metric names must be unique, got {names}")
        return self


class _Phase(IntEnum):
    SUCCESSFUL = 0
    FAILED = 1
    INCONCLUSIVE = 2


@dataclass
class _ArgoState:
    measurements: int
    failed: dict[str, IntArray]
    inconclusive: dict[str, IntArray]
    done: npt.NDArray[np.bool_]
    verdict: IntArray


class ArgoThresholdJudge:
    """An Argo Rollouts ``AnalysisRun`` (or a batch of them): one measurement per window.

    Stateful, as an AnalysisRun is: create one per canary (or one per batch), then call
    :meth:`measure` (or :meth:`measure_batch`) once per window with the interval's query results.

    Args:
        template: The analysis template.
        batch_size: Number of independent runs measured together.
    """

    def __init__(self, template: ArgoAnalysisTemplate, *, batch_size: int = 1) -> None:
        self.template = template
        self.batch_size = batch_size
        self._state = self._fresh_state()

    def _fresh_state(self) -> _ArgoState:
        size = self.batch_size
        names = [m.name for m in self.template.metrics]
        return _ArgoState(
            measurements=0,
            failed={n: np.zeros(size, dtype=np.int64) for n in names},
            inconclusive={n: np.zeros(size, dtype=np.int64) for n in names},
            done=np.zeros(size, dtype=bool),
            verdict=np.full(size, VerdictCode.CONTINUE, dtype=np.int64),
        )

    def reset(self) -> None:
        """Start a new analysis run."""
        self._state = self._fresh_state()

    def measure_batch(self, results: Mapping[str, npt.ArrayLike]) -> IntArray:
        """Record one measurement per metric for every run; return verdict codes.

        Runs that already finished keep their verdict (a finished AnalysisRun takes no more
        measurements).

        Args:
            results: Query result per metric name, one value per run.

        Returns:
            :class:`~monitoring.judge.VerdictCode` per run.
        """
        state = self._state
        state.measurements += 1
        live = ~state.done
        failed_any = np.zeros(self.batch_size, dtype=bool)
        inconclusive_any = np.zeros(self.batch_size, dtype=bool)
        for metric in self.template.metrics:
            if metric.name not in results:
                raise KeyError(f"no query result for metric {metric.name!r}")
            value = np.broadcast_to(
                np.asarray(results[metric.name], dtype=np.float64), (self.batch_size,)
            )
            phase = metric.phase(value)
            state.failed[metric.name] += (phase == _Phase.FAILED) & live
            state.inconclusive[metric.name] += (phase == _Phase.INCONCLUSIVE) & live
            over_failed = state.failed[metric.name] > metric.failure_limit
            over_inconclusive = state.inconclusive[metric.name] > metric.inconclusive_limit
            # analysis.go checks failure first, then lets inconclusive override it.
            inconclusive_any |= over_inconclusive
            failed_any |= over_failed & ~over_inconclusive
        verdict = np.full(self.batch_size, VerdictCode.CONTINUE, dtype=np.int64)
        if state.measurements >= self.template.count:
            verdict[:] = VerdictCode.PROMOTE
        verdict[inconclusive_any] = VerdictCode.INCONCLUSIVE
        verdict[failed_any] = VerdictCode.ROLLBACK
        state.verdict = np.where(live, verdict, state.verdict)
        state.done |= state.verdict != VerdictCode.CONTINUE
        return state.verdict.copy()

    def measure(self, results: Mapping[str, float]) -> PeerResult:
        """Record one measurement per metric for a single run and explain the outcome.

        Args:
            results: The interval's query result per metric name.

        Returns:
            The verdict and, per metric, the value, its condition and the failure count.
        """
        if self.batch_size != 1:
            raise ValueError("measure() is for a single run; use measure_batch() for a batch")
        verdict = VERDICT_BY_CODE[int(self.measure_batch(results)[0])]
        metrics = []
        for metric in self.template.metrics:
            value = float(results[metric.name])
            phase = _Phase(int(metric.phase(np.array([value]))[0]))
            failed = int(self._state.failed[metric.name][0])
            condition = metric.success_condition or metric.failure_condition
            metrics.append(
                PeerMetricResult(
                    name=metric.name,
                    outcome=phase.name.capitalize(),
                    failed=phase == _Phase.FAILED,
                    value=_finite(value),
                    threshold=_parse_condition(condition)[1] if condition else None,
                    reason=f"measurement {phase.name.lower()} ({condition or 'no condition'}); "
                    f"failed {failed} of {self._state.measurements}, "
                    f"failureLimit {metric.failure_limit}",
                )
            )
        return PeerResult(
            verdict=verdict,
            window=self._state.measurements,
            score=None,
            metrics=tuple(metrics),
            reason=_argo_reason(verdict, self._state.measurements, self.template.count),
        )


def _argo_reason(verdict: Verdict, measurements: int, count: int) -> str:
    return {
        Verdict.ROLLBACK: "analysis Failed: a metric's failed measurements exceed failureLimit",
        Verdict.INCONCLUSIVE: "analysis Inconclusive: inconclusive measurements exceed the limit",
        Verdict.PROMOTE: f"analysis Successful: count ({count}) reached",
        Verdict.CONTINUE: f"analysis Running: {measurements} of {count} measurements",
    }[verdict]


# --- Kayenta / NetflixACAJudge -------------------------------------------------------------------


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


def _apache_percentile(sorted_values: FloatArray, count: IntArray, p: float) -> FloatArray:
    """Apache Commons Math ``StatUtils.percentile`` (legacy estimator) on NaN-padded sorted rows."""
    n = count.astype(np.float64)
    pos = p * (n + 1.0) / 100.0
    floor = np.floor(pos)
    d = pos - floor
    lo_idx = np.clip(floor.astype(np.int64) - 1, 0, None)
    hi_idx = np.minimum(floor.astype(np.int64), np.maximum(count - 1, 0))
    lo_idx = np.minimum(lo_idx, np.maximum(count - 1, 0))
    lo = np.take_along_axis(sorted_values, lo_idx[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(sorted_values, hi_idx[..., None], axis=-1)[..., 0]
    first = sorted_values[..., 0]
    last = np.take_along_axis(sorted_values, np.maximum(count - 1, 0)[..., None], axis=-1)[..., 0]
    value = lo + d * (hi - lo)
    value = np.where(pos < 1.0, first, value)
    return np.where(pos >= n, last, value)


def _clean(values: FloatArray) -> FloatArray:
    """NaN removal and ``IQRDetector(factor=3.0, reduceSensitivity=true)`` outlier removal.

    Removed points become NaN (rows keep their length). With fewer than 99 points the 1st and
    99th percentiles are the minimum and maximum, so nothing is ever removed.
    """
    ordered = np.sort(values, axis=-1)
    count = np.isfinite(values).sum(axis=-1)
    p25 = _apache_percentile(ordered, count, 25.0)
    p75 = _apache_percentile(ordered, count, 75.0)
    p01 = _apache_percentile(ordered, count, 1.0)
    p99 = _apache_percentile(ordered, count, 99.0)
    iqr = p75 - p25
    lower = np.minimum(p01, p25 - 3.0 * iqr)
    upper = np.maximum(p99, p75 + 3.0 * iqr)
    keep = (values >= lower[..., None]) & (values <= upper[..., None])
    return np.where(keep, values, np.nan)


def _tie_term(values: FloatArray) -> FloatArray:
    """Sum of ``t**3 - t`` over groups of tied values in each row (NaNs ignored)."""
    equal = values[..., :, None] == values[..., None, :]  # NaN never equals anything
    t = equal.sum(axis=-1).astype(np.float64)
    valid = np.isfinite(values)
    return np.asarray(np.where(valid, t * t - 1.0, 0.0).sum(axis=-1), dtype=np.float64)


def mann_whitney_shift_interval(
    experiment: npt.ArrayLike, control: npt.ArrayLike, *, confidence: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Kayenta's Mann-Whitney confidence interval and estimate of ``experiment - control``.

    The asymptotic interval of R's ``wilcox.test(conf.int = TRUE, correct = TRUE)`` as Kayenta
    ports it: the interval's ends are where the tie-corrected, continuity-corrected standardised
    rank-sum statistic of ``experiment - mu`` against ``control`` crosses ``+-z``. Between
    consecutive pairwise differences the statistic is constant, so each end is a pairwise
    difference, found by counting. Rows are independent problems; NaN marks a missing point.

    Args:
        experiment: Canary values, shape ``(batch, n)`` (NaN-padded).
        control: Baseline values, shape ``(batch, m)`` (NaN-padded).
        confidence: Two-sided confidence level.

    Returns:
        ``(lower, upper, estimate)`` per row; NaN where a sample is empty or all points tie.
    """
    x = np.atleast_2d(np.asarray(experiment, dtype=np.float64))
    y = np.atleast_2d(np.asarray(control, dtype=np.float64))
    nx = np.isfinite(x).sum(axis=-1).astype(np.float64)
    ny = np.isfinite(y).sum(axis=-1).astype(np.float64)
    diffs = (x[:, :, None] - y[:, None, :]).reshape(x.shape[0], -1)
    diffs = np.sort(diffs, axis=-1)  # NaNs last
    m = nx * ny
    big_n = nx + ny
    ties = _tie_term(x) + _tie_term(y)
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = (nx * ny / 12.0) * ((big_n + 1.0) - ties / (big_n * (big_n - 1.0)))
        sigma = np.sqrt(variance)
    z = stats.norm.isf((1.0 - confidence) / 2.0)

    def root(c: FloatArray) -> FloatArray:
        # Smallest j (pairs at or below mu) where (dz - 0.5 sign dz) <= c, dz = m/2 - j.
        half = m / 2.0
        j1 = np.maximum(0.0, np.ceil(half - 0.5 - c - 1e-9))
        cand1 = np.where(j1 < half, j1, np.inf)
        even = np.mod(m, 2.0) == 0
        cand2 = np.where(even & (c >= 0), half, np.inf)
        j3 = np.maximum(np.ceil(half + 0.5 - c - 1e-9), np.floor(half) + 1.0)
        cand3 = np.where(j3 <= m, j3, np.inf)
        j = np.minimum(np.minimum(cand1, cand2), cand3)
        j = np.where(np.isfinite(j), j, m)  # never crosses: muMax
        index = np.clip(np.maximum(j, 1.0) - 1.0, 0, np.maximum(m - 1.0, 0)).astype(np.int64)
        return np.take_along_axis(diffs, index[:, None], axis=-1)[:, 0]

    ok = (nx > 0) & (ny > 0) & (sigma > 0)
    lower = np.where(ok, root(z * sigma), np.nan)
    upper = np.where(ok, root(-z * sigma), np.nan)
    # Hodges-Lehmann: the median of the m valid (sorted, NaN-last) pairwise differences.
    m_int = np.maximum(m, 1.0).astype(np.int64)
    below = np.take_along_axis(diffs, ((m_int - 1) // 2)[:, None], axis=-1)[:, 0]
    above = np.take_along_axis(diffs, (m_int // 2)[:, None], axis=-1)[:, 0]
    estimate = np.where(ok, (below + above) / 2.0, np.nan)
    return lower, upper, estimate


def _nanmean(values: FloatArray) -> FloatArray:
    count = np.isfinite(values).sum(axis=-1)
    total = np.where(np.isfinite(values), values, 0.0).sum(axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _classify(
    metric: KayentaMetric,
    experiment: FloatArray,
    control: FloatArray,
    config: KayentaConfig,
    rng: np.random.Generator,
) -> _Classification:
    """``MannWhitneyClassifier.classify`` for a batch of series pairs."""
    x = _clean(np.atleast_2d(np.asarray(experiment, dtype=np.float64)))
    y = _clean(np.atleast_2d(np.asarray(control, dtype=np.float64)))
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
    filled_x = np.where(np.isfinite(x), x, np.nan)
    filled_y = np.where(np.isfinite(y), y, np.nan)
    with np.errstate(invalid="ignore"):
        x_min = np.where(nodata, 0.0, np.nanmin(np.where(nodata[:, None], 0.0, filled_x), axis=-1))
        x_max = np.where(nodata, 0.0, np.nanmax(np.where(nodata[:, None], 0.0, filled_x), axis=-1))
        y_min = np.where(nodata, 0.0, np.nanmin(np.where(nodata[:, None], 0.0, filled_y), axis=-1))
        y_max = np.where(nodata, 0.0, np.nanmax(np.where(nodata[:, None], 0.0, filled_y), axis=-1))
    one_value = (x_min == x_max) & (y_min == y_max) & (x_min == y_min)

    # Both samples degenerate (one distinct value each): Kayenta adds N(0, (value * 1e-5)^2) noise.
    degenerate = (x_min == x_max) & (y_min == y_max) & ~one_value & ~nodata
    if np.any(degenerate):
        x_noise = rng.standard_normal(x.shape) * np.abs(x_min)[:, None] * 1e-5
        y_noise = rng.standard_normal(y.shape) * np.abs(y_min)[:, None] * 1e-5
        x = np.where(degenerate[:, None], x + x_noise, x)
        y = np.where(degenerate[:, None], y + y_noise, y)

    lower, upper, estimate = mann_whitney_shift_interval(x, y, confidence=config.confidence_level)
    mean_x, mean_y = _nanmean(x), _nanmean(y)
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
            estimate = _finite(float(r.estimate[0]))
            bound = None if estimate is None else self.config.tolerance * abs(estimate)
            lower, upper = _finite(float(r.lower[0])), _finite(float(r.upper[0]))
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
                    f"{_finite(float(r.ratio[0]))}, {self.config.confidence_level:.0%} interval "
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
