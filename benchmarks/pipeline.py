"""The pipeline benchmark: wall time of a full run (data → register) at the default data size.

``mlplat bench pipeline --out FILE`` calls :func:`run_pipeline_benchmark` in a fresh store. The
first run bootstraps a champion and is reported apart (it also pays one-off imports); the timed
runs that follow each compare a new candidate with that champion, which is the normal CI case
and the slower one (the champion is loaded and scored, and the paired bootstrap runs).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.report import machine
from ci import RunRequest, run_pipeline
from ci.runner import open_experiment
from pipeline import PipelineConfig, load_config
from pipeline.sources import GeneratedData
from registry import RegistrySettings, open_registry

__all__ = ["PIPELINE_GOAL_SECONDS", "run_pipeline_benchmark"]

PIPELINE_GOAL_SECONDS = 60.0
"""Issue goal: a full pipeline run at the default data size takes at most a minute."""


def run_pipeline_benchmark(runs: int, config: PipelineConfig | None = None) -> dict[str, Any]:
    """Time ``runs`` full pipeline runs against a champion, after one bootstrap run.

    Args:
        runs: Timed runs against the champion (the median is judged against the goal).
        config: The pipeline's parameters; the default configuration (and data size) if
            ``None``, which is what the goal is about.

    Returns:
        The figures, for ``mlplat bench pipeline`` to write.
    """
    config = config or load_config(None)
    with tempfile.TemporaryDirectory(prefix="mlplat-bench-") as home:
        settings = RegistrySettings(home=Path(home), actor="mlplat-bench")
        registry = open_registry(settings)
        experiment_id = open_experiment(settings)

        def timed(seed: int) -> tuple[float, str]:
            started = time.perf_counter()
            summary = run_pipeline(
                RunRequest(seed=seed, reason="benchmark"),
                GeneratedData(config.data.n_rows, seed),
                config=config,
                registry=registry,
                tracking_uri=settings.tracking_uri,
                experiment_id=experiment_id,
            )
            return time.perf_counter() - started, summary.outcome

        bootstrap_seconds, _ = timed(42)
        samples = [timed(1000 + i) for i in range(runs)]
    seconds = [s for s, _ in samples]
    median = statistics.median(seconds)
    return {
        "benchmark": "pipeline",
        "command": f"mlplat bench pipeline --runs {runs}",
        "data_rows": config.data.n_rows,
        "bootstrap_run_seconds": round(bootstrap_seconds, 2),
        "runs_against_champion_seconds": [round(s, 2) for s in seconds],
        "outcomes": [o for _, o in samples],
        "median_seconds": round(median, 2),
        "goal_seconds": PIPELINE_GOAL_SECONDS,
        "goal_met": median <= PIPELINE_GOAL_SECONDS,
        "machine": machine(),
    }
