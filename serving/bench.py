"""``mlplat bench serve``: what the serving path costs, measured side by side in one run.

Three measurements on this machine, with the same model (trained here from
:func:`pipeline.data.generate`) and the same single-record request body:

a. **In-process limit** — ``predict_proba`` time per call and per row for 1, 8 and 64 rows.
b. **Naive endpoint** (:func:`serving.bench_apps.naive_app`) — one request, one ``DataFrame``,
   one ``predict_proba``.
c. **The real service** (:func:`serving.bench_apps.service_app`), with metrics and the
   inference log on, and again with both off.

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
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from features import FEATURE_NAMES
from serving.bench_apps import MODEL_PATH_ENV
from serving.bench_load import (
    BenchmarkError,
    LoadResult,
    measured_run,
    run_wrk,
    server,
    simultaneous_runs,
    wait_until_idle,
    wrk_version,
)
from serving.schemas import EXAMPLE_RECORD

__all__ = [
    "BenchmarkError",
    "LoadResult",
    "format_table",
    "instrumentation_change",
    "measure_instrumentation_cpu",
    "measure_predict_proba",
    "run_serving_benchmark",
    "train_benchmark_model",
]

THROUGHPUT_GOAL = 3.0
"""The service must serve at least this many times the naive requests/s at concurrency 32."""
INSTRUMENTATION_GOAL = 0.05
"""Largest relative throughput change from turning metrics and the inference log off."""
GOAL_CONCURRENCY = 32

TARGETS: dict[str, tuple[str, dict[str, str]]] = {
    "naive": ("serving.bench_apps:naive_app", {}),
    "service": ("serving.bench_apps:service_app", {}),
    "service_uninstrumented": (
        "serving.bench_apps:service_app",
        {
            "MLPLAT_SERVING_METRICS_ENABLED": "false",
            "MLPLAT_SERVING_INFERENCE_LOG_ENABLED": "false",
        },
    ),
}
"""Benchmark targets: name -> (uvicorn app factory, extra environment)."""


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


def train_benchmark_model(path: Path, rows: int = 20_000, seed: int = 0) -> Any:
    """Train the pipeline's model on generated data and save it with skops; return it."""
    import skops.io

    from pipeline.config import ModelConfig
    from pipeline.data import generate
    from pipeline.train import fit

    model = fit(generate(rows, seed), ModelConfig())
    skops.io.dump(model, path)
    return model


def measure_predict_proba(
    model: Any, sizes: Sequence[int] = (1, 8, 64), min_seconds: float = 1.0
) -> dict[str, dict[str, float]]:
    """Time ``predict_proba`` in-process for each batch size (one thread, median of calls).

    Returns:
        Per size: ``ms_per_call`` and ``ms_per_row``.
    """
    from serving.batcher import build_frame, limit_threads

    row = tuple(EXAMPLE_RECORD[name] for name in FEATURE_NAMES)
    figures: dict[str, dict[str, float]] = {}
    with limit_threads(1):
        for size in sizes:
            frame = build_frame([row] * size)
            for _ in range(3):
                model.predict_proba(frame)
            timings: list[float] = []
            started = time.perf_counter()
            while len(timings) < 20 or time.perf_counter() - started < min_seconds:
                t0 = time.perf_counter()
                model.predict_proba(frame)
                timings.append(time.perf_counter() - t0)
            per_call = statistics.median(timings) * 1000.0
            figures[str(size)] = {"ms_per_call": per_call, "ms_per_row": per_call / size}
    return figures


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


def _quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def instrumentation_change(on: Sequence[LoadResult], off: Sequence[LoadResult]) -> dict[str, Any]:
    """Compare the service with and without metrics and inference log, pair by pair.

    Each pair ran side by side (:func:`simultaneous_runs`), so the ratio of a pair cancels the
    machine's drift; the median over pairs is the estimate and the interquartile range shows
    what is left of the noise. Positive numbers are a cost (fewer requests/s, more CPU per
    request). The verdict is ``met`` when the median is within the goal, ``missed`` when even
    the interquartile range lies outside it, and ``inconclusive`` otherwise.
    """
    pairs = list(zip(on, off, strict=True))
    throughput = [1.0 - a.requests_per_second / b.requests_per_second for a, b in pairs]
    cpu = [
        a.cpu_us_per_request / b.cpu_us_per_request - 1.0
        for a, b in pairs
        if a.cpu_us_per_request and b.cpu_us_per_request
    ]
    q1, median, q3 = _quartiles(throughput)
    change: dict[str, Any] = {
        "pairs": len(throughput),
        "throughput_cost": median,
        "throughput_cost_iqr": [q1, q3],
        "pairs_detail": [{"on": asdict(a), "off": asdict(b)} for a, b in zip(on, off, strict=True)],
    }
    if cpu:
        change["cpu_cost"] = statistics.median(cpu)
    if abs(median) <= INSTRUMENTATION_GOAL:
        change["verdict"] = "met"
    elif q1 > INSTRUMENTATION_GOAL or q3 < -INSTRUMENTATION_GOAL:
        change["verdict"] = "missed"
    else:
        change["verdict"] = "inconclusive"
    return change


