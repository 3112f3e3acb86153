from __future__ import annotations

import json

import pytest

from pipeline.benchmark import GOAL_SECONDS, benchmark
from pipeline.config import DataConfig, PipelineConfig

pytestmark = [pytest.mark.unit, pytest.mark.slow]


def test_the_benchmark_reports_cold_and_warm_runs_against_the_goal(
    tiny_cfg: PipelineConfig,
) -> None:
    """The benchmark reports cold, warm and per-stage seconds, the goal and the machine."""
    cfg = tiny_cfg.model_copy(update={"data": DataConfig(n_rows=1_500, seed=5)})
    result = benchmark(cfg, repeats=2)
    assert result.rows == 1_500
    assert result.cold_seconds > 0
    assert len(result.warm_seconds) == 1
    assert set(result.stage_seconds) == {"validate", "split", "train", "evaluate", "gate"}
    assert result.goal_seconds == GOAL_SECONDS
    assert result.within_goal == (max(result.cold_seconds, *result.warm_seconds) <= GOAL_SECONDS)
    assert result.machine["cpus"]
    json.dumps(result.to_dict())


def test_the_benchmark_needs_a_warm_run(tiny_cfg: PipelineConfig) -> None:
    """The benchmark refuses fewer than two repeats (no warm run)."""
    with pytest.raises(ValueError, match="at least 2"):
        benchmark(tiny_cfg, repeats=1)
