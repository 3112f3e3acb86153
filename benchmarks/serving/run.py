"""``mlplat bench serve``: what the serving path costs, measured side by side in one run.

Three measurements on this machine, with the same model (trained here from
:func:`pipeline.data.generate`) and the same single-record request body:

a. **In-process limit** — ``predict_proba`` time per call and per row for 1, 8 and 64 rows;
   and the reference pipeline against the compiled inference path
   (:mod:`serving.inference_path`) at 1, 10, 100 and 1,000 records per call.
b. **Naive endpoint** (:func:`benchmarks.serving.apps.naive_app`) — one request, one ``DataFrame``,
   one ``predict_proba``.
c. **The real service** (:func:`benchmarks.serving.apps.service_app`), with metrics and the
   inference log on, and again with both off; each must serve through the compiled path (its
   ``/model`` says so, or the benchmark stops).

Each server runs as one uvicorn worker in its own process, pinned to one BLAS/OpenMP thread;
the load comes from ``wrk`` (one thread, its own process) at each concurrency. Targets are
interleaved within each round and the median over rounds is reported, so a noisy neighbour
slows all three alike instead of biasing one: the order alternates every round, and each run
starts only once the previous server has gone idle. The instrumentation cost, a few percent
and so easily drowned by a neighbour's noise, gets its own phase: the service with and
without metrics and log loaded *side by side* (two wrk processes at once, so both share the
same noise), repeated and judged on the median ratio, plus an in-process measurement of the
CPU the metrics and the log add per request. Goals are ratios from the same run:

* the service reaches at least 3x the naive throughput at concurrency 32, without a worse p99;
* turning metrics and the inference log off changes throughput by at most 5%.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks.report import (
    BenchmarkError,
    machine,
    write_result,
)
from benchmarks.serving.apps import MODEL_PATH_ENV
from benchmarks.serving.goals import (
    GOAL_CONCURRENCY,
    instrumentation_change,
    serving_goals,
)
from benchmarks.serving.in_process import (
    PATH_SIZES,
    measure_inference_paths,
    measure_instrumentation_cpu,
    measure_predict_proba,
    train_benchmark_model,
)
from benchmarks.serving.load import (
    LoadResult,
    measured_run,
    run_wrk,
    server,
    simultaneous_runs,
    wait_until_idle,
    wrk_version,
)
from benchmarks.serving.table import format_table
from features import FEATURE_NAMES
from serving.schemas import EXAMPLE_RECORD

__all__ = ["format_table", "run_serving_benchmark", "served_path"]

# format_table lives in benchmarks/serving/table.py; re-exported here, where callers look.

TARGETS: dict[str, tuple[str, dict[str, str]]] = {
    "naive": ("benchmarks.serving.apps:naive_app", {}),
    "service": ("benchmarks.serving.apps:service_app", {}),
    "service_uninstrumented": (
        "benchmarks.serving.apps:service_app",
        {
            "MLPLAT_SERVING_METRICS_ENABLED": "false",
            "MLPLAT_SERVING_INFERENCE_LOG_ENABLED": "false",
        },
    ),
}
"""Benchmark targets: name -> (uvicorn app factory, extra environment)."""
INSTRUMENTATION_PAIR = ("service", "service_uninstrumented")


def _request_body() -> str:
    return json.dumps({"records": [{name: EXAMPLE_RECORD[name] for name in FEATURE_NAMES}]})


def _wrk_script(directory: Path) -> Path:
    script = directory / "predict.lua"
    body = _request_body().replace("\\", "\\\\").replace("'", "\\'")
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = '{body}'\n",
        encoding="utf-8",
    )
    return script


def _median_result(results: list[LoadResult]) -> dict[str, Any]:
    cpu = [r.cpu_us_per_request for r in results if r.cpu_us_per_request is not None]
    return {
        "requests_per_second": statistics.median(r.requests_per_second for r in results),
        "p50_ms": statistics.median(r.p50_ms for r in results),
        "p99_ms": statistics.median(r.p99_ms for r in results),
        "cpu_us_per_request": statistics.median(cpu) if cpu else None,
        "errors": sum(r.errors for r in results),
        "rounds": [asdict(r) for r in results],
    }


@dataclass
class _Load:
    """The running servers and what loads them: ``wrk``, its script, the progress callback."""

    wrk: str
    script: Path
    say: Callable[[str], None]
    servers: dict[str, tuple[str, int]] = field(default_factory=dict)
    paths: dict[str, dict[str, str]] = field(default_factory=dict)

    def start(
        self, stack: contextlib.ExitStack, env: dict[str, str], workdir: Path, warmup: float
    ) -> None:
        """Start every target in its own process, warm it up and wait until it is idle."""
        for name, (factory, extra) in TARGETS.items():
            self.say(f"starting {name}")
            target_env = {**env, **extra, "MLPLAT_HOME": str(workdir / f"home-{name}")}
            ready = "/openapi.json" if name == "naive" else "/ready"
            base, pid = stack.enter_context(
                server(name, factory, target_env, workdir, ready, _request_body())
            )
            self.servers[name] = (base + "/predict", pid)
            if name != "naive":
                self.paths[name] = served_path(name, base)
            run_wrk(self.wrk, self.servers[name][0], self.script, 8, warmup)
            wait_until_idle(pid)

    def rounds(
        self, rounds: int, concurrencies: Sequence[int], seconds: float
    ) -> dict[str, dict[str, list[LoadResult]]]:
        """Every target at every concurrency, ``rounds`` times, interleaved."""
        samples: dict[str, dict[str, list[LoadResult]]] = {
            name: {str(c): [] for c in concurrencies} for name in TARGETS
        }
        for round_number in range(1, rounds + 1):
            # The order alternates so that no target always follows the same neighbour.
            pair = list(INSTRUMENTATION_PAIR)
            order = ["naive", *pair] if round_number % 2 else [*reversed(pair), "naive"]
            for concurrency in concurrencies:
                for name in order:
                    url, pid = self.servers[name]
                    result = measured_run(self.wrk, url, self.script, concurrency, seconds, pid)
                    samples[name][str(concurrency)].append(result)
                    self.say(
                        f"round {round_number} c={concurrency:<3} {name:<24}"
                        f"{result.requests_per_second:9.1f} req/s  "
                        f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms"
                    )
        return samples

    def pairs(self, count: int, seconds: float) -> dict[str, list[LoadResult]]:
        """The service with and without instrumentation, side by side, ``count`` times."""
        pairs: dict[str, list[LoadResult]] = {name: [] for name in INSTRUMENTATION_PAIR}
        pair_servers = {name: self.servers[name] for name in INSTRUMENTATION_PAIR}
        for index in range(count):
            results = simultaneous_runs(
                self.wrk, pair_servers, self.script, GOAL_CONCURRENCY, seconds
            )
            for name, result in results.items():
                pairs[name].append(result)
            self.say(
                f"pair {index + 1} c={GOAL_CONCURRENCY}: "
                f"{pairs['service'][-1].requests_per_second:.1f} req/s instrumented, "
                f"{pairs['service_uninstrumented'][-1].requests_per_second:.1f} without "
                "(side by side)"
            )
        return pairs


def served_path(name: str, base: str, client: httpx.Client | None = None) -> dict[str, str]:
    """The inference path the service at ``base`` serves its champion through, from ``/model``.

    Args:
        name: The target's name, for messages.
        base: The service's base URL.
        client: The HTTP client to ask with; default a new one.

    Raises:
        BenchmarkError: It is not the compiled path: the service would be measured on the
            reference pipeline, and the figures would not describe the service as it runs.
    """
    with contextlib.nullcontext(client) if client else httpx.Client(timeout=10) as http:
        answer = http.get(base + "/model")
    if answer.status_code != 200:
        raise BenchmarkError(f"{name}: GET /model answered {answer.status_code}")
    champion = answer.json()["champion"]
    path = {"inference_path": champion["inference_path"],
            "reason": champion["inference_path_reason"]}  # fmt: skip
    if path["inference_path"] != "compiled":
        raise BenchmarkError(f"{name} serves through the reference path: {path['reason']}")
    return path


def _server_env(model_path: Path) -> dict[str, str]:
    """This process's environment minus serving settings, pinned to one BLAS/OpenMP thread."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "PROMETHEUS_MULTIPROC_DIR" and not key.startswith("MLPLAT_SERVING_")
    }
    env.update(
        {
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            MODEL_PATH_ENV: str(model_path),
            "MLPLAT_SERVING_ENVIRONMENT": "dev",
        }
    )
    return env


