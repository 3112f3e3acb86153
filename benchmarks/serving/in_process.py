"""The serving benchmark's in-process measurements: the model alone, and the instrumentation.

The model is timed twice: ``predict_proba`` of the reference pipeline, and both inference paths
(reference and compiled, :mod:`serving.inference_path`) at 1 to 1,000 records per call. All are
immune to a noisy neighbour in a way requests/s is not: ``predict_proba`` time is the
floor any endpoint pays per call, and the CPU the metrics and the inference log add per request
is measured on the exact calls the hot path makes.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import skops.io

from benchmarks.report import BenchmarkError
from features import FEATURE_NAMES
from pipeline import ModelConfig, fit, generate
from pipeline.compiled import TOLERANCE, max_difference
from pipeline.threads import limit_threads
from serving.batcher import RowValues, build_frame
from serving.inference_log import InferenceLogger, InferenceLogStore, InferenceRecord
from serving.inference_path import choose_path
from serving.metrics import create_metrics
from serving.schemas import EXAMPLE_RECORD

__all__ = [
    "PATH_SIZES",
    "benchmark_rows",
    "measure_inference_paths",
    "measure_instrumentation_cpu",
    "measure_predict_proba",
    "train_benchmark_model",
]


def train_benchmark_model(path: Path, rows: int = 20_000, seed: int = 0) -> Any:
    """Train the pipeline's model on generated data and save it with skops; return it."""
    model = fit(generate(rows, seed), ModelConfig())
    skops.io.dump(model, path)
    return model


def _median_ms(timings: list[float]) -> float:
    return statistics.median(timings) * 1000.0


def measure_predict_proba(
    model: Any, sizes: Sequence[int] = (1, 8, 64), min_seconds: float = 1.0
) -> dict[str, dict[str, float]]:
    """Time ``predict_proba`` in-process for each batch size (one thread, median of calls).

    Returns:
        Per size: ``ms_per_call`` and ``ms_per_row``.
    """
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
            per_call = _median_ms(timings)
            figures[str(size)] = {"ms_per_call": per_call, "ms_per_row": per_call / size}
    return figures


PATH_SIZES: tuple[int, ...] = (1, 10, 100, 1000)
"""Records per request at which the two inference paths are timed."""


def benchmark_rows(count: int, seed: int) -> list[RowValues]:
    """``count`` generated records in contract order, ``None`` where a value is missing."""
    frame = generate(count, seed)[list(FEATURE_NAMES)].astype(object)
    rows: list[RowValues] = frame.where(frame.notna(), None).to_numpy().tolist()
    return rows


def measure_inference_paths(
    model: Any,
    sizes: Sequence[int] = PATH_SIZES,
    min_seconds: float = 0.5,
    seed: int = 1,
) -> dict[str, Any]:
    """Per-call time of the reference pipeline and the compiled path, per records per request.

    Both paths score the same generated records (nulls included), built into the model input as
    the service builds it (:func:`serving.batcher.build_frame`), on one thread. Their calls
    alternate, so a noisy neighbour slows both alike. Before anything is timed, the compiled
    path must qualify as the service would decide (:func:`serving.inference_path.choose_path`)
    and score every timed record within :data:`pipeline.compiled.TOLERANCE` of the reference.

    Returns:
        ``reference`` and ``compiled``: per size, ``ms_per_call`` and ``ms_per_row``;
        ``speedup`` per size; ``max_difference`` over the timed records and the ``tolerance``.

    Raises:
        BenchmarkError: The model does not qualify for the compiled path.
    """
    served = choose_path(model, enabled=True)
    if served.compiled is None:
        raise BenchmarkError(f"the benchmark model has no compiled path: {served.reason}")
    compiled = served.compiled
    everything = build_frame(benchmark_rows(max(sizes), seed))
    difference = max_difference(model, compiled, everything)
    if not difference <= TOLERANCE:
        raise BenchmarkError(f"the compiled path differs by {difference:g} (> {TOLERANCE:g})")
    paths: dict[str, Any] = {"reference": model, "compiled": compiled}
    figures: dict[str, dict[str, dict[str, float]]] = {name: {} for name in paths}
    with limit_threads(1):
        for size in sizes:
            frame = everything.iloc[:size].reset_index(drop=True)
            timings: dict[str, list[float]] = {name: [] for name in paths}
            for predictor in paths.values():
                predictor.predict_proba(frame)  # warm-up
            started = time.perf_counter()
            while len(timings["compiled"]) < 20 or time.perf_counter() - started < min_seconds:
                for name, predictor in paths.items():
                    t0 = time.perf_counter()
                    predictor.predict_proba(frame)
                    timings[name].append(time.perf_counter() - t0)
            for name, samples in timings.items():
                per_call = _median_ms(samples)
                figures[name][str(size)] = {"ms_per_call": per_call, "ms_per_row": per_call / size}
    speedup = {
        str(size): figures["reference"][str(size)]["ms_per_call"]
        / figures["compiled"][str(size)]["ms_per_call"]
        for size in sizes
    }
    return {
        **figures,
        "speedup": speedup,
        "max_difference": difference,
        "tolerance": TOLERANCE,
        "rows": f"generated records (seed {seed}, nulls included), one thread",
    }


def measure_instrumentation_cpu(workdir: Path, requests: int = 20_000) -> float:
    """CPU microseconds the metrics and the inference log add to one single-record request.

    Measured in-process on the exact calls the hot path makes (metrics, log append, and the
    background write amortised per row): immune to noisy neighbours, unlike requests/s.
    """
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
    # The logger's own thread is not started: the write it would do, done here, is timed too.
    store.write(log.take_batch())
    cost = (time.process_time() - started) / requests * 1e6
    store.close()
    return cost
