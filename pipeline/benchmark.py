"""Wall-time benchmark of the full pipeline at the configured (default) data size.

The figures are returned, not asserted: the caller (``mlplat bench pipeline``) writes them to a
file, and the goal is checked there. The first run in a process pays one-off imports (Great
Expectations alone takes seconds), so it is reported apart from the warm runs.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.data import generate
from pipeline.pipeline import run

GOAL_SECONDS = 60.0
"""The goal for one full run (generate → gate, champion included) at the default size."""


@dataclass(frozen=True)
class BenchmarkResult:
    """Timings of repeated full runs.

    Attributes:
        rows: Rows generated per run.
        cold_seconds: The first run in the process (includes one-off imports).
        warm_seconds: Each later run, against the first run's model as champion.
        stage_seconds: Median seconds per stage over the warm runs.
        goal_seconds: The goal for one run.
        within_goal: Whether the cold run and every warm run met the goal.
        machine: CPU count, platform and library versions the figures come from.
    """

    rows: int
    cold_seconds: float
    warm_seconds: list[float]
    stage_seconds: dict[str, float]
    goal_seconds: float
    within_goal: bool
    machine: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form."""
        return asdict(self)


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{name: version(name) for name in ("scikit-learn", "great-expectations", "pandas")},
    }


def benchmark(cfg: PipelineConfig, repeats: int = 3) -> BenchmarkResult:
    """Time ``repeats`` full runs (data generation included) with ``cfg``.

    The first run has no champion; later runs use the other seeds' data and the first model as
    champion, so they also pay for the champion's evaluation and the paired bootstrap.

    Args:
        cfg: The configuration; ``cfg.data.n_rows`` sets the size.
        repeats: Runs in total (at least 2: one cold, the rest warm).

    Returns:
        The timings.

    Raises:
        ValueError: ``repeats`` is below 2.
    """
    if repeats < 2:
        raise ValueError(f"repeats must be at least 2 (one cold, one warm run), got {repeats}")
    start = time.perf_counter()
    first = run(generate(cfg.data.n_rows, cfg.data.seed), cfg, None)
    cold = time.perf_counter() - start
    warm: list[float] = []
    stages: dict[str, list[float]] = {}
    for offset in range(1, repeats):
        seed = cfg.data.seed + offset
        seeded = cfg.model_copy(update={"data": cfg.data.model_copy(update={"seed": seed})})
        start = time.perf_counter()
        result = run(generate(cfg.data.n_rows, seed), seeded, first.model)
        warm.append(time.perf_counter() - start)
        for stage, seconds in result.timings.items():
            stages.setdefault(stage, []).append(seconds)
    return BenchmarkResult(
        rows=cfg.data.n_rows,
        cold_seconds=cold,
        warm_seconds=warm,
        stage_seconds={stage: statistics.median(times) for stage, times in stages.items()},
        goal_seconds=GOAL_SECONDS,
        within_goal=max([cold, *warm]) <= GOAL_SECONDS,
        machine=_machine(),
    )
