"""The simulation runs every judge on the same canaries; the benchmark writes its figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monitoring.bench import BenchmarkError, format_table, run_judge_benchmark
from monitoring.judge import VerdictCode
from monitoring.simulation import Scenario, SimulationParams, default_judges, run_simulation

pytestmark = pytest.mark.unit


def test_simulation_is_reproducible_from_its_seed() -> None:
    """Same parameters and seed, same verdicts for every judge."""
    params = SimulationParams(
        runs=30, windows=6, scenarios=(Scenario("error+3pt", error_rate_increase=0.03),)
    )
    first = run_simulation(params)
    second = run_simulation(params)
    for judge in ("ours", "argo", "kayenta"):
        assert np.array_equal(first[judge]["error+3pt"].verdict, second[judge]["error+3pt"].verdict)
        assert np.array_equal(first[judge]["error+3pt"].window, second[judge]["error+3pt"].window)


def test_every_judge_rolls_back_a_canary_with_ten_times_the_error_rate() -> None:
    """A gross regression is caught by all three judges within the canary's life."""
    params = SimulationParams(
        runs=40, windows=8, scenarios=(Scenario("error+9pt", error_rate_increase=0.09),)
    )
    outcomes = run_simulation(params)
    for judge in ("ours", "argo", "kayenta"):
        assert np.all(outcomes[judge]["error+9pt"].verdict == VerdictCode.ROLLBACK), judge


def test_simulation_parameters_are_validated_by_name() -> None:
    """A bad knob is refused with its name and rule."""
    with pytest.raises(ValueError, match="canary_weight must be in"):
        SimulationParams(canary_weight=0.7)
    with pytest.raises(ValueError, match="canary AUC"):
        SimulationParams(scenarios=(Scenario("x", auc_change=-0.3),))


def test_default_judges_state_their_settings() -> None:
    """Each judge reports the configuration its figures come from."""
    judges = default_judges(SimulationParams(windows=12))
    assert [j.name for j in judges] == ["ours", "argo", "kayenta"]
    argo = judges[1].settings()["analysis_template"]
    assert argo["count"] == 12  # type: ignore[index]
    assert argo["metrics"][0]["failure_limit"] == 3  # type: ignore[index]


def test_benchmark_writes_a_file_with_the_expected_keys(tmp_path: Path) -> None:
    """A small run writes complete JSON (atomically) and a readable table."""
    out = tmp_path / "nested" / "judge.json"
    result = run_judge_benchmark(out, runs=20, windows=5, seed=3)
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(result))
    assert {
        "command", "wall_time_s", "machine", "parameters", "judges", "results", "goals",
        "quality_labels_needed", "sensitivity", "notes",
    } <= written.keys()  # fmt: skip
    assert written["machine"]["cpu_count"] >= 1
    assert set(written["results"]) == {"ours", "argo", "kayenta"}
    scenarios = {"null", "error+1pt", "error+3pt", "latency x1.5", "quality -0.02 AUC"}
    for judge in written["results"].values():
        assert scenarios <= judge.keys()
        for row in judge.values():
            assert row["runs"] == 20
            assert 0.0 <= row["rollback_rate"] <= 1.0
            total = row["rollback_rate"] + row["promote_rate"] + row["inconclusive_rate"]
            assert total + row["undecided_rate"] == pytest.approx(1.0)
    goals = written["goals"]
    for goal in ("false_rollbacks_at_most_1pct", "detects_error_3pt_at_least_95pct",
                 "fewer_false_rollbacks_than_peers_no_slower"):  # fmt: skip
        assert isinstance(goals[goal]["met"], bool)
    assert not list(out.parent.glob("*.tmp"))
    table = format_table(result)
    assert "error+3pt" in table
    assert "goals:" in table


def test_benchmark_refuses_too_few_runs(tmp_path: Path) -> None:
    """Rates from a handful of canaries mean nothing; the argument is named."""
    with pytest.raises(BenchmarkError, match="runs must be >= 10"):
        run_judge_benchmark(tmp_path / "x.json", runs=2)
    assert not (tmp_path / "x.json").exists()
