"""``mlplat bench judge-log``: the judge on the controller's log path, written to a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.cli import bench
from benchmarks.judge_log import LogScenario, format_table, run_log_judge_benchmark
from benchmarks.log_traffic import Traffic

pytestmark = pytest.mark.unit


def test_the_benchmark_writes_each_scenarios_outcome_shares_and_goal(tmp_path: Path) -> None:
    """A healthy and a broken canary: shares add up, the goal is judged on the healthy one."""
    scenarios = (
        LogScenario("null", False, Traffic(rows_per_window=400, customers=500), 10),
        LogScenario("error +20 points", True, Traffic(rows_per_window=400, canary_error=0.2), 0),
    )
    out = tmp_path / "judge-log.json"
    report = run_log_judge_benchmark(out, runs=2, scenarios=scenarios)
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    null, broken = report["scenarios"]
    for row in (null, broken):
        assert sum(row["outcomes"].values()) == pytest.approx(1.0)
    assert broken["outcomes"] == {"rollback": 1.0}
    assert broken["goal"] is None
    assert null["goal"]["met"] == (null["outcomes"].get("rollback", 0.0) <= 0.01)
    assert "error +20 points" in format_table(report)


def test_the_command_refuses_a_missing_out_with_a_message() -> None:
    """A missing --out is a usage error naming the option, not a stack trace."""
    result = CliRunner().invoke(bench, ["judge-log"])
    assert result.exit_code == 2
    assert "--out" in result.output
