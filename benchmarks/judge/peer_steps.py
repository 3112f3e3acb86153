"""What the peers read from one simulated window: per-step counters, as Prometheus would hold.

Our judge reads the inference log; the peers read time series. Each window's requests are split
evenly over ``steps_per_window`` steps, and each step gets request and error counts and a latency
histogram in the serving buckets — for the canary, and for a canary-sized random share of the
champion (Kayenta's baseline).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from benchmarks.judge.draws import bucket_probs, multinomial
from benchmarks.judge.scenarios import DELAYED_LOG_SD, SimulationParams, Traffic
from benchmarks.judge.window_data import StepCounters

__all__ = ["DrawnWindow", "peer_steps"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class DrawnWindow:
    """One window's traffic per (run, client), as the world drew it.

    Attributes:
        weight: The canary weight of the window.
        canary: Whether each client is routed to the canary.
        n_client: Requests per client.
        delayed: Canary requests delayed by the tail regression, per client.
        expected_errors: Each client's expected server errors this window.
        log_median: Each client's median log latency.
        log_delayed: The delayed requests' median log latency.
    """

    weight: float
    canary: BoolArray
    n_client: IntArray
    delayed: IntArray
    expected_errors: FloatArray
    log_median: FloatArray
    log_delayed: FloatArray


def peer_steps(
    rng: np.random.Generator, params: SimulationParams, traffic: Traffic, drawn: DrawnWindow
) -> tuple[StepCounters, StepCounters]:
    """The peers' per-step counters of the canary and of a canary-sized baseline.

    Requests split evenly over the steps; each step's errors are drawn at the variant's true
    error rate this window (its clients' rates, weighted by their requests).
    """
    thin = min(1.0, drawn.weight / max(1.0 - drawn.weight, 1e-9))
    canary = _counters(rng, params, traffic, drawn, drawn.canary, 1.0)
    baseline = _counters(rng, params, traffic, drawn, ~drawn.canary, thin)
    return canary, baseline


def _counters(
    rng: np.random.Generator,
    params: SimulationParams,
    traffic: Traffic,
    drawn: DrawnWindow,
    mask: BoolArray,
    thin: float,
) -> StepCounters:
    """One variant's per-step counters; ``thin`` keeps that share of its requests."""
    steps = params.steps_per_window
    n = (drawn.n_client * mask).sum(axis=1)
    e = (drawn.expected_errors * mask).sum(axis=1)
    per_step = multinomial(rng, n, np.full(steps, 1.0 / steps))
    if thin < 1.0:
        per_step = rng.binomial(per_step, thin)
    rate = np.clip(np.where(n > 0, e / np.maximum(n, 1), 0.0), 0.0, 1.0)
    errs = rng.binomial(per_step, rate[:, None])
    mixed = _latency_mixture(params, traffic, drawn, mask)
    buckets = multinomial(rng, per_step, mixed[:, None, :])
    return StepCounters(requests=per_step, errors=errs, latency_buckets=buckets)


def _latency_mixture(
    params: SimulationParams, traffic: Traffic, drawn: DrawnWindow, mask: BoolArray
) -> FloatArray:
    """P(latency bucket) of one variant's requests: its clients' laws, weighted by requests."""
    bounds, sd = params.latency_buckets, traffic.latency_log_sd
    normal = (drawn.n_client - drawn.delayed) * mask
    late = drawn.delayed * mask
    if traffic.client_latency_sd == 0:
        # Every client of a variant has the same latency law: no need to mix per client.
        first = np.argmax(mask, axis=1)
        rows = np.arange(mask.shape[0])
        probs = normal.sum(1)[:, None] * bucket_probs(
            bounds, drawn.log_median[rows, first], sd
        ) + late.sum(1)[:, None] * bucket_probs(
            bounds, drawn.log_delayed[rows, first], DELAYED_LOG_SD
        )
    else:
        probs = (normal[:, :, None] * bucket_probs(bounds, drawn.log_median, sd)).sum(1) + (
            late[:, :, None] * bucket_probs(bounds, drawn.log_delayed, DELAYED_LOG_SD)
        ).sum(1)
    total = probs.sum(axis=1, keepdims=True)
    mixed = np.where(total > 0, probs / np.maximum(total, 1e-300), 1.0 / probs.shape[1])
    return np.asarray(mixed, dtype=np.float64)
