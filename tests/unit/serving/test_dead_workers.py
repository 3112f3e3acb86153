"""A worker that dies stops counting as live: its ``live*`` gauges leave the multi-process total.

The workers here are real processes writing real prometheus-client files: one is killed the way
the kernel kills an out-of-memory worker (no clean-up runs), one stays alive.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from interfaces.metric_names import (
    INFLIGHT_REQUESTS,
    PREDICTIONS_TOTAL,
    REGISTRY_LAST_SUCCESS_TIMESTAMP,
)
from serving.cli import serve
from serving.multiprocess import MULTIPROC_ENV, mark_dead_workers, sweeping_dead_workers
from serving.settings import get_settings

pytestmark = pytest.mark.unit

# One worker's life: a request in flight, a registry poll at POLLED_AT, three rows scored.
WORKER = """
import os, sys
from serving.metrics import create_metrics

metrics = create_metrics()
metrics.request_started()
metrics.set_registry_success(float(sys.argv[1]))
metrics.observe_scores("champion", "1", 0.01, [0.1, 0.2, 0.3])
print("ready", flush=True)
if sys.argv[2] == "die":
    os._exit(0)  # as SIGKILL would: no lifespan shutdown, no mark_worker_dead
sys.stdin.read()  # alive until the test closes stdin
"""


def start_worker(folder: Path, polled_at: float, fate: str) -> subprocess.Popen[str]:
    """A process that writes one worker's metrics into ``folder``, then dies or waits."""
    env = {**os.environ, MULTIPROC_ENV: str(folder)}
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(polled_at), fate],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def total(folder: Path, name: str, **labels: str) -> float | None:
    """The value a scrape of ``/metrics`` would show, all workers merged."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
    return registry.get_sample_value(name, labels)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[Path, int, int]]:
    """The metrics folder, a dead worker's pid (polled at 1000) and a live one's (at 2000)."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    dead = start_worker(folder, 1000.0, "die")
    dead.wait(timeout=30)
    live = start_worker(folder, 2000.0, "live")
    try:
        yield folder, dead.pid, live.pid
    finally:
        assert live.stdin is not None
        live.stdin.close()
        live.wait(timeout=30)


def live_gauge_files(folder: Path, pid: int) -> list[str]:
    return sorted(p.name for p in folder.glob(f"gauge_live*_{pid}.db"))


def test_a_killed_workers_gauges_are_dropped_and_its_counts_kept(
    workers: tuple[Path, int, int],
) -> None:
    """Its stale registry poll and in-flight request stop counting; its scored rows stay."""
    folder, dead, live = workers
    # What the dead worker leaves behind: the oldest poll wins livemin, its request stays open.
    assert total(folder, REGISTRY_LAST_SUCCESS_TIMESTAMP) == 1000.0
    assert total(folder, INFLIGHT_REQUESTS) == 2.0
    assert live_gauge_files(folder, dead)

    assert mark_dead_workers(folder) == [dead]

    assert live_gauge_files(folder, dead) == []
    assert live_gauge_files(folder, live)
    assert total(folder, REGISTRY_LAST_SUCCESS_TIMESTAMP) == 2000.0
    assert total(folder, INFLIGHT_REQUESTS) == 1.0
    assert total(folder, PREDICTIONS_TOTAL, variant="champion", model_version="1") == 6.0
    assert mark_dead_workers(folder) == []  # idempotent


def test_a_missing_folder_has_no_dead_workers(tmp_path: Path) -> None:
    """A missing multiprocess metrics folder has no dead workers to mark."""
    assert mark_dead_workers(tmp_path / "gone") == []


def test_the_supervisor_sweeps_while_it_runs(workers: tuple[Path, int, int]) -> None:
    """``sweeping_dead_workers`` finds the dead worker on its own, and stops with its block."""
    folder, dead, live = workers
    with sweeping_dead_workers(folder, interval_seconds=0.05) as sweeper:
        deadline = time.monotonic() + 10
        while live_gauge_files(folder, dead) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert live_gauge_files(folder, dead) == []
        assert live_gauge_files(folder, live)
    assert not sweeper.is_alive()


@pytest.mark.parametrize("workers_option", ["1", "2"])
def test_serve_starts_from_an_empty_metrics_folder_and_sweeps_with_several_workers(
    workers_option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A given folder is cleared at start (one worker reads it too); only N > 1 needs the sweep."""
    import uvicorn

    (tmp_path / "gauge_livesum_999999.db").write_bytes(b"from the last run")
    (tmp_path / "counter_999999.db").write_bytes(b"from the last run")
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    monkeypatch.setenv("MLPLAT_SERVING_ENVIRONMENT", "dev")
    get_settings.cache_clear()
    seen: dict[str, object] = {}

    def run(*args: object, **kwargs: object) -> None:
        seen["files"] = sorted(p.name for p in tmp_path.iterdir())
        seen["sweeping"] = any(t.name == "mlplat-dead-worker-sweep" for t in threading.enumerate())

    monkeypatch.setattr(uvicorn, "run", run)
    try:
        result = CliRunner().invoke(serve, ["--workers", workers_option])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert seen == {"files": [], "sweeping": workers_option == "2"}
    assert not any(t.name == "mlplat-dead-worker-sweep" for t in threading.enumerate())
