"""Command line: ``mlplat serve`` / ``python -m serving``, and the serving benchmark.

``serve`` validates the settings before anything starts (a placeholder admin token outside dev
mode is refused here, with the reason, rather than in each worker), pins BLAS/OpenMP threads, and
with ``--workers N`` puts prometheus-client in multi-process mode so that every scrape of
``/metrics`` shows the totals of all workers. In that mode the supervising process starts from an
empty metrics directory and drops the live gauges of any worker that dies
(:func:`serving.metrics.mark_dead_workers`), so a replaced worker's values stop counting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

import click

if TYPE_CHECKING:
    from serving.settings import ServingSettings

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_METRIC_FILE = re.compile(r"^(counter|gauge|histogram|summary)_.*\.db$")

DEAD_WORKER_SWEEP_SECONDS: Final = 1.0
"""How often the supervising process looks for workers that died (uvicorn checks every 0.5 s)."""


def _settings_or_exit() -> ServingSettings:
    """Validate the settings and return them."""
    from pydantic import ValidationError

    from serving.settings import get_settings

    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise click.ClickException(f"invalid serving settings: {problems}") from None
    return settings


def prepare_multiprocess_dir() -> tuple[Path, bool]:
    """Make ``PROMETHEUS_MULTIPROC_DIR`` an empty directory; return it and whether we made it.

    A directory given by the caller is reused but cleared of metric files from earlier runs
    (stale files would add old counts to the new totals); nothing else in it is touched.
    """
    existing = os.environ.get(MULTIPROC_ENV)
    if existing:
        path = Path(existing)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.iterdir():
            if stale.is_file() and _METRIC_FILE.match(stale.name):
                stale.unlink()
        return path, False
    path = Path(tempfile.mkdtemp(prefix="mlplat-prometheus-"))
    os.environ[MULTIPROC_ENV] = str(path)
    return path, True


@contextlib.contextmanager
def sweeping_dead_workers(
    path: Path, interval_seconds: float = DEAD_WORKER_SWEEP_SECONDS
) -> Iterator[threading.Thread]:
    """While the block runs, drop the live gauges of workers that died, every ``interval_seconds``.

    Runs in the supervising process, which outlives its workers: a killed worker cannot clean up
    after itself, and uvicorn replaces it without a word to prometheus-client.
    """
    from serving.metrics import mark_dead_workers

    stop = threading.Event()

    def sweep() -> None:
        while not stop.wait(interval_seconds):
            try:
                for pid in mark_dead_workers(path):
                    logger.info("dropped the live gauges of worker %d, which exited", pid)
            except OSError as exc:  # a sweep that fails must not end the sweeping
                logger.warning("cannot sweep %s for dead workers' gauges: %s", path, exc)

    thread = threading.Thread(target=sweep, name="mlplat-dead-worker-sweep", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(timeout=5)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port."
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes; metrics are aggregated across them.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every request (the inference log already records every prediction).",
)
def serve(host: str, port: int, workers: int, log_level: str, access_log: bool) -> None:
    """Run the inference service (settings: MLPLAT_SERVING_* and MLFLOW_TRACKING_URI)."""
    settings = _settings_or_exit()
    threads = settings.model_threads
    # Before any worker imports numpy/scikit-learn: their thread pools size themselves at load.
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, str(threads))
    import uvicorn

    with contextlib.ExitStack() as cleanup:
        # One worker given a directory reads it in multi-process mode too: start it empty as well.
        if workers > 1 or os.environ.get(MULTIPROC_ENV):
            path, made = prepare_multiprocess_dir()
            if made:
                cleanup.callback(shutil.rmtree, path, ignore_errors=True)
            if workers > 1:
                cleanup.enter_context(sweeping_dead_workers(path))
        uvicorn.run(
            "serving.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=access_log,
            timeout_graceful_shutdown=10,
            # Slow or stalled clients: idle keep-alive connections close after this; headers
            # and bodies have their own deadlines (serving/protocol.py, serving/middleware.py).
            timeout_keep_alive=settings.keep_alive_seconds,
            http="serving.protocol:HeaderDeadlineProtocol",
            # Headers larger than this are refused by the parser (h11; httptools caps at 80 KB).
            h11_max_incomplete_event_size=64 * 1024,
        )


@click.command("serve")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON file for the figures (written atomically).",
)
@click.option("--duration", default=5.0, show_default=True, type=click.FloatRange(1.0, 600.0))
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(1, 20))
@click.option(
    "--pairs",
    default=10,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Back-to-back instrumented/uninstrumented runs at concurrency 32.",
)
@click.option(
    "--concurrency",
    "concurrencies",
    multiple=True,
    type=click.IntRange(1, 1024),
    help="Concurrent connections (repeatable); default 1, 8 and 32.",
)
def bench_serve(
    out: Path, duration: float, rounds: int, pairs: int, concurrencies: tuple[int, ...]
) -> None:
    """Benchmark predict_proba, a naive endpoint and the real service side by side."""
    from serving.bench import BenchmarkError, format_table, run_serving_benchmark

    try:
        result = run_serving_benchmark(
            out,
            duration_seconds=duration,
            rounds=rounds,
            instrumentation_pairs=pairs,
            concurrencies=concurrencies or (1, 8, 32),
            progress=lambda line: click.echo(line, err=True),
        )
    except BenchmarkError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(format_table(result))
    click.echo(f"figures written to {out}")
