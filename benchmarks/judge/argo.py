"""The Argo Rollouts peer judge, implemented from its documentation and source.

It gives verdicts in our vocabulary (:class:`~monitoring.judge.Verdict`), explains a single run
in its own terms (:class:`~benchmarks.judge.peer_result.PeerResult`), and has a batch form that
the simulation drives over thousands of canaries at once
(:class:`benchmarks.judge.batch_judges.ArgoBatchJudge`). It is not tuned to look bad: the
settings are the ones its documentation's examples use
(:func:`benchmarks.judge.batch_judges.default_judges`), reported next to every figure.

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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from benchmarks.judge.peer_result import PeerMetricResult, PeerResult, finite_or_none
from monitoring.judge import VERDICT_BY_CODE, Verdict, VerdictCode

__all__ = ["ArgoAnalysisTemplate", "ArgoMetric", "ArgoThresholdJudge"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

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
                    value=finite_or_none(value),
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