def measure_instrumentation_cpu(workdir: Path, requests: int = 20_000) -> float:
    """CPU microseconds the metrics and the inference log add to one single-record request.

    Measured in-process on the exact calls the hot path makes (metrics, log append, and the
    background write amortised per row): immune to noisy neighbours, unlike requests/s.
    """
    from serving.inference_log import InferenceLogger, InferenceLogStore, InferenceRecord
    from serving.metrics import create_metrics

    metrics = create_metrics()
    store = InferenceLogStore(f"sqlite:///{workdir / 'instrumentation.db'}")
    store.create_schema()
    log = InferenceLogger(store, max_queue=requests)
    row = [EXAMPLE_RECORD[name] for name in FEATURE_NAMES]
    started = time.process_time()
    for _ in range(requests):
        metrics.request_started()
        metrics.record_input_records(accepted=1)
        metrics.observe_scores("champion", "1", 0.01, [0.25])
        log.log(InferenceRecord(time.time(), "bench-1", 0, "champion", 1, 0.25, 0, row))
        metrics.request_finished()
    store.write(log._buffer)
    cost = (time.process_time() - started) / requests * 1e6
    store.close()
    return cost


def _goals(
    http: dict[str, dict[str, dict[str, Any]]],
    instrumentation: dict[str, Any],
    instrumentation_cpu_us: float,
) -> dict[str, Any]:
    key = str(GOAL_CONCURRENCY)
    goals: dict[str, Any] = {}
    naive, service = http["naive"].get(key), http["service"].get(key)
    if naive and service:
        ratio = service["requests_per_second"] / naive["requests_per_second"]
        goals["throughput_ratio"] = ratio
        goals["p99_ratio"] = service["p99_ms"] / naive["p99_ms"]
        goals["throughput_goal_met"] = ratio >= THROUGHPUT_GOAL
        goals["p99_goal_met"] = service["p99_ms"] <= naive["p99_ms"]
    goals["instrumentation"] = instrumentation
    goals["instrumentation_goal_met"] = instrumentation["verdict"] == "met"
    goals["instrumentation_cpu_us_per_request"] = instrumentation_cpu_us
    if service and service.get("cpu_us_per_request"):
        goals["instrumentation_cpu_share"] = instrumentation_cpu_us / service["cpu_us_per_request"]
    return goals


