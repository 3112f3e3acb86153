"""What the judge benchmark simulates: the traffic's shape, the scenarios and the run's size.

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

:mod:`benchmarks.judge.world` draws that traffic; :mod:`benchmarks.judge.simulation` runs it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import numpy.typing as npt

from interfaces.metric_names import LATENCY_BUCKETS, PROBABILITY_BUCKETS

__all__ = ["DEFAULT_SCENARIOS", "DELAYED_LOG_SD", "Scenario", "SimulationParams", "Traffic"]

FloatArray = npt.NDArray[np.float64]

DELAYED_LOG_SD = 0.1
"""Spread of log latency of requests delayed by a fixed amount (the tail regression)."""


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
    latency_buckets: tuple[float, ...] = LATENCY_BUCKETS
    score_buckets: tuple[float, ...] = PROBABILITY_BUCKETS
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
