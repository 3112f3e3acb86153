"""The serving benchmark's goals, judged on ratios from one run.

* the service reaches at least 3x the naive throughput at concurrency 32, without a worse p99;
* turning metrics and the inference log off changes throughput by at most 5%, judged on the
  median of side-by-side pairs (:func:`instrumentation_change`).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from benchmarks.serving.load import LoadResult

__all__ = [
    "GOAL_CONCURRENCY",
    "INSTRUMENTATION_GOAL",
    "THROUGHPUT_GOAL",
    "instrumentation_change",
    "serving_goals",
]

THROUGHPUT_GOAL = 3.0
"""The service must serve at least this many times the naive requests/s at concurrency 32."""
INSTRUMENTATION_GOAL = 0.05
"""Largest relative throughput change from turning metrics and the inference log off."""
GOAL_CONCURRENCY = 32


def _quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def instrumentation_change(on: Sequence[LoadResult], off: Sequence[LoadResult]) -> dict[str, Any]:
    """Compare the service with and without metrics and inference log, pair by pair.

    Each pair ran side by side (:func:`simultaneous_runs`), so the ratio of a pair cancels the
    machine's drift; the median over pairs is the estimate and the interquartile range shows
    what is left of the noise. Positive numbers are a cost (fewer requests/s, more CPU per
    request). The verdict is ``met`` when the median is within the goal, ``missed`` when even
    the interquartile range lies outside it, and ``inconclusive`` otherwise.
    """
    pairs = list(zip(on, off, strict=True))
    throughput = [1.0 - a.requests_per_second / b.requests_per_second for a, b in pairs]
    cpu = [
        a.cpu_us_per_request / b.cpu_us_per_request - 1.0
        for a, b in pairs
        if a.cpu_us_per_request and b.cpu_us_per_request
    ]
    q1, median, q3 = _quartiles(throughput)
    change: dict[str, Any] = {
        "pairs": len(throughput),
        "throughput_cost": median,
        "throughput_cost_iqr": [q1, q3],
        "pairs_detail": [{"on": asdict(a), "off": asdict(b)} for a, b in zip(on, off, strict=True)],
    }
    if cpu:
        change["cpu_cost"] = statistics.median(cpu)
    if abs(median) <= INSTRUMENTATION_GOAL:
        change["verdict"] = "met"
    elif q1 > INSTRUMENTATION_GOAL or q3 < -INSTRUMENTATION_GOAL:
        change["verdict"] = "missed"
    else:
        change["verdict"] = "inconclusive"
    return change


def serving_goals(
    http: dict[str, dict[str, dict[str, Any]]],
    instrumentation: dict[str, Any],
    instrumentation_cpu_us: float,
) -> dict[str, Any]:
    """The goals at concurrency 32: throughput and p99 ratios, instrumentation cost and CPU."""
    key = str(GOAL_CONCURRENCY)
    goals: dict[str, Any] = {}
    naive, service = http["naive"].get(key), http["service"].get(key)
    if naive and service:
        ratio = service["requests_per_second"] / naive["requests_per_second"]
        goals["throughput_ratio"] = ratio
        goals["p99_ratio"] = service["p99_ms"] / naive["p99_ms"]
        goals["throughput_goal_met"] = ratio >= THROUGHPUT_GOAL
        goals["p99_goal_met"] = service["p99_ms"] <= naive["p99_ms"]
    goals["instrumentation"] = instrumentation
    goals["instrumentation_goal_met"] = instrumentation["verdict"] == "met"
    goals["instrumentation_cpu_us_per_request"] = instrumentation_cpu_us
    if service and service.get("cpu_us_per_request"):
        goals["instrumentation_cpu_share"] = instrumentation_cpu_us / service["cpu_us_per_request"]
    return goals
