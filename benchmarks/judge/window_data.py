"""What every judge may read after one simulated window: the contract between world and judges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitoring.judge import CanaryEvidence

__all__ = ["StepCounters", "WindowData", "concat_steps"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


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


def concat_steps(parts: Sequence[StepCounters]) -> StepCounters:
    """Join per-step counters of consecutive windows along the step axis."""
    if len(parts) == 1:
        return parts[0]
    return StepCounters(
        requests=np.concatenate([p.requests for p in parts], axis=1),
        errors=np.concatenate([p.errors for p in parts], axis=1),
        latency_buckets=np.concatenate([p.latency_buckets for p in parts], axis=1),
    )
