"""A seeded simulator of canary traffic, and the loop that checks every judge after every window.

Traffic: each window carries ``requests_per_window`` requests, split into ``steps_per_window``
steps (the scrape/step resolution the Kayenta peer reads); each request goes to the canary with
probability ``canary_weight`` (20 % of 2,000 = about 400 canary requests per window). For every
request, per variant:

* **errors** are Bernoulli at the base rate (plus the scenario's increase for the canary);
* **latency** is log-normal with the given median and log-space spread (times the scenario's
  ratio for the canary), exposed as counts per Prometheus bucket (the serving buckets of
  ``serving/metrics.py``) for the peers' ``histogram_quantile`` queries, and as moments of log
  latency (what the inference log gives) for our judge;
* **scores and labels** follow the binormal model: the latent score is N(0, 1) for negatives and
  N(mu, 1) for positives, so the AUC is exactly ``Phi(mu / sqrt 2)`` and "-0.02 AUC" means
  exactly that; the served probability is the calibrated ``P(y = 1 | s)``. A share
  ``label_fraction`` of each window's requests gets its label ``label_lag_windows`` windows later.
  Score histograms use the serving's probability buckets.

Each judge sees exactly distributed statistics of the same traffic: error counts are shared by
all judges; the latency histogram and the latency moments, like the score histogram and the
labelled losses, are drawn separately (a judge never sees both of a pair, so only each judge's own
marginal distribution matters, and drawing the moments directly is what keeps a thousand
canaries in seconds).

The Kayenta peer compares the canary with a *baseline* the size of the canary, as its
documentation requires ("same size of deployment, same type and amount of traffic"): a random
share of the champion's traffic equal in expectation to the canary's. Our judge and the Argo peer
see the whole champion (Argo only reads the canary).

Scenarios change only the canary, except the ``+load`` scenario, whose per-window load shocks hit
both variants alike (a platform-wide slowdown), the case absolute thresholds cannot tell from a
bad canary.

Every judge runs after every window until its first terminal verdict; the window of the first
ROLLBACK is its time to detect.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from monitoring.judge import CanaryJudge, JudgeConfig, Moments, VariantStats, VerdictCode
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
    "JudgeOutcome",
    "KayentaBatchJudge",
    "OurBatchJudge",
    "Scenario",
    "SimulationParams",
    "StepCounters",
    "WindowData",
    "champion_p95_as_prometheus_reports",
    "default_judges",
    "run_simulation",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Mirrors serving/metrics.py::LATENCY_BUCKETS and ::PROBABILITY_BUCKETS, so the simulated
# histograms have the resolution the real ones have (copied, not imported: monitoring must not
# depend on the serving package).
SERVING_LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
SERVING_PROBABILITY_BUCKETS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 21))


@dataclass(frozen=True)
class Scenario:
    """What the canary does differently from the champion.

    Attributes:
        name: Short label used in reports.
        error_rate_increase: Added to the canary's error rate (0.01 = one point).
        latency_ratio: Multiplies every canary latency.
        auc_change: Added to the canary model's AUC.
        load_latency_sd: Per-window common shock to log latency, both variants (platform load).
        load_error_sd: Per-window common shock to log error rate, both variants.
        extra: Not one of the issue's five scenarios (reported, not used by the goals).
    """

    name: str
    error_rate_increase: float = 0.0
    latency_ratio: float = 1.0
    auc_change: float = 0.0
    load_latency_sd: float = 0.0
    load_error_sd: float = 0.0
    extra: bool = False

    @property
    def regression(self) -> bool:
        """Whether rolling back is the right answer."""
        return self.error_rate_increase > 0 or self.latency_ratio > 1 or self.auc_change < 0


DEFAULT_SCENARIOS: tuple[Scenario, ...] = (
    Scenario("null"),
    Scenario("error+1pt", error_rate_increase=0.01),
    Scenario("error+3pt", error_rate_increase=0.03),
    Scenario("latency x1.5", latency_ratio=1.5),
    Scenario("quality -0.02 AUC", auc_change=-0.02),
    Scenario("null+load", load_latency_sd=0.15, load_error_sd=0.3, extra=True),
    Scenario("quality -0.10 AUC", auc_change=-0.10, extra=True),
)


@dataclass(frozen=True)
class SimulationParams:
    """Every knob of the simulation, and its seed.

    Attributes:
        seed: Seed of the random generator (same seed, same figures).
        runs: Simulated canaries per scenario.
        windows: Windows per canary (every judge is checked after each).
        requests_per_window: Requests per window, both variants together.
        canary_weight: Share of requests routed to the canary.
        steps_per_window: Time-series points per window (the Kayenta peer's ``step``).
        base_error_rate: The champion's server-side error rate.
        latency_median_s: The champion's median latency, seconds.
        latency_log_sd: Standard deviation of log latency (both variants).
        default_rate: Share of positive labels (loan defaults).
        champion_auc: The champion model's AUC under the binormal model.
        label_fraction: Share of requests whose label ever arrives.
        label_lag_windows: Windows between a request and its label.
        latency_buckets: Latency histogram upper bounds (seconds).
        score_buckets: Score histogram upper bounds (probability), the last being 1.
        kayenta_lookback_windows: Windows of data each Kayenta interval judges (None: all).
        scenarios: The scenarios to run.
    """

    seed: int = 20240917
    runs: int = 1000
    windows: int = 30
    requests_per_window: int = 2000
    canary_weight: float = 0.2
    steps_per_window: int = 10
    base_error_rate: float = 0.01
    latency_median_s: float = 0.04
    latency_log_sd: float = 0.5
    default_rate: float = 0.1
    champion_auc: float = 0.78
    label_fraction: float = 0.3
    label_lag_windows: int = 3
    latency_buckets: tuple[float, ...] = SERVING_LATENCY_BUCKETS
    score_buckets: tuple[float, ...] = SERVING_PROBABILITY_BUCKETS
    kayenta_lookback_windows: int | None = 1
    scenarios: tuple[Scenario, ...] = DEFAULT_SCENARIOS

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (self.runs >= 1, "runs must be >= 1"),
            (self.windows >= 1, "windows must be >= 1"),
            (self.steps_per_window >= 1, "steps_per_window must be >= 1"),
            (
                self.requests_per_window >= self.steps_per_window,
                "requests_per_window must be >= steps_per_window",
            ),
            (0 < self.canary_weight < 0.5, "canary_weight must be in (0, 0.5)"),
            (0 < self.base_error_rate < 1, "base_error_rate must be in (0, 1)"),
            (self.latency_median_s > 0, "latency_median_s must be > 0"),
            (self.latency_log_sd > 0, "latency_log_sd must be > 0"),
            (0 < self.default_rate < 1, "default_rate must be in (0, 1)"),
            (0.5 < self.champion_auc < 1, "champion_auc must be in (0.5, 1)"),
            (0 < self.label_fraction <= 1, "label_fraction must be in (0, 1]"),
            (self.label_lag_windows >= 0, "label_lag_windows must be >= 0"),
            (
                self.kayenta_lookback_windows is None or self.kayenta_lookback_windows >= 1,
                "kayenta_lookback_windows must be >= 1 or None",
            ),
            (len(self.scenarios) >= 1, "scenarios must not be empty"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        for scenario in self.scenarios:
            auc = self.champion_auc + scenario.auc_change
            if not 0.5 < auc < 1:
                raise ValueError(f"scenario {scenario.name!r}: canary AUC {auc} not in (0.5, 1)")

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
        champion: Cumulative champion data (our judge's input).
        canary: Cumulative canary data.
        last_canary_steps: The canary's per-step counters in this window (Argo's input).
        canary_steps: The canary's per-step counters over the lookback (Kayenta's input).
        baseline_steps: The canary-sized baseline slice's per-step counters over the lookback.
        latency_buckets: Upper bounds of the latency histogram buckets.
    """

    window: int
    champion: VariantStats
    canary: VariantStats
    last_canary_steps: StepCounters
    canary_steps: StepCounters
    baseline_steps: StepCounters
    latency_buckets: tuple[float, ...]


class BatchJudge(Protocol):
    """What the simulation needs of a judge: a fresh start, then one verdict per window."""

    name: str

    def settings(self) -> dict[str, object]:
        """The judge's configuration, reported next to its figures."""
        ...

    def start(self, runs: int) -> None:
        """Begin judging ``runs`` new canaries."""
        ...

    def judge_window(self, data: WindowData) -> IntArray:
        """Verdict codes (:class:`~monitoring.judge.VerdictCode`) after ``data.window``."""
        ...


def _rate(errors: IntArray, requests: IntArray) -> FloatArray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(requests > 0, errors / np.maximum(requests, 1), np.nan)


@dataclass
class OurBatchJudge:
    """Our :class:`~monitoring.judge.CanaryJudge` on cumulative data."""

    config: JudgeConfig
    name: str = "ours"

    def settings(self) -> dict[str, object]:
        """The judge config."""
        return self.config.model_dump(mode="json")

    def start(self, runs: int) -> None:
        """Nothing to reset: the judge is a function of the cumulative data."""

    def judge_window(self, data: WindowData) -> IntArray:
        """Judge every canary on its cumulative data."""
        judgement = CanaryJudge(self.config).decide(data.champion, data.canary, window=data.window)
        return judgement.verdict


@dataclass
class ArgoBatchJudge:
    """The Argo Rollouts peer; queries are the last window's canary error rate and p95."""

    template: ArgoAnalysisTemplate
    name: str = "argo"
    _judge: ArgoThresholdJudge | None = field(default=None, init=False, repr=False)

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

    def start(self, runs: int) -> None:
        """A new AnalysisRun per canary."""
        self._judge = ArgoThresholdJudge(self.template, batch_size=runs)

    def judge_window(self, data: WindowData) -> IntArray:
        """Measure the last window's canary error rate and p95 latency."""
        if self._judge is None:
            raise RuntimeError("call start() before judge_window()")
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
    lookback_windows: int | None
    seed: int = 0
    name: str = "kayenta"
    _judge: KayentaMannWhitneyJudge | None = field(default=None, init=False, repr=False)

    def settings(self) -> dict[str, object]:
        """The canary config, thresholds and lookback."""
        return {
            "canary_config": self.config.model_dump(mode="json"),
            "interval": "1 window",
            "lookback": "whole canary (growing)"
            if self.lookback_windows is None
            else f"{self.lookback_windows} window(s)",
            "series": {
                "error_rate": "errors / requests per step",
                "latency_p95": "histogram_quantile(0.95) of each step's buckets",
            },
            "baseline": "a canary-sized random share of the champion's traffic",
        }

    def start(self, runs: int) -> None:
        """Kayenta judges each interval afresh."""
        self._judge = KayentaMannWhitneyJudge(self.config, seed=self.seed)

    def judge_window(self, data: WindowData) -> IntArray:
        """Score this interval's series."""
        if self._judge is None:
            raise RuntimeError("call start() before judge_window()")

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
    """Multinomial counts with per-element probabilities, by conditional binomials.

    Categories whose probability is below 1e-9 everywhere get no draw: over the whole benchmark
    (about 1e8 requests) they would hold a handful of requests between them.
    """
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


def _lognormal_bucket_probs(
    bounds: Sequence[float], log_median: FloatArray, sd: float
) -> FloatArray:
    """P(latency in each bucket) for log-normal latencies; last bucket is ``+Inf``."""
    edges = np.log(np.asarray(bounds, dtype=np.float64))
    cdf = stats.norm.cdf((edges - log_median[..., None]) / sd)
    cdf = np.concatenate(
        [np.zeros((*cdf.shape[:-1], 1)), cdf, np.ones((*cdf.shape[:-1], 1))], axis=-1
    )
    return np.diff(cdf, axis=-1)


def _separation(auc: float) -> float:
    """Binormal mean separation ``mu`` with ``Phi(mu / sqrt 2) = auc``."""
    return float(math.sqrt(2.0) * stats.norm.ppf(auc))


def _score_bucket_probs(
    upper_bounds: Sequence[float], mu: float, default_rate: float
) -> FloatArray:
    """P(calibrated score in each bucket) under the binormal model (buckets start at 0)."""
    bounds = np.asarray(upper_bounds, dtype=np.float64)
    c = special.logit(default_rate)
    with np.errstate(divide="ignore"):
        latent = (special.logit(np.clip(bounds, 0.0, 1.0)) - c + mu * mu / 2.0) / mu
    cdf_neg = stats.norm.cdf(latent)
    cdf_pos = stats.norm.cdf(latent - mu)
    cdf = (1.0 - default_rate) * cdf_neg + default_rate * cdf_pos
    return np.diff(np.concatenate([[0.0], cdf]))


def _labelled_losses(
    rng: np.random.Generator, labelled: IntArray, mu: float, default_rate: float
) -> tuple[FloatArray, FloatArray]:
    """Sum and sum of squares of per-row log loss over ``labelled`` rows per run."""
    positives = rng.binomial(labelled, default_rate)
    c = float(special.logit(default_rate))
    total = np.zeros(labelled.shape[0])
    squares = np.zeros(labelled.shape[0])
    # Given the label, the served log-odds c + mu s - mu^2/2 is normal; draw it directly.
    for count, centre, sign in (
        (positives, c + mu * mu / 2.0, -1.0),
        (labelled - positives, c - mu * mu / 2.0, 1.0),
    ):
        widest = int(count.max()) if count.size else 0
        if widest == 0:
            continue
        z = rng.standard_normal((count.shape[0], widest), dtype=np.float32)
        x = np.float32(sign) * (np.float32(centre) + np.float32(mu) * z)
        # softplus(x) = -log(sigmoid(-x)), in the form that cannot overflow
        loss = np.maximum(x, np.float32(0.0)) + np.log1p(np.exp(-np.abs(x)))
        loss *= np.arange(widest)[None, :] < count[:, None]
        total += loss.sum(axis=1, dtype=np.float64)
        squares += np.einsum("ij,ij->i", loss, loss, dtype=np.float64)
    return total, squares


def _combine(a: Moments, count: FloatArray, mean: FloatArray, m2: FloatArray) -> Moments:
    """Chan et al.'s parallel update of running moments."""
    total = a.count + count
    safe = np.maximum(total, 1.0)
    delta = mean - a.mean
    return Moments(
        count=total,
        mean=np.where(total > 0, a.mean + delta * count / safe, 0.0),
        m2=a.m2 + m2 + delta * delta * a.count * count / safe,
    )


def _latency_moments(
    rng: np.random.Generator, n: IntArray, log_median: FloatArray, sd: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Exact draw of (count, mean, m2) of ``n`` normal log latencies per run."""
    count = n.astype(np.float64)
    safe = np.maximum(count, 1.0)
    mean = log_median + sd * rng.standard_normal(n.shape) / np.sqrt(safe)
    m2 = sd * sd * rng.chisquare(np.maximum(count - 1.0, 1.0))
    return count, np.where(count > 0, mean, 0.0), np.where(count > 1, m2, 0.0)


@dataclass
class _Variant:
    """Cumulative state of one variant across windows."""

    requests: FloatArray
    errors: FloatArray
    latency: Moments
    scores: FloatArray
    loss_count: FloatArray
    loss_sum: FloatArray
    loss_sq: FloatArray
    pending: deque[tuple[FloatArray, FloatArray, FloatArray]]

    @classmethod
    def empty(cls, runs: int, score_bins: int) -> _Variant:
        zero = np.zeros(runs)
        return cls(
            requests=zero.copy(),
            errors=zero.copy(),
            latency=Moments(zero.copy(), zero.copy(), zero.copy()),
            scores=np.zeros((runs, score_bins)),
            loss_count=zero.copy(),
            loss_sum=zero.copy(),
            loss_sq=zero.copy(),
            pending=deque(),
        )

    def stats(self) -> VariantStats:
        count = self.loss_count
        safe = np.maximum(count, 1.0)
        mean = np.where(count > 0, self.loss_sum / safe, 0.0)
        m2 = np.maximum(self.loss_sq - self.loss_sum * self.loss_sum / safe, 0.0)
        return VariantStats(
            requests=self.requests.copy(),
            errors=self.errors.copy(),
            latency=self.latency,
            score_counts=self.scores.copy(),
            quality=Moments(count.copy(), mean, m2),
        )


@dataclass(frozen=True)
class JudgeOutcome:
    """How each simulated canary ended under one judge.

    Attributes:
        verdict: Terminal verdict code per canary (CONTINUE if none within the windows).
        window: Window of the terminal verdict (0 if none).
    """

    verdict: IntArray
    window: IntArray


def _simulate_scenario(
    params: SimulationParams,
    scenario: Scenario,
    judges: Sequence[BatchJudge],
    rng: np.random.Generator,
) -> dict[str, JudgeOutcome]:
    runs, steps = params.runs, params.steps_per_window
    per_step = params.requests_per_window // steps
    weight = params.canary_weight
    mu_champion = _separation(params.champion_auc)
    mu_canary = _separation(params.champion_auc + scenario.auc_change)
    score_probs = {
        "champion": _score_bucket_probs(params.score_buckets, mu_champion, params.default_rate),
        "canary": _score_bucket_probs(params.score_buckets, mu_canary, params.default_rate),
    }
    bins = len(params.score_buckets)
    champion = _Variant.empty(runs, bins)
    canary = _Variant.empty(runs, bins)
    lookback = params.kayenta_lookback_windows
    history: deque[tuple[StepCounters, StepCounters]] = deque(maxlen=lookback)
    log_median = math.log(params.latency_median_s)

    verdict = np.full(runs, VerdictCode.CONTINUE, dtype=np.int64)
    decided_at = np.zeros(runs, dtype=np.int64)
    outcomes = {j.name: (verdict.copy(), decided_at.copy()) for j in judges}
    for judge in judges:
        judge.start(runs)

    for window in range(1, params.windows + 1):
        latency_shock = (
            rng.normal(0.0, scenario.load_latency_sd, runs)
            if scenario.load_latency_sd
            else np.zeros(runs)
        )
        error_factor = (
            np.exp(rng.normal(0.0, scenario.load_error_sd, runs) - scenario.load_error_sd**2 / 2)
            if scenario.load_error_sd
            else np.ones(runs)
        )
        base_rate = np.clip(params.base_error_rate * error_factor, 0.0, 1.0)
        canary_rate = np.clip(
            (params.base_error_rate + scenario.error_rate_increase) * error_factor, 0.0, 1.0
        )
        champion_log_median = log_median + latency_shock
        canary_log_median = champion_log_median + math.log(scenario.latency_ratio)

        # Routing per step: canary, a canary-sized baseline slice of the champion, the rest.
        n_canary = rng.binomial(per_step, weight, (runs, steps))
        n_champion = per_step - n_canary
        n_slice = rng.binomial(n_champion, weight / (1.0 - weight))
        n_rest = n_champion - n_slice
        e_canary = rng.binomial(n_canary, canary_rate[:, None])
        e_slice = rng.binomial(n_slice, base_rate[:, None])
        e_rest = rng.binomial(n_rest, base_rate[:, None])
        canary_bucket_probs = _lognormal_bucket_probs(
            params.latency_buckets, canary_log_median, params.latency_log_sd
        )
        champion_bucket_probs = _lognormal_bucket_probs(
            params.latency_buckets, champion_log_median, params.latency_log_sd
        )
        canary_steps = StepCounters(
            requests=n_canary,
            errors=e_canary,
            latency_buckets=_multinomial(rng, n_canary, canary_bucket_probs[:, None, :]),
        )
        slice_steps = StepCounters(
            requests=n_slice,
            errors=e_slice,
            latency_buckets=_multinomial(rng, n_slice, champion_bucket_probs[:, None, :]),
        )

        # Window totals for our judge.
        w_canary = n_canary.sum(axis=1)
        w_champion = n_champion.sum(axis=1)
        canary.requests += w_canary
        canary.errors += e_canary.sum(axis=1)
        champion.requests += w_champion
        champion.errors += (e_slice + e_rest).sum(axis=1)
        canary.latency = _combine(
            canary.latency,
            *_latency_moments(rng, w_canary, canary_log_median, params.latency_log_sd),
        )
        champion.latency = _combine(
            champion.latency,
            *_latency_moments(rng, w_champion, champion_log_median, params.latency_log_sd),
        )
        canary.scores += _multinomial(rng, w_canary, score_probs["canary"])
        champion.scores += _multinomial(rng, w_champion, score_probs["champion"])
        for variant, served, mu in (
            (canary, w_canary, mu_canary),
            (champion, w_champion, mu_champion),
        ):
            labelled = rng.binomial(served, params.label_fraction)
            loss_sum, loss_sq = _labelled_losses(rng, labelled, mu, params.default_rate)
            variant.pending.append((labelled.astype(np.float64), loss_sum, loss_sq))
            if len(variant.pending) > params.label_lag_windows:
                count, total, squares = variant.pending.popleft()
                variant.loss_count += count
                variant.loss_sum += total
                variant.loss_sq += squares

        history.append((canary_steps, slice_steps))
        data = WindowData(
            window=window,
            champion=champion.stats(),
            canary=canary.stats(),
            last_canary_steps=canary_steps,
            canary_steps=_concat([h[0] for h in history]),
            baseline_steps=_concat([h[1] for h in history]),
            latency_buckets=params.latency_buckets,
        )
        for judge in judges:
            codes = judge.judge_window(data)
            final, at = outcomes[judge.name]
            newly = (final == VerdictCode.CONTINUE) & (codes != VerdictCode.CONTINUE)
            final[newly] = codes[newly]
            at[newly] = window
    return {name: JudgeOutcome(verdict=v, window=w) for name, (v, w) in outcomes.items()}


def _concat(parts: Sequence[StepCounters]) -> StepCounters:
    if len(parts) == 1:
        return parts[0]
    return StepCounters(
        requests=np.concatenate([p.requests for p in parts], axis=1),
        errors=np.concatenate([p.errors for p in parts], axis=1),
        latency_buckets=np.concatenate([p.latency_buckets for p in parts], axis=1),
    )


def champion_p95_as_prometheus_reports(params: SimulationParams) -> float:
    """The champion's steady-state p95 latency as ``histogram_quantile`` computes it.

    An Argo user sets a latency threshold from the dashboard, which shows this value, not the true
    quantile (bucket interpolation moves it).
    """
    probs = _lognormal_bucket_probs(
        params.latency_buckets, np.array([math.log(params.latency_median_s)]), params.latency_log_sd
    )
    return float(histogram_quantile(0.95, params.latency_buckets, probs)[0])


def default_judges(params: SimulationParams) -> list[BatchJudge]:
    """Our judge and the two peers, configured as their documentation's examples are.

    * Ours: :class:`~monitoring.judge.JudgeConfig` defaults, ``max_windows`` = the simulation's.
    * Argo: the docs' example ``failureLimit: 3``; error rate ``result < 0.02`` (twice the
      champion's base rate, as the issue suggests) and p95 latency below 1.2 times the champion's
      dashboard p95 (the same 1.2 ratio our judge uses as its promotion margin); ``count`` = the
      canary's windows.
    * Kayenta: ``NetflixACAJudge`` defaults (98 % Mann-Whitney, tolerance 0.25, effect size 1),
      both metrics with ``direction: increase``, score thresholds marginal 75 / pass 95 (the
      docs' example), one interval per window.
    """
    ours = OurBatchJudge(JudgeConfig(max_windows=params.windows))
    p95_limit = round(1.2 * champion_p95_as_prometheus_reports(params), 4)
    argo = ArgoBatchJudge(
        ArgoAnalysisTemplate(
            metrics=(
                ArgoMetric(name="error-rate", success_condition="result < 0.02", failure_limit=3),
                ArgoMetric(
                    name="latency-p95", success_condition=f"result < {p95_limit}", failure_limit=3
                ),
            ),
            count=params.windows,
        )
    )
    kayenta = KayentaBatchJudge(
        KayentaConfig(
            metrics=(
                KayentaMetric(name="error_rate", direction="increase"),
                KayentaMetric(name="latency_p95", direction="increase"),
            ),
            intervals=params.windows,
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
