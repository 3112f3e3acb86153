"""A seeded simulator of canary traffic, and the loop that checks every judge after every window.

The traffic is built the way production traffic is, from **clients** (routing keys):

* each window's requests are split among ``clients`` by their traffic shares (equal, or Zipf for
  a B2B shape where a few customers carry most requests), and within a client among the traffic
  **slices** (segments);
* routing is **sticky**: a client goes to the canary when its routing hash is below the canary
  weight of that window, so it stays on one variant unless the weight ramps past it;
* clients may differ (``client_error_sd``: their error rates on the log-odds scale,
  ``client_latency_sd``: their latency on the log scale) — correlated requests;
* per request: a server error (Bernoulli), a log-normal latency (with an optional share of
  canary requests delayed by a fixed amount: a tail-only regression), and a score from the
  binormal model (AUC exactly ``Phi(mu / sqrt 2)``) whose label arrives after one of
  ``label_lags`` windows for a share ``label_fraction`` of requests;
* the platform may move under both variants alike: per-window load shocks, and trends in
  latency, error rate and the input mix (a drift during a ramp).

Our judge sees what the controller reads from the inference log: per (stratum, variant,
routing-key group, slice) counts and sums, added window by window into the judge's evidence
(:mod:`monitoring.evidence`) — the same arithmetic the controller does. Then it acts through the
controller's rules (:class:`ControllerPolicy`): no promotion before ``min_canary_seconds`` and
``min_canary_requests``, and the circuit breaker that rolls back without the judge.

The peers see what their documentation's examples query: Argo the canary's error rate and p95
(``histogram_quantile`` over Prometheus buckets) of the last window, Kayenta per-step series of
the canary and of a canary-sized baseline share of the champion.

Every judge runs after every window until its first terminal verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from monitoring.evidence import (
    TAIL_QUANTILE,
    CanaryEvidence,
    MeanEvidence,
    ScoreEvidence,
    stratum_evidence,
)
from monitoring.judge import CanaryJudge, JudgeConfig, VerdictCode
from monitoring.peers import (
    ArgoAnalysisTemplate,
    ArgoMetric,
    ArgoThresholdJudge,
    KayentaConfig,
    KayentaMannWhitneyJudge,
    KayentaMetric,
    histogram_quantile,
)

__all__ = [
    "DEFAULT_SCENARIOS",
    "ArgoBatchJudge",
    "BatchJudge",
    "ControllerPolicy",
    "JudgeOutcome",
    "KayentaBatchJudge",
    "OurBatchJudge",
    "Scenario",
    "SimulationParams",
    "StepCounters",
    "Traffic",
    "argo_judge",
    "argo_template",
    "WindowData",
    "champion_p95_as_prometheus_reports",
    "default_judges",
    "run_simulation",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Mirrors serving/metrics.py::LATENCY_BUCKETS and ::PROBABILITY_BUCKETS, so the peers' simulated
# histograms have the resolution the real ones have.
SERVING_LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
SERVING_PROBABILITY_BUCKETS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 21))

# Spread of log latency of requests delayed by a fixed amount (the tail regression).
_DELAYED_LOG_SD = 0.1


@dataclass(frozen=True)
class Traffic:
    """The shape of the traffic a canary sees.

    Attributes:
        requests_per_window: Requests per window, both variants together.
        canary_weight: The canary's share per window; the last value holds afterwards (a ramp).
        clients: Routing keys sending the traffic.
        client_zipf: 0 for equal shares; ``s`` for shares proportional to ``rank**-s``.
        client_error_sd: Spread of the clients' error rates, log-odds scale.
        client_latency_sd: Spread of the clients' median latencies, log scale.
        slices: Traffic share of each slice (segment), summing to 1.
        base_error_rate: The champion's server-side error rate.
        latency_median_s: The champion's median latency, seconds.
        latency_log_sd: Spread of log latency within a client.
        default_rate: Share of positive labels.
        champion_auc: The champion model's AUC under the binormal model.
        label_fraction: Share of requests whose label ever arrives.
        label_lags: Windows after which labels arrive, spread evenly over these lags.
    """

    requests_per_window: int = 2000
    canary_weight: tuple[float, ...] = (0.2,)
    clients: int = 300
    client_zipf: float = 0.0
    client_error_sd: float = 0.0
    client_latency_sd: float = 0.0
    slices: tuple[float, ...] = (0.6, 0.3, 0.1)
    base_error_rate: float = 0.01
    latency_median_s: float = 0.04
    latency_log_sd: float = 0.5
    default_rate: float = 0.1
    champion_auc: float = 0.78
    label_fraction: float = 0.3
    label_lags: tuple[int, ...] = (3,)

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (self.requests_per_window >= 10, "requests_per_window must be >= 10"),
            (
                len(self.canary_weight) >= 1 and all(0 < w <= 0.5 for w in self.canary_weight),
                "canary_weight values must be in (0, 0.5]",
            ),
            (self.clients >= 2, "clients must be >= 2"),
            (self.client_zipf >= 0, "client_zipf must be >= 0"),
            (len(self.slices) >= 1 and abs(sum(self.slices) - 1) < 1e-9, "slices must sum to 1"),
            (0 <= self.base_error_rate < 1, "base_error_rate must be in [0, 1)"),
            (self.latency_median_s > 0 and self.latency_log_sd > 0, "latency must be > 0"),
            (0 < self.default_rate < 1, "default_rate must be in (0, 1)"),
            (0.5 < self.champion_auc < 1, "champion_auc must be in (0.5, 1)"),
            (0 < self.label_fraction <= 1, "label_fraction must be in (0, 1]"),
            (len(self.label_lags) >= 1 and min(self.label_lags) >= 0, "label_lags must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"traffic: {message}")

    def weight(self, window: int) -> float:
        """The canary weight during window ``window`` (1-based)."""
        return self.canary_weight[min(window, len(self.canary_weight)) - 1]

    def shares(self) -> FloatArray:
        """Each client's share of the requests."""
        ranks = np.arange(1, self.clients + 1, dtype=np.float64)
        raw = ranks ** (-self.client_zipf)
        return np.asarray(raw / raw.sum(), dtype=np.float64)


