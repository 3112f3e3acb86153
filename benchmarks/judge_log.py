"""The canary judge on the controller's own input path: logged rows → evidence → verdict.

``mlplat bench judge`` measures the judge on simulated *evidence*
(``benchmarks/judge/simulation.py``), which is fast enough for thousands of canaries. This
benchmark measures what the deployed controller does instead: rows as the service logs them
(``benchmarks/log_traffic.py``: sticky customers of unequal size and behaviour, routed by the
service's own hash), turned into evidence by
``monitoring/judge/log_evidence.py::build_evidence`` after every judge window — including the
weight read off the rows, the baseline rule and the tail threshold — and judged by
``monitoring/judge/judge.py::CanaryJudge`` with its default configuration, until it acts or the
window cap. It is slower (every row is real), so it runs fewer canaries per scenario.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.log_traffic import Traffic, World
from benchmarks.report import Column, goal, machine, text_table, write_result
from monitoring.judge import CanaryJudge, JudgeConfig, Verdict
from monitoring.judge.log_evidence import LogEvidenceParams, build_evidence, prepare_baseline

__all__ = ["DEFAULT_SCENARIOS", "LogScenario", "run_log_judge_benchmark"]

_START = 1_800_000_000.0
_LABEL_COLUMNS = (
    "ts", "variant", "model_version", "routing_hash", "slice", "probability", "label",
    "received_ts",
)  # fmt: skip
FALSE_ROLLBACK_GOAL = 0.01
"""Issue 9's goal for every healthy scenario: at most 1 % of canaries rolled back."""


@dataclass(frozen=True)
class LogScenario:
    """One kind of canary and the traffic it meets.

    Attributes:
        name: Short label used in the report.
        regression: Whether rolling back is the right answer.
        traffic: The traffic and what the canary changes.
        baseline_windows: Windows of the champion's traffic before the canary (0: none, as
            right after a promotion).
    """

    name: str
    regression: bool
    traffic: Traffic
    baseline_windows: int = 120


def _ramp(k: int) -> float:
    return 0.05 if k < 5 else 0.2 if k < 10 else 0.5


def _clustered(**changes: Any) -> Traffic:
    """Three hundred customers of unequal size, error rate and latency (the B2B shape)."""
    return replace(Traffic(customer_error_sd=1.0, customer_latency_sd=0.5), **changes)


DEFAULT_SCENARIOS: tuple[LogScenario, ...] = (
    LogScenario("null clustered customers", False, _clustered()),
    LogScenario("null clustered, no baseline", False, _clustered(), 0),
    LogScenario(
        "null 60 heavy customers, no baseline",
        False,
        Traffic(customers=60, customer_error_sd=1.5, customer_latency_sd=0.8),
        0,
    ),
    LogScenario(
        "null ramp 5/20/50% under shared drift",
        False,
        Traffic(drift_error=0.002, customers=2000, weight=_ramp),
    ),
    LogScenario("null low traffic", False, _clustered(rows_per_window=300)),
    LogScenario("error +3 points", True, _clustered(canary_error=0.03)),
    LogScenario("error +1 point", True, _clustered(canary_error=0.01)),
    LogScenario(
        "slice-only: +10 points on the 10% slice",
        True,
        _clustered(canary_slice_error=("small_business", 0.10)),
    ),
)


@dataclass
class _Tally:
    outcomes: dict[str, int] = field(default_factory=dict)
    windows: list[int] = field(default_factory=list)

    def add(self, outcome: str, window: int) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if outcome != "continue":
            self.windows.append(window)


def _one_canary(
    scenario: LogScenario, seed: int, judge: CanaryJudge, params: LogEvidenceParams, cap: int
) -> tuple[str, int]:
    """Run one canary to its first action or the window cap; return (outcome, window)."""
    world = World(scenario.traffic, seed=seed)
    window = scenario.traffic.window_seconds
    baseline = None
    if scenario.baseline_windows:
        before = world.rows(_START - scenario.baseline_windows * window, scenario.baseline_windows,
                            canary=False)  # fmt: skip
        baseline = prepare_baseline(before, champion=1, canary=2)
    rows = world.rows(_START, cap)
    labels = pd.DataFrame({c: [] for c in _LABEL_COLUMNS})
    for k in range(1, cap + 1):
        evidence = build_evidence(
            rows, labels, baseline, champion=1, canary=2, started=_START,
            now=_START + k * window, params=params,
        )  # fmt: skip
        verdict = judge.evaluate(evidence, window=k).verdict
        if verdict is not Verdict.CONTINUE:
            return verdict.value, k
    return "continue", cap


def run_log_judge_benchmark(
    out: Path,
    *,
    runs: int = 100,
    seed: int = 20261205,
    scenarios: Sequence[LogScenario] = DEFAULT_SCENARIOS,
) -> dict[str, Any]:
    """Judge ``runs`` canaries per scenario through the log path and write the figures.

    Args:
        out: Where the JSON report goes.
        runs: Canaries per scenario.
        seed: First seed; canary ``i`` of every scenario uses ``seed + i``.
        scenarios: What to run.
    """
    config = JudgeConfig()
    judge = CanaryJudge(config)
    cap = config.max_windows
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for scenario in scenarios:
        params = LogEvidenceParams(window_seconds=scenario.traffic.window_seconds)
        tally = _Tally()
        began = time.perf_counter()
        for i in range(runs):
            outcome, window = _one_canary(scenario, seed + i, judge, params, cap)
            tally.add(outcome, window)
        share = {k: v / runs for k, v in sorted(tally.outcomes.items())}
        rows.append(_row(scenario, share, tally, time.perf_counter() - began))
    report = {
        "benchmark": "canary judge on the controller's log path",
        "command": f"mlplat bench judge-log --out {out} --runs {runs}",
        "runs_per_scenario": runs,
        "window_cap": cap,
        "seed": seed,
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 1),
        "scenarios": rows,
        "note": (
            "Outcomes within the window cap (max_windows): 'inconclusive' is a pause that pages "
            "a person; 'continue' is a canary still undecided at the cap, which the controller "
            "extends quietly (it does not page). Labels are not simulated here: the quality "
            "signals are covered by `mlplat bench judge`."
        ),
    }
    write_result(report, out)
    return report


def _row(
    scenario: LogScenario, share: dict[str, float], tally: _Tally, seconds: float
) -> dict[str, Any]:
    verdict = None
    if not scenario.regression:
        verdict = goal(
            share.get("rollback", 0.0) <= FALSE_ROLLBACK_GOAL,
            false_rollback_at_most=FALSE_ROLLBACK_GOAL,
        )
    return {
        "scenario": scenario.name,
        "regression": scenario.regression,
        "baseline_windows": scenario.baseline_windows,
        "customers": scenario.traffic.customers,
        "rows_per_window": scenario.traffic.rows_per_window,
        "outcomes": share,
        "median_decision_window": float(np.median(tally.windows)) if tally.windows else None,
        "goal": verdict,
        "seconds": round(seconds, 1),
    }


_COLUMNS = (
    Column("scenario", 45, left=True),
    Column("rollback", 9),
    Column("promote", 8),
    Column("paused", 7),
    Column("open", 6),
)


def format_table(report: dict[str, Any]) -> str:
    """The report as a plain-text table."""
    outcomes = ("rollback", "promote", "inconclusive", "continue")
    rows = [
        [row["scenario"], *(f"{row['outcomes'].get(k, 0):.1%}" for k in outcomes)]
        for row in report["scenarios"]
    ]
    return text_table(_COLUMNS, rows)
