"""The simulation runs every judge on the same canaries; the benchmark writes its figures."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.judge.batch_judges import OurBatchJudge, default_judges
from benchmarks.judge.run import format_table, run_judge_benchmark
from benchmarks.judge.scenarios import DEFAULT_SCENARIOS, Scenario, SimulationParams, Traffic
from benchmarks.judge.simulation import run_simulation
from benchmarks.judge.window_data import WindowData
from benchmarks.report import BenchmarkError
from monitoring.judge import CanaryEvidence, JudgeConfig, VerdictCode
from monitoring.judge.evidence import MeanEvidence

pytestmark = pytest.mark.unit

SMALL = {"windows": 8, "peer_windows": 8, "baseline_windows": 20, "clusters": 16}


def test_simulation_is_reproducible_from_its_seed() -> None:
    """Same parameters and seed, same verdicts for every judge."""
    params = SimulationParams(
        runs=30,
        scenarios=(Scenario("error+3pt", regression=True, error_rate_increase=0.03),),
        **SMALL,  # type: ignore[arg-type]
    )
    first = run_simulation(params)
    second = run_simulation(params)
    for judge in ("ours", "argo", "kayenta"):
        assert np.array_equal(first[judge]["error+3pt"].verdict, second[judge]["error+3pt"].verdict)
        assert np.array_equal(first[judge]["error+3pt"].window, second[judge]["error+3pt"].window)


def test_every_judge_rolls_back_a_canary_with_ten_times_the_error_rate() -> None:
    """A gross regression is caught by all three judges within the canary's life."""
    params = SimulationParams(
        runs=40,
        scenarios=(Scenario("error+9pt", regression=True, error_rate_increase=0.09),),
        **SMALL,  # type: ignore[arg-type]
    )
    outcomes = run_simulation(params)
    for judge in ("ours", "argo", "kayenta"):
        assert np.all(outcomes[judge]["error+9pt"].verdict == VerdictCode.ROLLBACK), judge


def test_simulation_parameters_are_validated_by_name() -> None:
    """A bad knob is refused with its name and rule."""
    with pytest.raises(ValueError, match="canary_weight values must be in"):
        Traffic(canary_weight=(0.7,))
    with pytest.raises(ValueError, match="slices must sum to 1"):
        Traffic(slices=(0.5, 0.2))
    with pytest.raises(ValueError, match="canary AUC"):
        Scenario("x", auc_change=-0.3)
    with pytest.raises(ValueError, match="peer_windows must be in"):
        SimulationParams(windows=5, peer_windows=6)


def test_default_judges_state_their_settings() -> None:
    """Each judge reports the configuration its figures come from."""
    judges = default_judges(SimulationParams(windows=20, peer_windows=12))
    assert [j.name for j in judges] == ["ours", "argo", "kayenta"]
    argo = judges[1].settings()["analysis_template"]
    assert argo["count"] == 12  # type: ignore[index]
    assert argo["metrics"][0]["failure_limit"] == 3  # type: ignore[index]
    ours = judges[0].settings()
    assert ours["controller"]["min_canary_windows"] == 15  # type: ignore[index]


@dataclasses.dataclass
class _IndependentRequestsJudge(OurBatchJudge):
    """Our judge fed evidence without routing-key clusters or a baseline: requests as iid."""

    name: str = "iid"

    def judge_window(self, data: WindowData) -> np.ndarray:  # type: ignore[override]
        def strip(ev: MeanEvidence | None) -> MeanEvidence | None:
            if ev is None:
                return None
            return dataclasses.replace(
                ev,
                influence=np.zeros((ev.influence.shape[0], 1)),
                baseline_shift=None,
                baseline_sd=None,
            )

        e = data.evidence
        naive = CanaryEvidence(
            errors=strip(e.errors),  # type: ignore[arg-type]
            latency=strip(e.latency),
            latency_tail=strip(e.latency_tail),
            quality=strip(e.quality),
            scores=e.scores,
            slice_errors={k: strip(v) for k, v in e.slice_errors.items()},  # type: ignore[misc]
            slice_quality={k: strip(v) for k, v in e.slice_quality.items()},  # type: ignore[misc]
        )
        return super().judge_window(dataclasses.replace(data, evidence=naive))


@pytest.mark.slow
def test_clustered_customers_fool_an_iid_judge_but_not_ours() -> None:
    """Identical variants, sticky routing, customers who differ: iid inference rolls back."""
    clustered = next(s for s in DEFAULT_SCENARIOS if s.name == "null clustered clients")
    params = SimulationParams(
        runs=60, windows=30, peer_windows=10, baseline_windows=300, scenarios=(clustered,)
    )
    config = JudgeConfig()
    outcomes = run_simulation(params, [OurBatchJudge(config), _IndependentRequestsJudge(config)])
    ours = outcomes["ours"][clustered.name].verdict
    naive = outcomes["iid"][clustered.name].verdict
    assert np.mean(ours == VerdictCode.ROLLBACK) == 0.0
    assert np.mean(naive == VerdictCode.ROLLBACK) >= 0.1


def test_benchmark_writes_a_file_with_the_expected_keys(tmp_path: Path) -> None:
    """A small run writes complete JSON (atomically), the goals and a readable table."""
    out = tmp_path / "nested" / "judge.json"
    names = ("null", "error+3pt", "tail-only", "slice-only: +3 pt", "quality -0.02")
    scenarios = tuple(s for s in DEFAULT_SCENARIOS if s.name.startswith(names))
    params = SimulationParams(runs=10, seed=3, scenarios=scenarios, **SMALL)  # type: ignore[arg-type]
    result = run_judge_benchmark(out, params=params)
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(result))
    assert {
        "command", "wall_time_s", "machine", "parameters", "judges", "results", "goals",
        "scenarios", "quality_labels_needed", "sensitivity", "notes",
    } <= written.keys()  # fmt: skip
    assert written["machine"]["cpus"] >= 1
    assert set(written["results"]) == {"ours", "argo", "kayenta"}
    for judge in written["results"].values():
        assert {s.name for s in scenarios} == judge.keys()
        for row in judge.values():
            assert row["runs"] == 10
            total = row["rollback_rate"] + row["promote_rate"] + row["inconclusive_rate"]
            assert total + row["undecided_rate"] == pytest.approx(1.0)
    goals = written["goals"]
    assert set(goals) == {
        "healthy_canaries_false_rollbacks_and_pauses_at_most_1pct",
        "tail_and_slice_regressions_detected_at_least_90pct",
        "previous_detection_no_worse",
        "no_more_false_rollbacks_than_peers_no_slower",
    }
    assert all(isinstance(goal["met"], bool) for goal in goals.values())
    assert not list(out.parent.glob("*.tmp"))
    table = format_table(result)
    assert "tail-only" in table
    assert "goal healthy canaries" in table


def test_benchmark_refuses_too_few_runs(tmp_path: Path) -> None:
    """Rates from a handful of canaries mean nothing; the argument is named."""
    with pytest.raises(BenchmarkError, match="runs must be >= 10"):
        run_judge_benchmark(tmp_path / "x.json", runs=2)
    assert not (tmp_path / "x.json").exists()
