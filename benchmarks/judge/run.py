"""The judge benchmark: our canary judge against two peers on the same simulated canaries.

``mlplat bench judge --out FILE`` calls :func:`run_judge_benchmark`, which runs
:func:`benchmarks.judge.simulation.run_simulation` and writes one JSON file with, per judge and
scenario, the false rollback rate (the ``null`` scenario, checked after every window), detection
rate and time to detect for the regressions, and how the other canaries ended (promoted,
paused); then the configuration, the machine, the wall time, and a ``goals`` section that checks
the issue's goals against those numbers (:mod:`benchmarks.judge.goals`). :func:`format_table`
renders the figures for a terminal.

Time to detect counts windows from the canary's start to its rollback; a canary never rolled back
counts as never detected, so the median exists only when at least half the canaries are caught.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.judge.batch_judges import BatchJudge, argo_judge, default_judges
from benchmarks.judge.goals import judge_goals
from benchmarks.judge.quality import labels_needed
from benchmarks.judge.scenarios import Scenario, SimulationParams, Traffic
from benchmarks.judge.simulation import JudgeOutcome, run_simulation
from benchmarks.report import BenchmarkError, Column, machine, text_table, verdict, write_result
from monitoring.judge import JudgeConfig, VerdictCode

__all__ = ["format_table", "run_judge_benchmark", "summarise"]

COMMAND = "mlplat bench judge --out FILE"
SENSITIVITY = "argo[failureLimit=1]"
NOTES = (
    "Every judge is checked after every window; a canary's first terminal verdict ends it.",
    "One window is one minute of traffic (the controller's judge_window_seconds). Ours "
    "acts through the controller's rules: no promotion before 15 windows and 1,000 canary "
    "requests, the circuit breaker (>= 50% canary errors over >= 50 requests in a "
    "window) rolls back without the judge; it may extend a canary up to "
    "max_windows * extension_factor windows. The peers run peer_windows windows.",
    "rollback_rate is the false rollback rate in the healthy scenarios and the detection "
    "rate in the regressions; inconclusive_rate is the share of canaries paused (a person "
    "paged); median/p90 windows to rollback count undetected canaries as never detected.",
    "The peers monitor error rate and p95 latency, the metrics their documentation's "
    "examples use; delayed-label quality is not among them, so their quality rows are "
    "what those metrics see.",
    "Kayenta compares the canary with a canary-sized baseline (a random share of the "
    "champion's traffic), as its documentation requires; Argo reads the canary alone.",
    "Scenarios marked extra are reported, not used by the goals.",
    "quality_labels_needed: how many labelled canary predictions the quality signal "
    "would need to roll each quality scenario back, from the binormal model's exact "
    "log-loss moments.",
)
"""What a reader of the JSON file needs to know to read its figures."""


def _quantile_or_none(values: np.ndarray[Any, np.dtype[np.float64]], q: float) -> float | None:
    """The ``q`` quantile, or ``None`` when it is infinite (fewer than ``q`` of runs detected)."""
    value = float(np.quantile(values, q, method="inverted_cdf"))
    return value if math.isfinite(value) else None


def _wilson(successes: int, trials: int, z: float = 1.959963984540054) -> list[float]:
    if trials == 0:
        return [0.0, 1.0]
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return [max(0.0, centre - half), min(1.0, centre + half)]


def summarise(outcome: JudgeOutcome) -> dict[str, Any]:
    """Rates and detection times of one judge on one scenario."""
    runs = int(outcome.verdict.size)
    verdict, window = outcome.verdict, outcome.window.astype(np.float64)

    def share(code: VerdictCode) -> float:
        return float(np.mean(verdict == code))

    def conditional_median(code: VerdictCode) -> float | None:
        picked = window[verdict == code]
        return float(np.median(picked)) if picked.size else None

    to_detect = np.where(verdict == VerdictCode.ROLLBACK, window, np.inf)
    rollbacks = int(np.sum(verdict == VerdictCode.ROLLBACK))
    return {
        "runs": runs,
        "rollback_rate": rollbacks / runs,
        "rollback_rate_95ci": _wilson(rollbacks, runs),
        "median_windows_to_rollback": _quantile_or_none(to_detect, 0.5),
        "p90_windows_to_rollback": _quantile_or_none(to_detect, 0.9),
        "promote_rate": share(VerdictCode.PROMOTE),
        "median_windows_to_promote": conditional_median(VerdictCode.PROMOTE),
        "inconclusive_rate": share(VerdictCode.INCONCLUSIVE),
        "median_windows_to_inconclusive": conditional_median(VerdictCode.INCONCLUSIVE),
        "undecided_rate": share(VerdictCode.CONTINUE),
        "stopped_rate": float(
            np.mean((verdict == VerdictCode.ROLLBACK) | (verdict == VerdictCode.INCONCLUSIVE))
        ),
    }


def _argo_sensitivity(params: SimulationParams) -> list[BatchJudge]:
    """Argo with ``failureLimit: 1``: faster to fail, and to fail wrongly."""
    return [argo_judge(params, failure_limit=1, name=SENSITIVITY)]


def _scenario_dict(scenario: Scenario) -> dict[str, Any]:
    """The scenario's settings, with only the traffic fields that differ from the default."""
    fields = asdict(scenario)
    traffic = fields.pop("traffic")
    default = asdict(Traffic())
    fields["traffic"] = {k: v for k, v in traffic.items() if default[k] != v}
    fields.pop("name")
    return fields