@dataclass(frozen=True)
class Scenario:
    """What the canary does differently, and the traffic it meets.

    Attributes:
        name: Short label used in reports.
        regression: Whether rolling back is the right answer.
        traffic: The traffic's shape.
        error_rate_increase: Added to the canary's error rate on every request.
        latency_ratio: Multiplies every canary latency.
        tail_share: Share of canary requests delayed by ``tail_delay_s``.
        tail_delay_s: The delay added to those requests.
        auc_change: Added to the canary model's AUC.
        slice_index: The slice that ``slice_*`` changes hit.
        slice_error_increase: Added to the canary's error rate in that slice only.
        slice_auc_change: Added to the canary's AUC in that slice only.
        load_latency_sd: Per-window shock to log latency, both variants (platform load).
        load_error_sd: Per-window shock to log error rate, both variants.
        drift_latency: Per-window trend of log latency, both variants.
        drift_error: Per-window trend of log error rate, both variants.
        drift_inputs: Per-window trend of the positives' log-odds (the input mix), both variants.
        extra: Reported, but not one of the benchmark's goals.
    """

    name: str
    regression: bool = False
    traffic: Traffic = field(default_factory=Traffic)
    error_rate_increase: float = 0.0
    latency_ratio: float = 1.0
    tail_share: float = 0.0
    tail_delay_s: float = 0.0
    auc_change: float = 0.0
    slice_index: int = -1
    slice_error_increase: float = 0.0
    slice_auc_change: float = 0.0
    load_latency_sd: float = 0.0
    load_error_sd: float = 0.0
    drift_latency: float = 0.0
    drift_error: float = 0.0
    drift_inputs: float = 0.0
    extra: bool = False

    def __post_init__(self) -> None:
        for auc in (
            self.traffic.champion_auc + self.auc_change,
            self.traffic.champion_auc + self.auc_change + self.slice_auc_change,
        ):
            if not 0.5 < auc < 1:
                raise ValueError(f"scenario {self.name!r}: canary AUC {auc} not in (0.5, 1)")


_CLUSTERED = Traffic(clients=300, client_zipf=1.0, client_error_sd=1.0, client_latency_sd=0.5)

DEFAULT_SCENARIOS: tuple[Scenario, ...] = (
    # Healthy canaries: a rollback or a pause is a false alarm.
    Scenario("null"),
    Scenario("null heavy-tailed latency", traffic=Traffic(latency_log_sd=1.5)),
    Scenario("null clustered clients", traffic=_CLUSTERED),
    Scenario(
        "null ramp under shared drift",
        traffic=Traffic(canary_weight=(0.05,) * 5 + (0.2,) * 5 + (0.5,)),
        drift_latency=0.02,
        drift_error=0.03,
        drift_inputs=0.02,
    ),
    Scenario("null low traffic", traffic=Traffic(requests_per_window=450)),
    Scenario("null zero-error champion", traffic=Traffic(base_error_rate=0.0)),
    Scenario(
        "null delayed partial labels", traffic=Traffic(label_fraction=0.1, label_lags=(2, 6, 12))
    ),
    Scenario("null+load", load_latency_sd=0.15, load_error_sd=0.3),
    # Regressions: a rollback is the right answer.
    Scenario("error+1pt", regression=True, error_rate_increase=0.01),
    Scenario("error+3pt", regression=True, error_rate_increase=0.03),
    Scenario("latency x1.5", regression=True, latency_ratio=1.5),
    Scenario(
        "tail-only: 3% of requests +300 ms", regression=True, tail_share=0.03, tail_delay_s=0.3
    ),
    Scenario(
        "slice-only: +3 pt errors on a 10% slice",
        regression=True,
        slice_index=2,
        slice_error_increase=0.03,
    ),
    Scenario(
        "zero-error champion: canary +0.3 pt",
        regression=True,
        traffic=Traffic(base_error_rate=0.0),
        error_rate_increase=0.003,
    ),
    Scenario(
        "error+1pt clustered clients",
        regression=True,
        traffic=_CLUSTERED,
        error_rate_increase=0.01,
        extra=True,
    ),
    Scenario("quality -0.02 AUC", regression=True, auc_change=-0.02, extra=True),
    Scenario("quality -0.10 AUC", regression=True, auc_change=-0.10, extra=True),
    Scenario(
        "slice-only: -0.15 AUC on a 10% slice",
        regression=True,
        slice_index=2,
        slice_auc_change=-0.15,
        extra=True,
    ),
)


