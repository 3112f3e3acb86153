"""The judges the simulation compares, each behind one interface: a verdict per window.

* :class:`OurBatchJudge` — our :class:`~monitoring.judge.CanaryJudge` on the evidence the
  controller reads from the inference log, acting through the controller's rules
  (:class:`ControllerPolicy`): no promotion before ``min_canary_seconds`` and
  ``min_canary_requests``, and the circuit breaker that rolls back without the judge.
* :class:`ArgoBatchJudge` and :class:`KayentaBatchJudge` — the peers, reading what their
  documentation's examples query: Argo the canary's error rate and p95 (``histogram_quantile``
  over Prometheus buckets) of the last window, Kayenta per-step series of the canary and of a
  canary-sized baseline share of the champion.

:func:`default_judges` configures all three as their documentation's examples do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from benchmarks.judge.argo import ArgoAnalysisTemplate, ArgoMetric, ArgoThresholdJudge
from benchmarks.judge.draws import bucket_probs
from benchmarks.judge.kayenta import KayentaConfig, KayentaMannWhitneyJudge, KayentaMetric
from benchmarks.judge.promql import histogram_quantile
from benchmarks.judge.scenarios import SimulationParams, Traffic
from benchmarks.judge.window_data import StepCounters, WindowData
from interfaces.metric_names import LATENCY_BUCKETS
from monitoring.judge import CanaryJudge, JudgeConfig, VerdictCode

__all__ = [
    "ArgoBatchJudge",
    "BatchJudge",
    "ControllerPolicy",
    "KayentaBatchJudge",
    "OurBatchJudge",
    "argo_judge",
    "argo_template",
    "champion_p95_as_prometheus_reports",
    "default_judges",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class BatchJudge(Protocol):
    """What the simulation needs of a judge: a fresh start, then one verdict per window."""

    name: str

    @property
    def max_windows(self) -> int:
        """Windows after which the judge has decided every canary it will."""
        ...

    def settings(self) -> dict[str, object]:
        """The judge's configuration, reported next to its figures."""
        ...

    def start(self, runs: int, traffic: Traffic) -> None:
        """Begin judging ``runs`` new canaries on traffic of this shape."""
        ...

    def judge_window(self, data: WindowData) -> IntArray:
        """Verdict codes (:class:`~monitoring.judge.VerdictCode`) after ``data.window``."""
        ...


def _rate(errors: IntArray, requests: IntArray) -> FloatArray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(requests > 0, errors / np.maximum(requests, 1), np.nan)


@dataclass(frozen=True)
class ControllerPolicy:
    """The controller's rules around the judge (``monitoring/settings.py`` defaults).

    Attributes:
        min_canary_windows: Windows before a promotion (``min_canary_seconds`` / window).
        min_canary_requests: Canary requests before a promotion.
        breaker_error_share: The circuit breaker trips when a window's canary error share is at
            least this, over at least ``breaker_min_requests`` requests.
        breaker_min_requests: The breaker's minimum sample.
    """

    min_canary_windows: int = 15
    min_canary_requests: int = 1000
    breaker_error_share: float = 0.5
    breaker_min_requests: int = 50


@dataclass
class OurBatchJudge:
    """Our :class:`~monitoring.judge.CanaryJudge` acting through the controller's rules."""

    config: JudgeConfig
    policy: ControllerPolicy = field(default_factory=ControllerPolicy)
    name: str = "ours"

    @property
    def max_windows(self) -> int:
        """The judge's hard cap."""
        return self.config.hard_max_windows

    def settings(self) -> dict[str, object]:
        """The judge config and the controller policy."""
        return {"judge": self.config.model_dump(mode="json"), "controller": asdict(self.policy)}

    def start(self, runs: int, traffic: Traffic) -> None:
        """Nothing to reset: the judge is a function of the cumulative evidence."""

    def judge_window(self, data: WindowData) -> IntArray:
        """Judge every canary, then apply the controller's promotion minimums and breaker."""
        verdict = CanaryJudge(self.config).decide(data.evidence, window=data.window).verdict
        early = (data.window < self.policy.min_canary_windows) | (
            data.canary_requests < self.policy.min_canary_requests
        )
        verdict = np.where((verdict == VerdictCode.PROMOTE) & early, VerdictCode.CONTINUE, verdict)
        tripped = (data.canary_window_requests >= self.policy.breaker_min_requests) & (
            data.canary_window_errors
            >= self.policy.breaker_error_share * data.canary_window_requests
        )
        return np.asarray(np.where(tripped, VerdictCode.ROLLBACK, verdict), dtype=np.int64)


@dataclass
class ArgoBatchJudge:
    """The Argo Rollouts peer; queries are the last window's canary error rate and p95."""

    template: ArgoAnalysisTemplate
    name: str = "argo"
    calibrate: Callable[[Traffic], ArgoAnalysisTemplate] | None = None
    _judge: ArgoThresholdJudge | None = field(default=None, init=False, repr=False)

    @property
    def max_windows(self) -> int:
        """The AnalysisRun's ``count``."""
        return self.template.count or 1

    def settings(self) -> dict[str, object]:
        """The AnalysisTemplate, plus what each query computes."""
        return {
            "analysis_template": self.template.model_dump(mode="json"),
            "interval": "1 window (measured at the end of each window)",
            "queries": {
                "error-rate": "canary errors / canary requests over the last window",
                "latency-p95": "histogram_quantile(0.95) of the canary's last-window buckets",
            },
        }

    def start(self, runs: int, traffic: Traffic) -> None:
        """A new AnalysisRun per canary, thresholds set from this service's dashboard."""
        template = self.template if self.calibrate is None else self.calibrate(traffic)
        self._judge = ArgoThresholdJudge(template, batch_size=runs)

    def judge_window(self, data: WindowData) -> IntArray:
        """Measure the last window's canary error rate and p95 latency."""
        if self._judge is None or data.last_canary_steps is None:
            raise RuntimeError("call start() before judge_window(), within the peers' windows")
        steps = data.last_canary_steps
        requests = steps.requests.sum(axis=1)
        buckets = steps.latency_buckets.sum(axis=1)
        return self._judge.measure_batch(
            {
                "error-rate": _rate(steps.errors.sum(axis=1), requests),
                "latency-p95": histogram_quantile(0.95, data.latency_buckets, buckets),
            }
        )


