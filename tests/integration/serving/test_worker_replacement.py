"""``mlplat serve --workers 2``: a killed worker is replaced, and its gauges stop counting.

uvicorn replaces a worker that dies; prometheus-client keeps the dead worker's files. Without
the sweep its last registry poll stays the oldest (``livemin``), and
``mlplat_registry_last_success_timestamp_seconds`` freezes at the moment of the kill.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from interfaces.metric_names import REGISTRY_LAST_SUCCESS_TIMESTAMP
from registry import RegistrySettings, open_registry
from tests.integration.serving.process import ServiceProcess, start_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEADLINE_S = 90.0
_LIVE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


def live_pids(folder: Path) -> set[int]:
    """The pids that own live-gauge files in ``folder``."""
    return {int(m.group(1)) for p in folder.iterdir() if (m := _LIVE_FILE.match(p.name))}


def last_registry_success(service: ServiceProcess) -> float:
    """The merged ``mlplat_registry_last_success_timestamp_seconds`` of a scrape."""
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    found = re.search(rf"^{REGISTRY_LAST_SUCCESS_TIMESTAMP} (\S+)$", text, re.MULTILINE)
    assert found is not None, text[:2000]
    return float(found.group(1))


def wait_until(what: str, check: Callable[[], object], service: ServiceProcess) -> None:
    """Poll ``check()`` until true, or fail naming ``what`` with the service's log."""
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if service.process.poll() is not None:
            pytest.fail(f"service exited with {service.process.returncode}:\n{service.tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"not within {DEADLINE_S:.0f} s: {what}\n{service.tail()}")
        time.sleep(0.1)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[ServiceProcess, Path]]:
    """Two workers on a local store with a registered model (no version) and polls every 0.5 s."""
    home = tmp_path / "home"
    settings = RegistrySettings(
        home=home,
        tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
        events_url=f"sqlite:///{home / 'events.db'}",
    )
    open_registry(settings).ensure_model()
    folder = tmp_path / "prometheus"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLAT_", "MLFLOW_"))}
    env.update(
        {
            "MLPLAT_HOME": str(home),
            "MLPLAT_SERVING_ENVIRONMENT": "dev",
            "MLPLAT_SERVING_RECONCILE_INTERVAL_SECONDS": "0.5",
            "PROMETHEUS_MULTIPROC_DIR": str(folder),
        }
    )
    process = start_service(env, tmp_path / "service.log", workers=2)
    try:
        yield process, folder
    finally:
        process.stop()


def test_a_killed_worker_is_replaced_and_its_stale_poll_stops_counting(
    service: tuple[ServiceProcess, Path],
) -> None:
    """SIGKILL one worker: its gauge files go, and the registry-poll time moves on past the kill."""
    process, folder = service
    process.wait_for("/health", 200, DEADLINE_S)
    wait_until("two workers write gauges", lambda: len(live_pids(folder)) == 2, process)
    wait_until("a registry poll is published", lambda: last_registry_success(process) > 0, process)
    before = live_pids(folder)
    victim = min(before)

    os.kill(victim, signal.SIGKILL)
    killed_at = time.time()

    wait_until(
        f"worker {victim}'s gauge files are dropped",
        lambda: victim not in live_pids(folder),
        process,
    )
    wait_until("a replacement worker writes gauges", lambda: live_pids(folder) - before, process)
    wait_until(
        "the merged registry-poll time passes the kill",
        lambda: last_registry_success(process) > killed_at,
        process,
    )
    # Its counters stay: a scrape's totals still include the work it did.
    assert any(folder.glob(f"counter_{victim}.db"))
