"""Benchmarks that measure the platform from outside its components.

Each benchmark writes its figures, and the machine they came from, to a file that the write-ups
quote (``mlplat bench …``). They use the components' public APIs and live here, not inside the
components, so that copying ``serving/`` or ``monitoring/`` copies no benchmark code.
"""

from benchmarks.judge_log import LogScenario, run_log_judge_benchmark
from benchmarks.log_traffic import Traffic, World, as_records

__all__ = ["LogScenario", "Traffic", "World", "as_records", "run_log_judge_benchmark"]
