"""The serving benchmark's in-process measurements: the model alone, and the instrumentation.

Both are immune to a noisy neighbour in a way requests/s is not: ``predict_proba`` time is the
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

from features import FEATURE_NAMES
from pipeline import ModelConfig, fit, generate
from pipeline.threads import limit_threads
from serving.batcher import build_frame
from serving.inference_log import InferenceLogger, InferenceLogStore, InferenceRecord
from serving.metrics import create_metrics
from serving.schemas import EXAMPLE_RECORD

__all__ = ["measure_instrumentation_cpu", "measure_predict_proba", "train_benchmark_model"]


def train_benchmark_model(path: Path, rows: int = 20_000, seed: int = 0) -> Any:
    """Train the pipeline's model on generated data and save it with skops; return it."""
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
    store.write(log._buffer)
    cost = (time.process_time() - started) / requests * 1e6
    store.close()
    return cost
