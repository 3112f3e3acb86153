"""prometheus-client's multi-process mode: the metrics folder the workers of ``mlplat serve`` share.

The library's contract: a process whose environment names a folder in
``PROMETHEUS_MULTIPROC_DIR`` when it creates its metrics writes their values to files there, one
set per process, and a scrape merges the files of every process (prometheus-client's
``MultiProcessCollector``). So the variable is set once, by the supervising process before it
starts the workers (:func:`serving.cli.serve`), and read once per worker, by the app factory
(:func:`multiprocess_dir`), which hands the folder to the metrics object.

Gauges in this mode count only while their process lives ("live" modes): a worker that stops
cleanly removes its own files (:func:`mark_worker_dead`); the supervisor removes those of workers
that were killed (:func:`mark_dead_workers`, run every second by :func:`sweeping_dead_workers`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from prometheus_client import multiprocess

logger = logging.getLogger(__name__)

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
"""The variable prometheus-client reads to switch a process to multi-process mode."""

DEAD_WORKER_SWEEP_SECONDS: Final = 1.0
"""How often the supervising process looks for workers that died (uvicorn checks every 0.5 s)."""

_METRIC_FILE: Final = re.compile(r"^(counter|gauge|histogram|summary)_.*\.db$")
"""Any file prometheus-client writes in the folder."""

_LIVE_GAUGE_FILE: Final = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")
"""prometheus-client's file of one process's ``live*`` gauges: ``gauge_livesum_<pid>.db``."""


def multiprocess_dir() -> Path | None:
    """The folder named by ``PROMETHEUS_MULTIPROC_DIR``, or ``None`` outside multi-process mode."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def prepare_multiprocess_dir(given: Path | None) -> tuple[Path, bool]:
    """Return an empty metrics folder, and whether it was made here (the caller removes it).

    A folder ``given`` by the caller is reused but cleared of metric files from earlier runs
    (stale files would add old counts to the new totals); nothing else in it is touched. Without
    one, a fresh temporary folder is made.
    """
    if given is None:
        return Path(tempfile.mkdtemp(prefix="mlplat-prometheus-")), True
    given.mkdir(parents=True, exist_ok=True)
    for stale in given.iterdir():
        if stale.is_file() and _METRIC_FILE.match(stale.name):
            stale.unlink()
    return given, False


def mark_worker_dead(pid: int, path: str | os.PathLike[str] | None) -> None:
    """Drop a stopping worker's live gauges from the aggregate in ``path`` (``None``: no-op)."""
    if path is not None:
        multiprocess.mark_process_dead(pid, os.fspath(path))  # type: ignore[no-untyped-call]


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (an exited one that is not yet reaped still does)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def mark_dead_workers(
    path: str | os.PathLike[str], alive: Callable[[int], bool] = process_alive
) -> list[int]:
    """Drop the live gauges of every process that left them in ``path`` and has exited.

    A worker that stops cleanly drops its own (:func:`mark_worker_dead`); one that was killed
    (out of memory, SIGKILL, a crash) cannot, and uvicorn starts a replacement beside its files.
    Left there, they keep counting as a live worker's: the requests it had in flight stay in
    ``mlplat_inflight_requests`` and its last registry poll stays the oldest
    (``mlplat_registry_last_success_timestamp_seconds``, ``livemin``), so the registry looks
    stale for good. Counters, histograms and ``mostrecent`` gauges stay: the totals include the
    dead worker's work, as they must.

    Args:
        path: The ``PROMETHEUS_MULTIPROC_DIR`` of the workers.
        alive: Whether a pid is still running (the test seam).

    Returns:
        The pids whose gauges were dropped, in ascending order.
    """
    try:
        names = [entry.name for entry in os.scandir(path)]
    except FileNotFoundError:
        return []
    pids = {int(m.group(1)) for m in map(_LIVE_GAUGE_FILE.match, names) if m is not None}
    dead = sorted(pid for pid in pids if not alive(pid))
    for pid in dead:
        # A file may go meanwhile: the worker's own clean stop, or another sweep.
        with contextlib.suppress(FileNotFoundError):
            multiprocess.mark_process_dead(pid, os.fspath(path))  # type: ignore[no-untyped-call]
    return dead


@contextlib.contextmanager
def sweeping_dead_workers(
    path: Path, interval_seconds: float = DEAD_WORKER_SWEEP_SECONDS
) -> Iterator[threading.Thread]:
    """While the block runs, drop the live gauges of workers that died, every ``interval_seconds``.

    Runs in the supervising process, which outlives its workers: a killed worker cannot clean up
    after itself, and uvicorn replaces it without a word to prometheus-client.
    """
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