def run_judge_benchmark(
    out: Path,
    *,
    runs: int = 1000,
    seed: int = 20240917,
    params: SimulationParams | None = None,
) -> dict[str, Any]:
    """Run the judge benchmark and write its figures to ``out`` (JSON, written atomically).

    Args:
        out: Where to write the JSON (parent directories are created).
        runs: Simulated canaries per scenario (each judged by every judge).
        seed: Seed of the simulation.
        params: Every simulation parameter (then ``runs`` and ``seed`` are ignored); the default
            is :class:`~benchmarks.judge.scenarios.SimulationParams` with ``runs`` and ``seed``.

    Returns:
        The figures written.

    Raises:
        BenchmarkError: ``runs`` out of range.
    """
    params = params or SimulationParams(seed=seed, runs=runs)
    if params.runs < 10:
        raise BenchmarkError(f"runs must be >= 10 to estimate rates, got {params.runs}")
    judges = default_judges(params)
    sensitivity = _argo_sensitivity(params)
    started = time.perf_counter()
    outcomes = run_simulation(params, [*judges, *sensitivity])
    wall = time.perf_counter() - started
    table = {
        judge: {scenario: summarise(outcome) for scenario, outcome in by_scenario.items()}
        for judge, by_scenario in outcomes.items()
    }
    main = {j.name: table[j.name] for j in judges}
    ours_config = JudgeConfig()
    quality = {s.name: labels_needed(s, ours_config) for s in params.scenarios if s.auc_change < 0}
    result: dict[str, Any] = {
        "benchmark": "judge",
        "command": COMMAND,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_time_s": round(wall, 2),
        "machine": machine("numpy", "scipy"),
        "parameters": params.to_dict(),
        "judges": {j.name: j.settings() for j in judges},
        "results": main,
        "scenarios": {
            s.name: {"healthy": not s.regression, "extra": s.extra, **_scenario_dict(s)}
            for s in params.scenarios
        },
        "goals": judge_goals(main, params.scenarios),
        "quality_labels_needed": quality,
        "sensitivity": {
            SENSITIVITY: {"settings": sensitivity[0].settings(), "results": table[SENSITIVITY]}
        },
        "notes": list(NOTES),
    }
    write_result(result, out)
    return result


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _windows(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


_COLUMNS = (
    Column("scenario", 42, left=True), Column("judge", 8, left=True), Column("rollback", 9),
    Column("median", 6), Column("p90", 4), Column("promote", 8), Column("paused", 7),
    Column("open", 6),
)  # fmt: skip


def _row(scenario: str, judge: str, row: Mapping[str, Any]) -> list[str]:
    return [
        scenario,
        judge,
        _pct(row["rollback_rate"]),
        _windows(row["median_windows_to_rollback"]),
        _windows(row["p90_windows_to_rollback"]),
        _pct(row["promote_rate"]),
        _pct(row["inconclusive_rate"]),
        _pct(row["undecided_rate"]),
    ]


def format_table(result: Mapping[str, Any]) -> str:
    """A plain-text table of a benchmark result, one row per scenario and judge."""
    results: Mapping[str, Mapping[str, Mapping[str, Any]]] = result["results"]
    rows = [
        _row(scenario, judge, by_scenario[scenario])
        for scenario in next(iter(results.values()))
        for judge, by_scenario in results.items()
    ]
    lines = [text_table(_COLUMNS, rows), ""]
    for name, goal in result["goals"].items():
        lines.append(f"goal {name.replace('_', ' ')}: {verdict(goal['met'])}")
    params, described = result["parameters"], result["machine"]
    lines.append(
        f"{params['runs']} canaries per scenario, up to {params['windows']} one-minute windows "
        f"each; wall time {result['wall_time_s']} s on {described['cpus']} CPUs"
    )
    return "\n".join(lines)