@dataclass
class KayentaBatchJudge:
    """The Kayenta peer; time series are per-step error rate and p95 for canary and baseline."""

    config: KayentaConfig
    lookback_windows: int
    seed: int = 0
    name: str = "kayenta"
    _judge: KayentaMannWhitneyJudge | None = field(default=None, init=False, repr=False)

    @property
    def max_windows(self) -> int:
        """The canary analysis' intervals."""
        return self.config.intervals

    def settings(self) -> dict[str, object]:
        """The canary config, thresholds and lookback."""
        return {
            "canary_config": self.config.model_dump(mode="json"),
            "interval": "1 window",
            "lookback": f"{self.lookback_windows} window(s)",
            "series": {
                "error_rate": "errors / requests per step",
                "latency_p95": "histogram_quantile(0.95) of each step's buckets",
            },
            "baseline": "a canary-sized random share of the champion's traffic",
        }

    def start(self, runs: int, traffic: Traffic) -> None:
        """Kayenta judges each interval afresh."""
        self._judge = KayentaMannWhitneyJudge(self.config, seed=self.seed)

    def judge_window(self, data: WindowData) -> IntArray:
        """Score this interval's series."""
        if self._judge is None or data.canary_steps is None or data.baseline_steps is None:
            raise RuntimeError("call start() before judge_window(), within the peers' windows")

        def series(steps: StepCounters) -> dict[str, FloatArray]:
            return {
                "error_rate": _rate(steps.errors, steps.requests),
                "latency_p95": histogram_quantile(
                    0.95, data.latency_buckets, steps.latency_buckets
                ),
            }

        return self._judge.judge_batch(
            series(data.canary_steps), series(data.baseline_steps), interval=data.window
        )


def champion_p95_as_prometheus_reports(
    traffic: Traffic, buckets: Sequence[float] = LATENCY_BUCKETS
) -> float:
    """The champion's steady-state p95 latency as ``histogram_quantile`` computes it.

    An Argo user sets a latency threshold from the dashboard, which shows this value, not the true
    quantile (bucket interpolation moves it).
    """
    probs = bucket_probs(
        buckets, np.array([math.log(traffic.latency_median_s)]), traffic.latency_log_sd
    )
    return float(histogram_quantile(0.95, buckets, probs)[0])


def argo_template(
    traffic: Traffic, params: SimulationParams, *, failure_limit: int = 3
) -> ArgoAnalysisTemplate:
    """The Argo AnalysisTemplate a team would write for a service with this traffic.

    Error rate below twice the champion's (at least 0.5 %), p95 below 1.2 times the champion's
    p95 as the dashboard shows it (the same 1.2 our judge uses as its promotion margin).
    """
    error_limit = round(max(2.0 * traffic.base_error_rate, 0.005), 4)
    p95 = champion_p95_as_prometheus_reports(traffic, params.latency_buckets)
    return ArgoAnalysisTemplate(
        metrics=(
            ArgoMetric(
                name="error-rate",
                success_condition=f"result < {error_limit}",
                failure_limit=failure_limit,
            ),
            ArgoMetric(
                name="latency-p95",
                success_condition=f"result < {round(1.2 * p95, 4)}",
                failure_limit=failure_limit,
            ),
        ),
        count=params.peer_windows,
    )


def argo_judge(
    params: SimulationParams, *, failure_limit: int = 3, name: str = "argo"
) -> ArgoBatchJudge:
    """The Argo peer, its thresholds set per scenario from that service's dashboard."""
    return ArgoBatchJudge(
        argo_template(Traffic(), params, failure_limit=failure_limit),
        name=name,
        calibrate=lambda traffic: argo_template(traffic, params, failure_limit=failure_limit),
    )


def default_judges(params: SimulationParams) -> list[BatchJudge]:
    """Our judge and the two peers, configured as their documentation's examples are.

    * Ours: :class:`~monitoring.judge.JudgeConfig` defaults, acting through the controller's
      default promotion minimums (15 one-minute windows, 1,000 canary requests) and breaker.
    * Argo: the docs' example ``failureLimit: 3`` and :func:`argo_template`'s thresholds, set
      from each scenario's own champion; ``count`` = ``peer_windows``.
    * Kayenta: ``NetflixACAJudge`` defaults (98 % Mann-Whitney, tolerance 0.25, effect size 1),
      both metrics with ``direction: increase``, score thresholds marginal 75 / pass 95 (the
      docs' example), one interval per window.
    """
    ours = OurBatchJudge(JudgeConfig())
    argo = argo_judge(params)
    kayenta = KayentaBatchJudge(
        KayentaConfig(
            metrics=(
                KayentaMetric(name="error_rate", direction="increase"),
                KayentaMetric(name="latency_p95", direction="increase"),
            ),
            intervals=params.peer_windows,
        ),
        lookback_windows=params.kayenta_lookback_windows,
        seed=params.seed,
    )
    return [ours, argo, kayenta]
