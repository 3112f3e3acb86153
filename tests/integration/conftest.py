"""Fixtures for integration tests: real ``mlflow server`` processes and PostgreSQL databases.

Servers are expensive (4-14 s to start on two cores), so they are session-scoped and shared:
tests isolate themselves by using their own registered-model and experiment names.

* ``mlflow_server(backend_store_uri, artifacts_dir) -> base_url`` starts a server on a free
  loopback port (``tests/ports.py::free_port``) and waits for ``/health``; every server it
  started is stopped at session end.
* ``mlflow_server_url``: a ready server on a SQLite backend store.
* ``postgres_database() -> url``: a fresh, empty PostgreSQL database, dropped at session end
  (session-scoped, unlike the per-test ``postgres_url``, so a module can share one server).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_tool
from tests.ports import free_port

MlflowServerFactory = Callable[[str, Path], str]
PostgresDatabaseFactory = Callable[[], str]

SERVER_START_DEADLINE_S = 120.0


def wait_until_healthy(
    url: str, process: subprocess.Popen[bytes], log: Path, deadline_s: float
) -> None:
    """Poll ``<url>/health`` until it answers 200, the process exits, or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        try:
            # Doubles as the poll interval: returns at once if the server died.
            process.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"mlflow server exited with {process.returncode}:\n{_tail(log)}")
    pytest.fail(f"mlflow server at {url} not healthy after {deadline_s:.0f} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server and its workers (they share the process group we created for it)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServerFactory]:
    """Factory: start ``mlflow server`` on a backend store, return its base URL."""
    processes: list[subprocess.Popen[bytes]] = []
    beside_python = Path(sys.executable).with_name("mlflow")
    mlflow = str(beside_python) if beside_python.exists() else require_tool("mlflow")
    logs = tmp_path_factory.mktemp("mlflow-server-logs")

    def start(backend_store_uri: str, artifacts_dir: Path) -> str:
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = logs / f"mlflow-{port}.log"
        env = {
            **os.environ,
            # The job runner spawns half a dozen huey workers: not needed for the registry
            # and costly on two cores.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        command = [
            mlflow, "server",
            "--backend-store-uri", backend_store_uri,
            "--artifacts-destination", str(artifacts_dir),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--workers", "1",
        ]  # fmt: skip
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        processes.append(process)
        wait_until_healthy(url, process, log, SERVER_START_DEADLINE_S)
        return url

    try:
        yield start
    finally:
        for process in processes:
            _stop(process)


@pytest.fixture(scope="session")
def mlflow_server_url(
    mlflow_server: MlflowServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A shared ``mlflow server`` on a SQLite backend store, with proxied artifacts."""
    root = tmp_path_factory.mktemp("mlflow-server-sqlite")
    return mlflow_server(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts")


@pytest.fixture(scope="session")
def postgres_database(postgres_admin_url: str) -> Iterator[PostgresDatabaseFactory]:
    """Factory: a fresh, empty PostgreSQL database URL; all are dropped at session end."""
    import sqlalchemy as sa

    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def create() -> str:
        name = f"mlplat_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        url = sa.engine.make_url(postgres_admin_url).set(database=name)
        return url.render_as_string(hide_password=False)

    try:
        yield create
    finally:
        with admin.connect() as conn:
            for name in created:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