def _write_atomically(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
    say = progress or (lambda _line: None)
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchmarkError("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="mlplat-bench-serve-") as tmp:
        workdir = Path(tmp)
        model_path = workdir / "model.skops"
        say(f"training the benchmark model on {train_rows} rows")
        model = train_benchmark_model(model_path, train_rows, seed)
        say("timing predict_proba and the instrumentation in-process")
        in_process = measure_predict_proba(model)
        instrumentation_cpu = measure_instrumentation_cpu(workdir)
        script = _wrk_script(workdir)
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
        samples: dict[str, dict[str, list[LoadResult]]] = {
            name: {str(c): [] for c in concurrencies} for name in TARGETS
        }
        pairs: dict[str, list[LoadResult]] = {"service": [], "service_uninstrumented": []}
        with contextlib.ExitStack() as stack:
            servers: dict[str, tuple[str, int]] = {}
            for name, (factory, extra) in TARGETS.items():
                say(f"starting {name}")
                target_env = {**env, **extra, "MLPLAT_HOME": str(workdir / f"home-{name}")}
                ready = "/openapi.json" if name == "naive" else "/ready"
                base, pid = stack.enter_context(
                    server(name, factory, target_env, workdir, ready, _request_body())
                )
                servers[name] = (base + "/predict", pid)
                run_wrk(wrk, servers[name][0], script, 8, warmup_seconds)
                wait_until_idle(pid)
            for round_number in range(1, rounds + 1):
                # The order alternates so that no target always follows the same neighbour.
                pair = ["service", "service_uninstrumented"]
                order = ["naive", *pair] if round_number % 2 else [*reversed(pair), "naive"]
                for concurrency in concurrencies:
                    for name in order:
                        url, pid = servers[name]
                        result = measured_run(wrk, url, script, concurrency, duration_seconds, pid)
                        samples[name][str(concurrency)].append(result)
                        say(
                            f"round {round_number} c={concurrency:<3} {name:<24}"
                            f"{result.requests_per_second:9.1f} req/s  "
                            f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms"
                        )
            pair_servers = {name: servers[name] for name in pairs}
            for index in range(instrumentation_pairs):
                results = simultaneous_runs(
                    wrk, pair_servers, script, GOAL_CONCURRENCY, pair_seconds
                )
                for name, result in results.items():
                    pairs[name].append(result)
                say(
                    f"pair {index + 1} c={GOAL_CONCURRENCY}: "
                    f"{pairs['service'][-1].requests_per_second:.1f} req/s instrumented, "
                    f"{pairs['service_uninstrumented'][-1].requests_per_second:.1f} without "
                    "(side by side)"
                )
    http = {
        name: {c: _median_result(results) for c, results in by_c.items()}
        for name, by_c in samples.items()
    }
    instrumentation = instrumentation_change(pairs["service"], pairs["service_uninstrumented"])
    payload: dict[str, Any] = {
        "benchmark": "serving",
        "created_at": datetime.now(UTC).isoformat(),
        "command": f"mlplat bench serve --out {out}",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "settings": {
            "duration_seconds": duration_seconds,
            "rounds": rounds,
            "concurrencies": list(concurrencies),
            "instrumentation_pairs": instrumentation_pairs,
            "pair_seconds": pair_seconds,
            "load_generator": f"{wrk_version(wrk)}, 1 thread, closed loop",
            "request": "POST /predict with one record",
            "server": "uvicorn, 1 worker, 1 BLAS/OpenMP thread",
            "train_rows": train_rows,
        },
        "predict_proba": in_process,
        "http": http,
        "goals": _goals(http, instrumentation, instrumentation_cpu),
    }
    _write_atomically(out, payload)
    return payload


def format_table(result: dict[str, Any]) -> str:
    """Render the figures as Markdown tables (what the write-ups quote)."""
    lines = ["| rows | predict_proba ms/call | ms/row |", "|---:|---:|---:|"]
    for size, figures in result["predict_proba"].items():
        lines.append(f"| {size} | {figures['ms_per_call']:.2f} | {figures['ms_per_row']:.3f} |")
    lines += [
        "",
        "| target | concurrency | requests/s | p50 ms | p99 ms | CPU us/request | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, by_c in result["http"].items():
        for concurrency, figures in by_c.items():
            cpu = figures.get("cpu_us_per_request")
            lines.append(
                f"| {name} | {concurrency} | {figures['requests_per_second']:.1f} | "
                f"{figures['p50_ms']:.2f} | {figures['p99_ms']:.2f} | "
                f"{'-' if cpu is None else f'{cpu:.0f}'} | {figures['errors']} |"
            )
    goals = result["goals"]
    lines.append("")
    if "throughput_ratio" in goals:
        throughput = "met" if goals["throughput_goal_met"] else "MISSED"
        p99 = "met" if goals["p99_goal_met"] else "MISSED"
        lines.append(
            f"service/naive throughput at c={GOAL_CONCURRENCY}: {goals['throughput_ratio']:.2f}x "
            f"(goal >= {THROUGHPUT_GOAL:g}x: {throughput}); "
            f"p99 ratio {goals['p99_ratio']:.2f} (goal <= 1: {p99})"
        )
    change = goals["instrumentation"]
    q1, q3 = change["throughput_cost_iqr"]
    verdict = {"met": "met", "missed": "MISSED"}.get(change["verdict"], "INCONCLUSIVE: noise")
    lines.append(
        f"throughput cost of metrics + inference log at c={GOAL_CONCURRENCY}: "
        f"{change['throughput_cost']:+.1%} (median of {change['pairs']} side-by-side pairs, "
        f"IQR {q1:+.1%} to {q3:+.1%}; goal within {INSTRUMENTATION_GOAL:.0%}: {verdict})"
    )
    detail = f"CPU they add: {goals['instrumentation_cpu_us_per_request']:.1f} us per request"
    if "instrumentation_cpu_share" in goals:
        detail += f" in-process, {goals['instrumentation_cpu_share']:.1%} of the service's CPU"
    if "cpu_cost" in change:
        detail += f"; measured across the pairs: {change['cpu_cost']:+.1%}"
    lines.append(detail)
    return "\n".join(lines)
