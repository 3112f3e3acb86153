"""The pipeline benchmark: a bootstrap run, then timed runs against the champion."""

from __future__ import annotations

import json

import pytest

from benchmarks.pipeline import PIPELINE_GOAL_SECONDS, run_pipeline_benchmark
from pipeline import DataConfig, load_config

pytestmark = [pytest.mark.unit, pytest.mark.slow]


def test_the_benchmark_reports_runs_against_a_champion_and_the_goal() -> None:
    """Tiny data: one timed run after the bootstrap, its outcome, median and the goal verdict."""
    config = load_config(None)
    tiny = config.model_copy(update={"data": DataConfig(n_rows=2_000, seed=5)})
    result = run_pipeline_benchmark(1, tiny)
    assert result["data_rows"] == 2_000
    assert len(result["runs_against_champion_seconds"]) == 1
    assert result["outcomes"][0] in {"registered", "rejected"}
    assert result["median_seconds"] == result["runs_against_champion_seconds"][0]
    assert result["goal_seconds"] == PIPELINE_GOAL_SECONDS
    assert result["goal_met"] == (result["median_seconds"] <= PIPELINE_GOAL_SECONDS)
    assert result["machine"]["cpus"] >= 1
    json.dumps(result)