@dataclass(frozen=True)
class SimulationParams:
    """The simulation's size, seed and scenarios.

    Attributes:
        seed: Seed of the random generator (same seed, same figures).
        runs: Simulated canaries per scenario.
        windows: Windows per canary; at least the judge's hard cap, so that ours can finish.
        clusters: Routing-key groups the inference log records (a hash of the routing key).
        steps_per_window: Time-series points per window (the Kayenta peer's ``step``).
        latency_buckets: Latency histogram upper bounds (seconds), for the peers.
        score_buckets: Score histogram upper bounds (probability), the last being 1.
        kayenta_lookback_windows: Windows of data each Kayenta interval judges.
        peer_windows: Windows the peers' analyses run (Argo ``count``, Kayenta intervals).
        baseline_windows: Windows of champion-only traffic before the canary that our judge
            uses as its baseline (difference in differences); 0 for none.
        scenarios: The scenarios to run.
    """

    seed: int = 20240917
    runs: int = 1000
    windows: int = 300
    clusters: int = 256
    steps_per_window: int = 10
    latency_buckets: tuple[float, ...] = SERVING_LATENCY_BUCKETS
    score_buckets: tuple[float, ...] = SERVING_PROBABILITY_BUCKETS
    kayenta_lookback_windows: int = 1
    peer_windows: int = 30
    baseline_windows: int = 600
    scenarios: tuple[Scenario, ...] = DEFAULT_SCENARIOS

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (self.runs >= 1, "runs must be >= 1"),
            (self.windows >= 1, "windows must be >= 1"),
            (self.clusters >= 1, "clusters must be >= 1"),
            (self.steps_per_window >= 1, "steps_per_window must be >= 1"),
            (self.kayenta_lookback_windows >= 1, "kayenta_lookback_windows must be >= 1"),
            (1 <= self.peer_windows <= self.windows, "peer_windows must be in [1, windows]"),
            (self.baseline_windows >= 0, "baseline_windows must be >= 0"),
            (len(self.scenarios) >= 1, "scenarios must not be empty"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> dict[str, object]:
        """The parameters as JSON-ready values."""
        return asdict(self)


# --- the data a judge may read after one window --------------------------------------------------


@dataclass(frozen=True)
class StepCounters:
    """Per-step counters of one variant in one window, shape ``(runs, steps[, buckets])``."""

    requests: IntArray
    errors: IntArray
    latency_buckets: IntArray


@dataclass(frozen=True)
class WindowData:
    """Everything observable after window ``window`` (1-based), for every simulated canary.

    Attributes:
        window: The window just closed.
        evidence: Our judge's cumulative evidence (what the controller reads from the log).
        canary_requests: The canary's requests so far (the controller's promotion minimum).
        canary_window_requests: The canary's requests in this window (the circuit breaker).
        canary_window_errors: Its server errors in this window.
        last_canary_steps: The canary's per-step counters in this window (Argo's input), or
            ``None`` once the peers have finished.
        canary_steps: The canary's per-step counters over the lookback (Kayenta's input).
        baseline_steps: The canary-sized baseline's per-step counters over the lookback.
        latency_buckets: Upper bounds of the latency histogram buckets.
    """

    window: int
    evidence: CanaryEvidence
    canary_requests: FloatArray
    canary_window_requests: FloatArray
    canary_window_errors: FloatArray
    last_canary_steps: StepCounters | None
    canary_steps: StepCounters | None
    baseline_steps: StepCounters | None
    latency_buckets: tuple[float, ...]


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


# --- the generator -------------------------------------------------------------------------------


def _multinomial(rng: np.random.Generator, n: IntArray, probs: FloatArray) -> IntArray:
    """Multinomial counts with per-element probabilities, by conditional binomials."""
    k = probs.shape[-1]
    probs = np.broadcast_to(probs, (*n.shape, k))
    out = np.zeros((*n.shape, k), dtype=np.int64)
    live = [j for j in range(k) if np.any(probs[..., j] >= 1e-9)]
    remaining = n.astype(np.int64).copy()
    mass_left = np.ones(n.shape)
    for j in live[:-1]:
        p = np.clip(probs[..., j] / np.maximum(mass_left, 1e-300), 0.0, 1.0)
        counts = rng.binomial(remaining, p)
        out[..., j] = counts
        remaining -= counts
        mass_left = mass_left - probs[..., j]
    out[..., live[-1]] = remaining
    return out


def _bucket_probs(bounds: Sequence[float], log_median: FloatArray, sd: float) -> FloatArray:
    """P(latency in each bucket) for log-normal latencies; the last bucket is ``+Inf``."""
    edges = np.log(np.asarray(bounds, dtype=np.float64))
    cdf = special.ndtr((edges - log_median[..., None]) / sd)
    pad = np.zeros((*cdf.shape[:-1], 1))
    return np.diff(np.concatenate([pad, cdf, pad + 1.0], axis=-1), axis=-1)


def _separation(auc: float) -> float:
    """Binormal mean separation ``mu`` with ``Phi(mu / sqrt 2) = auc``."""
    return float(math.sqrt(2.0) * stats.norm.ppf(auc))


def _score_bucket_probs(
    upper_bounds: Sequence[float], mu: float, default_rate: float, shift: float
) -> FloatArray:
    """P(served score in each bucket), buckets starting at 0.

    The model is calibrated at ``default_rate``; the inputs' positive share has moved by
    ``shift`` on the log-odds scale.
    """
    bounds = np.asarray(upper_bounds, dtype=np.float64)
    c = special.logit(default_rate)
    positives = special.expit(c + shift)
    with np.errstate(divide="ignore"):
        latent = (special.logit(np.clip(bounds, 0.0, 1.0)) - c + mu * mu / 2.0) / mu
    cdf = (1.0 - positives) * special.ndtr(latent) + positives * special.ndtr(latent - mu)
    return np.diff(np.concatenate([[0.0], cdf]))


def _tail_threshold(
    shares: FloatArray, log_medians: FloatArray, sd: float, quantile: float
) -> FloatArray:
    """The ``quantile`` of the champion's latency over all its clients, per run (bisection)."""
    low = log_medians.min(axis=1) - 10.0 * sd
    high = log_medians.max(axis=1) + 10.0 * sd
    for _ in range(60):
        mid = (low + high) / 2.0
        cdf = (shares * special.ndtr((mid[:, None] - log_medians) / sd)).sum(axis=1)
        below = cdf < quantile
        low = np.where(below, mid, low)
        high = np.where(below, high, mid)
    return np.asarray(np.exp((low + high) / 2.0), dtype=np.float64)


def _chi2_sum(rng: np.random.Generator, df: FloatArray) -> FloatArray:
    """A chi-square draw where ``df >= 1``, else 0."""
    return np.where(df >= 1, rng.chisquare(np.maximum(df, 1.0)), 0.0)


@dataclass(frozen=True)
class JudgeOutcome:
    """How each simulated canary ended under one judge.

    Attributes:
        verdict: Terminal verdict code per canary (CONTINUE if none within its windows).
        window: Window of the terminal verdict (0 if none).
    """

    verdict: IntArray
    window: IntArray


@dataclass
class _Cells:
    """Routes per-client values into (run, variant, group) cells."""

    runs: int
    groups: int
    group: IntArray  # (runs, clients)

    def __call__(self, values: FloatArray | IntArray, canary: npt.NDArray[np.bool_]) -> FloatArray:
        index = (np.arange(self.runs)[:, None] * 2 + canary) * self.groups + self.group
        flat = np.bincount(
            index.ravel(), weights=np.asarray(values, dtype=np.float64).ravel(),
            minlength=self.runs * 2 * self.groups,
        )  # fmt: skip
        return np.asarray(flat.reshape(self.runs, 2, self.groups), dtype=np.float64)


@dataclass(frozen=True)
class _Baseline:
    """The champion's traffic before the canary, split by one routing weight."""

    errors: MeanEvidence
    latency: MeanEvidence
    tail: MeanEvidence
    slices: list[MeanEvidence]


@dataclass
class _Evidence:
    """Our judge's evidence, accumulated one stratum at a time."""

    errors: MeanEvidence
    latency: MeanEvidence
    tail: MeanEvidence
    quality: MeanEvidence
    slice_errors: list[MeanEvidence]
    slice_quality: list[MeanEvidence]
    scores: ScoreEvidence | None = None

    @classmethod
    def empty(cls, runs: int, groups: int, slices: int) -> _Evidence:
        def blank() -> MeanEvidence:
            return MeanEvidence.empty(runs, groups)

        return cls(
            blank(), blank(), blank(), blank(),
            [blank() for _ in range(slices)], [blank() for _ in range(slices)],
        )  # fmt: skip

    def frozen(self, tail_threshold: float | None) -> CanaryEvidence:
        return CanaryEvidence(
            errors=self.errors,
            latency=self.latency,
            latency_tail=self.tail,
            quality=self.quality,
            scores=self.scores,
            slice_errors={f"slice{i}": e for i, e in enumerate(self.slice_errors)},
            slice_quality={f"slice{i}": e for i, e in enumerate(self.slice_quality)},
            tail_threshold_s=tail_threshold,
        )


class _Scenario:
    """One scenario's simulated world: its clients, and one window of traffic at a time."""

    def __init__(
        self, params: SimulationParams, scenario: Scenario, rng: np.random.Generator
    ) -> None:
        self.params, self.scenario, self.rng = params, scenario, rng
        t = scenario.traffic
        self.traffic = t
        runs, clients = params.runs, t.clients
        self.shares = t.shares()
        self.hash = rng.random((runs, clients))
        self.group = rng.integers(0, params.clusters, (runs, clients))
        self.cells = _Cells(runs, params.clusters, self.group)
        self.error_offset = rng.normal(0.0, t.client_error_sd, (runs, clients))
        self.latency_offset = rng.normal(0.0, t.client_latency_sd, (runs, clients))
        base_log = math.log(t.latency_median_s) + self.latency_offset
        self.tau = _tail_threshold(self.shares, base_log, t.latency_log_sd, TAIL_QUANTILE)
        self.mu = {
            "champion": _separation(t.champion_auc),
            "canary": _separation(t.champion_auc + scenario.auc_change),
            "canary_slice": _separation(
                t.champion_auc + scenario.auc_change + scenario.slice_auc_change
            ),
        }
        self.slices = len(t.slices)
        self.slice_hit = scenario.slice_index % self.slices if scenario.slice_index >= 0 else -1
        self.evidence = _Evidence.empty(runs, params.clusters, self.slices)
        self.pending: dict[int, tuple[FloatArray, FloatArray, FloatArray]] = {}
        self.canary_requests = np.zeros(runs)
        self.history: list[tuple[StepCounters, StepCounters]] = []
        self.baselines: dict[float, _Baseline] = {}
        if params.baseline_windows > 0:
            self._draw_baseline(params.baseline_windows)

    def _draw_baseline(self, windows: int) -> None:
        """The champion's traffic before the canary, split by every weight the canary will use."""
        rng, t = self.rng, self.traffic
        n_client = rng.multinomial(
            t.requests_per_window * windows, self.shares, size=self.params.runs
        )
        n_slice = rng.multinomial(n_client, t.slices)
        rate = self._champion_error_rate(np.ones(self.params.runs), 0)[:, :, None]
        e_slice = rng.binomial(n_slice, np.broadcast_to(rate, n_slice.shape))
        log_median = math.log(t.latency_median_s) + self.latency_offset
        sums, squares, slow = self._latency_draws(n_client, log_median)
        for weight in sorted(set(t.canary_weight)):
            split = self.hash < weight
            n = self.cells(n_client, split)
            e = self.cells(e_slice.sum(axis=2), split)
            x = self.cells(slow, split)
            self.baselines[weight] = _Baseline(
                errors=stratum_evidence(n, e, e.sum(axis=2)),
                latency=stratum_evidence(
                    n, self.cells(sums, split), self.cells(squares, split).sum(axis=2)
                ),
                tail=stratum_evidence(n, x, x.sum(axis=2)),
                slices=[
                    stratum_evidence(
                        self.cells(n_slice[:, :, i], split),
                        self.cells(e_slice[:, :, i], split),
                        self.cells(e_slice[:, :, i], split).sum(axis=2),
                    )
                    for i in range(self.slices)
                ],
            )

    def _champion_error_rate(self, shock: FloatArray, k: int) -> FloatArray:
        """Each client's error rate on the champion during window ``k``, shape (runs, clients)."""
        t, s = self.traffic, self.scenario
        if t.base_error_rate > 0:
            base = special.expit(special.logit(t.base_error_rate) + self.error_offset)
        else:
            base = np.zeros_like(self.error_offset)
        return np.asarray(
            np.clip(base * shock[:, None] * math.exp(s.drift_error * k), 0.0, 1.0),
            dtype=np.float64,
        )

    def _latency_draws(
        self, n_client: IntArray, log_median: FloatArray, delayed: IntArray | None = None
    ) -> tuple[FloatArray, FloatArray, IntArray]:
        """Per client: sum and sum of squares of log latency, and requests above the tail."""
        rng, sd, s = self.rng, self.traffic.latency_log_sd, self.scenario
        late_n = np.zeros_like(n_client) if delayed is None else delayed
        normal = (n_client - late_n).astype(np.float64)
        late = late_n.astype(np.float64)
        log_delayed = np.log(np.exp(log_median) + s.tail_delay_s)
        sum_normal = normal * log_median + sd * np.sqrt(normal) * rng.standard_normal(normal.shape)
        sum_late = late * log_delayed + _DELAYED_LOG_SD * np.sqrt(late) * rng.standard_normal(
            late.shape
        )
        squares = (
            sd * sd * _chi2_sum(rng, normal - 1.0)
            + sum_normal**2 / np.maximum(normal, 1.0)
            + _DELAYED_LOG_SD**2 * _chi2_sum(rng, late - 1.0)
            + sum_late**2 / np.maximum(late, 1.0)
        )
        log_tau = np.log(self.tau)[:, None]
        slow = rng.binomial(n_client - late_n, special.ndtr((log_median - log_tau) / sd))
        slow += rng.binomial(late_n, special.ndtr((log_delayed - log_tau) / _DELAYED_LOG_SD))
        return sum_normal + sum_late, squares, slow

    def _adjust(self, evidence: MeanEvidence, baseline: MeanEvidence | None) -> MeanEvidence:
        return evidence if baseline is None else evidence.with_baseline(baseline)

    def window(self, k: int, *, peers: bool) -> WindowData:
        """Simulate window ``k`` and return what every judge may read after it."""
        rng, t, s, p = self.rng, self.traffic, self.scenario, self.params
        runs = p.runs
        weight = t.weight(k)
        canary = self.hash < weight  # (runs, clients), sticky
        n_client = rng.multinomial(t.requests_per_window, self.shares, size=runs)
        n_slice = rng.multinomial(n_client, t.slices)  # (runs, clients, slices)

        # Errors: champion rate per client, the canary's change on top.
        shock = np.exp(rng.normal(0.0, s.load_error_sd, runs) - s.load_error_sd**2 / 2)
        rate = self._champion_error_rate(shock, k)[:, :, None]
        base = self.baselines.get(weight)
        added = np.zeros(self.slices)
        added += s.error_rate_increase
        if self.slice_hit >= 0:
            added[self.slice_hit] += s.slice_error_increase
        rate = np.clip(rate + canary[:, :, None] * added, 0.0, 1.0)
        e_slice = rng.binomial(n_slice, rate)
        errors = e_slice.sum(axis=2)
        for i in range(self.slices):
            n_i = self.cells(n_slice[:, :, i], canary)
            e_i = self.cells(e_slice[:, :, i], canary)
            self.evidence.slice_errors[i] += self._adjust(
                stratum_evidence(n_i, e_i, e_i.sum(axis=2)),
                None if base is None else base.slices[i],
            )
        n_cells = self.cells(n_client, canary)
        e_cells = self.cells(errors, canary)
        self.evidence.errors += self._adjust(
            stratum_evidence(n_cells, e_cells, e_cells.sum(axis=2)),
            None if base is None else base.errors,
        )

        # Latency: log-normal per client; a share of canary requests delayed (the tail).
        log_median = (
            math.log(t.latency_median_s)
            + self.latency_offset
            + rng.normal(0.0, s.load_latency_sd, runs)[:, None]
            + s.drift_latency * k
            + canary * math.log(s.latency_ratio)
        )
        delayed = rng.binomial(n_client, canary * s.tail_share)
        log_delayed = np.log(np.exp(log_median) + s.tail_delay_s)
        sums, squares, slow = self._latency_draws(n_client, log_median, delayed)
        self.evidence.latency += self._adjust(
            stratum_evidence(
                n_cells, self.cells(sums, canary), self.cells(squares, canary).sum(axis=2)
            ),
            None if base is None else base.latency,
        )
        x_cells = self.cells(slow, canary)
        self.evidence.tail += self._adjust(
            stratum_evidence(n_cells, x_cells, x_cells.sum(axis=2)),
            None if base is None else base.tail,
        )

        # Scores and delayed labels.
        shift = s.drift_inputs * k
        self._scores(n_slice, canary, shift)
        self._labels(k, n_slice, canary, shift)

        canary_now = (n_client * canary).sum(axis=1).astype(np.float64)
        canary_errors = (errors * canary).sum(axis=1).astype(np.float64)
        self.canary_requests += canary_now
        steps: tuple[StepCounters, StepCounters] | None = None
        if peers:
            expected = (n_slice * rate).sum(axis=2)  # expected errors per client
            steps = self._peer_steps(
                weight, canary, n_client, delayed, expected, log_median, log_delayed
            )
            self.history.append(steps)
            self.history = self.history[-p.kayenta_lookback_windows :]
        return WindowData(
            window=k,
            evidence=self.evidence.frozen(None),
            canary_requests=self.canary_requests.copy(),
            canary_window_requests=canary_now,
            canary_window_errors=canary_errors,
            last_canary_steps=None if steps is None else steps[0],
            canary_steps=None if steps is None else _concat([h[0] for h in self.history]),
            baseline_steps=None if steps is None else _concat([h[1] for h in self.history]),
            latency_buckets=p.latency_buckets,
        )

    def _scores(self, n_slice: IntArray, canary: npt.NDArray[np.bool_], shift: float) -> None:
        rng, t, p = self.rng, self.traffic, self.params

        def probs(mu: float) -> FloatArray:
            return _score_bucket_probs(p.score_buckets, mu, t.default_rate, shift)

        by_variant = [(n_slice * (canary == v)[:, :, None]).sum(axis=1) for v in (False, True)]
        hit = self.slice_hit
        champion = _multinomial(rng, by_variant[0].sum(axis=1), probs(self.mu["champion"]))
        if hit >= 0:
            in_hit = by_variant[1][:, hit]
            rest = by_variant[1].sum(axis=1) - in_hit
            canary_counts = _multinomial(rng, rest, probs(self.mu["canary"])) + _multinomial(
                rng, in_hit, probs(self.mu["canary_slice"])
            )
        else:
            canary_counts = _multinomial(rng, by_variant[1].sum(axis=1), probs(self.mu["canary"]))
        stratum = ScoreEvidence.stratum(canary_counts, champion)
        self.evidence.scores = (
            stratum if self.evidence.scores is None else self.evidence.scores + stratum
        )

    def _labels(
        self, k: int, n_slice: IntArray, canary: npt.NDArray[np.bool_], shift: float
    ) -> None:
        """Draw this window's labelled rows and their losses; add the labels that arrive now."""
        rng, t, p = self.rng, self.traffic, self.params
        runs, clients, slices = n_slice.shape
        groups, lags = p.clusters, t.label_lags
        labelled = rng.binomial(n_slice, t.label_fraction)
        cell = np.repeat(np.arange(labelled.size), labelled.ravel())
        run, client, slice_ = cell // (clients * slices), (cell // slices) % clients, cell % slices
        variant = canary[run, client].astype(np.int64)
        mu_table = np.full((2, slices), self.mu["champion"])
        mu_table[1, :] = self.mu["canary"]
        if self.slice_hit >= 0:
            mu_table[1, self.slice_hit] = self.mu["canary_slice"]
        mu = mu_table[variant, slice_]
        c = float(special.logit(t.default_rate))
        positive = rng.random(cell.size) < special.expit(c + shift)
        logit = c + np.where(positive, 0.5, -0.5) * mu * mu + mu * rng.standard_normal(cell.size)
        signed = np.where(positive, -logit, logit)
        loss = np.maximum(signed, 0.0) + np.log1p(np.exp(-np.abs(signed)))
        lag = rng.integers(0, len(lags), cell.size)
        index = (
            ((lag * runs + run) * 2 + variant) * groups + self.group[run, client]
        ) * slices + slice_
        size = len(lags) * runs * 2 * groups * slices
        shape = (len(lags), runs, 2, groups, slices)
        count = np.bincount(index, minlength=size).reshape(shape).astype(np.float64)
        total = np.bincount(index, weights=loss, minlength=size).reshape(shape)
        squares = np.bincount(index, weights=loss * loss, minlength=size).reshape(shape)
        for i, delay in enumerate(lags):
            arrival = k + delay
            parts = (count[i], total[i], squares[i])
            if arrival in self.pending:
                old = self.pending[arrival]
                parts = (old[0] + parts[0], old[1] + parts[1], old[2] + parts[2])
            self.pending[arrival] = parts
        arrived = self.pending.pop(k, None)
        if arrived is None:
            return
        n, total_loss, sq = arrived
        # One stratum per (window of prediction, window of arrival): labels of one prediction
        # window arriving over several windows each compare like with like.
        self.evidence.quality += stratum_evidence(
            n.sum(axis=3), total_loss.sum(axis=3), sq.sum(axis=(2, 3))
        )
        for i in range(slices):
            self.evidence.slice_quality[i] += stratum_evidence(
                n[..., i], total_loss[..., i], sq[..., i].sum(axis=2)
            )

    def _peer_steps(
        self,
        weight: float,
        canary: npt.NDArray[np.bool_],
        n_client: IntArray,
        delayed: IntArray,
        expected_errors: FloatArray,
        log_median: FloatArray,
        log_delayed: FloatArray,
    ) -> tuple[StepCounters, StepCounters]:
        """The peers' per-step counters of the canary and of a canary-sized baseline.

        Requests split evenly over the steps; each step's errors are drawn at the variant's
        true error rate this window (its clients' rates, weighted by their requests).
        """
        rng, p, t = self.rng, self.params, self.traffic
        steps = p.steps_per_window
        uniform = np.full(steps, 1.0 / steps)
        sd = t.latency_log_sd

        def mixture(mask: npt.NDArray[np.bool_]) -> FloatArray:
            normal = (n_client - delayed) * mask
            late = delayed * mask
            if t.client_latency_sd == 0:
                # Every client of a variant has the same latency law: no need to mix per client.
                first = np.argmax(mask, axis=1)
                rows = np.arange(mask.shape[0])
                probs = normal.sum(1)[:, None] * _bucket_probs(
                    p.latency_buckets, log_median[rows, first], sd
                ) + late.sum(1)[:, None] * _bucket_probs(
                    p.latency_buckets, log_delayed[rows, first], _DELAYED_LOG_SD
                )
            else:
                probs = (normal[:, :, None] * _bucket_probs(p.latency_buckets, log_median, sd)).sum(
                    1
                ) + (
                    late[:, :, None]
                    * _bucket_probs(p.latency_buckets, log_delayed, _DELAYED_LOG_SD)
                ).sum(1)
            total = probs.sum(axis=1, keepdims=True)
            mixed = np.where(total > 0, probs / np.maximum(total, 1e-300), 1.0 / probs.shape[1])
            return np.asarray(mixed, dtype=np.float64)

        def counters(mask: npt.NDArray[np.bool_], thin: float) -> StepCounters:
            n = (n_client * mask).sum(axis=1)
            e = (expected_errors * mask).sum(axis=1)
            per_step = _multinomial(rng, n, uniform)
            if thin < 1.0:
                per_step = rng.binomial(per_step, thin)
            rate = np.clip(np.where(n > 0, e / np.maximum(n, 1), 0.0), 0.0, 1.0)
            errs = rng.binomial(per_step, rate[:, None])
            buckets = _multinomial(rng, per_step, mixture(mask)[:, None, :])
            return StepCounters(requests=per_step, errors=errs, latency_buckets=buckets)

        thin = min(1.0, weight / max(1.0 - weight, 1e-9))
        return counters(canary, 1.0), counters(~canary, thin)


def _concat(parts: Sequence[StepCounters]) -> StepCounters:
    if len(parts) == 1:
        return parts[0]
    return StepCounters(
        requests=np.concatenate([p.requests for p in parts], axis=1),
        errors=np.concatenate([p.errors for p in parts], axis=1),
        latency_buckets=np.concatenate([p.latency_buckets for p in parts], axis=1),
    )


def _simulate_scenario(
    params: SimulationParams,
    scenario: Scenario,
    judges: Sequence[BatchJudge],
    rng: np.random.Generator,
) -> dict[str, JudgeOutcome]:
    runs = params.runs
    world = _Scenario(params, scenario, rng)
    outcomes = {
        j.name: (np.full(runs, VerdictCode.CONTINUE, dtype=np.int64), np.zeros(runs, np.int64))
        for j in judges
    }
    for judge in judges:
        judge.start(runs, scenario.traffic)
    last = min(params.windows, max(j.max_windows for j in judges))
    for window in range(1, last + 1):
        active = [
            j
            for j in judges
            if window <= j.max_windows and np.any(outcomes[j.name][0] == VerdictCode.CONTINUE)
        ]
        if not active:
            break
        peers = any(not isinstance(j, OurBatchJudge) for j in active)
        data = world.window(window, peers=peers)
        for judge in active:
            codes = judge.judge_window(data)
            final, at = outcomes[judge.name]
            newly = (final == VerdictCode.CONTINUE) & (codes != VerdictCode.CONTINUE)
            final[newly] = codes[newly]
            at[newly] = window
    return {name: JudgeOutcome(verdict=v, window=w) for name, (v, w) in outcomes.items()}


def champion_p95_as_prometheus_reports(
    traffic: Traffic, buckets: Sequence[float] = SERVING_LATENCY_BUCKETS
) -> float:
    """The champion's steady-state p95 latency as ``histogram_quantile`` computes it.

    An Argo user sets a latency threshold from the dashboard, which shows this value, not the true
    quantile (bucket interpolation moves it).
    """
    probs = _bucket_probs(
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


def run_simulation(
    params: SimulationParams,
    judges: Sequence[BatchJudge] | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, JudgeOutcome]]:
    """Run every judge on every scenario, on the same simulated traffic.

    Args:
        params: The simulation's parameters and seed.
        judges: The judges; :func:`default_judges` if ``None``.
        progress: Called with each scenario's name as it starts.

    Returns:
        ``{judge name: {scenario name: outcome}}``.
    """
    chosen = list(judges) if judges is not None else default_judges(params)
    names = [j.name for j in chosen]
    if len(set(names)) != len(names):
        raise ValueError(f"judge names must be unique, got {names}")
    seeds = np.random.SeedSequence(params.seed).spawn(len(params.scenarios))
    results: dict[str, dict[str, JudgeOutcome]] = {name: {} for name in names}
    for scenario, seed in zip(params.scenarios, seeds, strict=True):
        if progress is not None:
            progress(scenario.name)
        outcomes = _simulate_scenario(params, scenario, chosen, np.random.default_rng(seed))
        for name, outcome in outcomes.items():
            results[name][scenario.name] = outcome
    return results
