"""Benchmarks that measure the platform from outside its components.

Each benchmark writes its figures, and the machine they came from, to a file that the write-ups
quote (``mlplat bench …``, :mod:`benchmarks.cli`). They use the components and live here, not
inside them, so that copying ``serving/`` or ``monitoring/`` copies no benchmark code; no
component imports this package.

- :mod:`benchmarks.judge` — our canary judge against Argo- and Kayenta-style peers on simulated
  canaries (``mlplat bench judge``);
- :mod:`benchmarks.judge_log` with :mod:`benchmarks.log_traffic` — the judge on the
  controller's own input path, logged rows to verdict (``mlplat bench judge-log``);
- :mod:`benchmarks.serving` — the service against a naive endpoint, and what its
  instrumentation costs (``mlplat bench serve``);
- :mod:`benchmarks.store` — where deployment events should live (``mlplat bench store``);
- :mod:`benchmarks.race` — processes racing the registry's alias moves
  (``mlplat bench registry-race``, and the integration tests);
- :mod:`benchmarks.pipeline` — a full pipeline run's wall time (``mlplat bench pipeline``);
- :mod:`benchmarks.report` — what every report shares: machine, goals, tables, the JSON file.

The names below are imported on first use, so ``mlplat bench --help`` loads no benchmark.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.judge.run import run_judge_benchmark
    from benchmarks.judge_log import run_log_judge_benchmark
    from benchmarks.pipeline import run_pipeline_benchmark
    from benchmarks.race.run import run_race_benchmark
    from benchmarks.report import BenchmarkError
    from benchmarks.serving.run import run_serving_benchmark
    from benchmarks.store.run import run_store_benchmark

_EXPORTS: dict[str, str] = {
    "BenchmarkError": "benchmarks.report",
    "run_judge_benchmark": "benchmarks.judge.run",
    "run_log_judge_benchmark": "benchmarks.judge_log",
    "run_pipeline_benchmark": "benchmarks.pipeline",
    "run_race_benchmark": "benchmarks.race.run",
    "run_serving_benchmark": "benchmarks.serving.run",
    "run_store_benchmark": "benchmarks.store.run",
}

__all__ = [
    "BenchmarkError",
    "run_judge_benchmark",
    "run_log_judge_benchmark",
    "run_pipeline_benchmark",
    "run_race_benchmark",
    "run_serving_benchmark",
    "run_store_benchmark",
]


def __getattr__(name: str) -> object:
    """Import a public name's module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'benchmarks' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