@dataclass(frozen=True)
class _Plan:
    """How long and how often to measure (the benchmark's arguments)."""

    duration_seconds: float
    rounds: int
    concurrencies: Sequence[int]
    instrumentation_pairs: int
    pair_seconds: float
    warmup_seconds: float
    train_rows: int
    seed: int

    def settings(self, wrk: str) -> dict[str, Any]:
        """The settings as the figures file records them."""
        return {
            "duration_seconds": self.duration_seconds,
            "rounds": self.rounds,
            "concurrencies": list(self.concurrencies),
            "instrumentation_pairs": self.instrumentation_pairs,
            "pair_seconds": self.pair_seconds,
            "load_generator": f"{wrk_version(wrk)}, 1 thread, closed loop",
            "request": "POST /predict with one record",
            "server": "uvicorn, 1 worker, 1 BLAS/OpenMP thread",
            "train_rows": self.train_rows,
        }


def run_serving_benchmark(
    out: Path,
    *,
    duration_seconds: float = 5.0,
    rounds: int = 3,
    concurrencies: Sequence[int] = (1, 8, 32),
    instrumentation_pairs: int = 10,
    pair_seconds: float = 4.0,
    warmup_seconds: float = 2.0,
    train_rows: int = 20_000,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the whole benchmark and write its figures to ``out`` (JSON, atomically).

    Args:
        out: Where the JSON goes.
        duration_seconds: Length of each wrk run of the main table.
        rounds: Repetitions of every (target, concurrency) pair; medians are reported.
        concurrencies: Connection counts, each with single-record requests.
        instrumentation_pairs: Side-by-side runs, with and without metrics and the inference
            log, at concurrency 32 each (the instrumentation goal is judged on their median).
        pair_seconds: Length of each of those runs.
        warmup_seconds: Load applied to each server before measuring.
        train_rows: Rows the benchmark model is trained on.
        seed: Data seed.
        progress: Called with one line per step.

    Returns:
        The figures that were written.

    Raises:
        BenchmarkError: ``wrk`` is missing, a server does not start, or a load run fails.
    """
    plan = _Plan(
        duration_seconds, rounds, concurrencies, instrumentation_pairs, pair_seconds,
        warmup_seconds, train_rows, seed,
    )  # fmt: skip
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchmarkError("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    payload = _measure(plan, wrk, progress or (lambda _line: None))
    payload["command"] = f"mlplat bench serve --out {out}"
    write_result(payload, out)
    return payload


def _measure(plan: _Plan, wrk: str, say: Callable[[str], None]) -> dict[str, Any]:
    """Train the model, measure in-process, then load every target; return the figures."""
    with tempfile.TemporaryDirectory(prefix="mlplat-bench-serve-") as tmp:
        workdir = Path(tmp)
        model_path = workdir / "model.skops"
        say(f"training the benchmark model on {plan.train_rows} rows")
        model = train_benchmark_model(model_path, plan.train_rows, plan.seed)
        say("timing predict_proba and the instrumentation in-process")
        in_process = measure_predict_proba(model)
        say(f"timing the reference and the compiled path at {', '.join(map(str, PATH_SIZES))} rows")
        paths = measure_inference_paths(model)
        instrumentation_cpu = measure_instrumentation_cpu(workdir)
        load = _Load(wrk, _wrk_script(workdir), say)
        with contextlib.ExitStack() as stack:
            load.start(stack, _server_env(model_path), workdir, plan.warmup_seconds)
            samples = load.rounds(plan.rounds, plan.concurrencies, plan.duration_seconds)
            pairs = load.pairs(plan.instrumentation_pairs, plan.pair_seconds)
    http = {
        name: {c: _median_result(results) for c, results in by_c.items()}
        for name, by_c in samples.items()
    }
    instrumentation = instrumentation_change(pairs["service"], pairs["service_uninstrumented"])
    return {
        "benchmark": "serving",
        "created_at": datetime.now(UTC).isoformat(),
        "command": "",
        "machine": {
            **machine(),
            "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "settings": plan.settings(wrk),
        "predict_proba": in_process,
        "inference_paths": paths,
        "served_paths": load.paths,
        "http": http,
        "goals": serving_goals(http, instrumentation, instrumentation_cpu),
    }
