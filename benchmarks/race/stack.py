"""Fresh stores for a race: SQLite files, or an ``mlflow server`` on scratch PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import sqlalchemy as sa

from registry.database import normalise_url

__all__ = ["DEFAULT_POSTGRES_URL", "race_stack"]

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
_SERVER_DEADLINE_S = 120.0


@contextmanager
def race_stack(backend: str, home: Path, postgres_url: str) -> Iterator[tuple[str, str, str]]:
    """Fresh stores for a race: ``(tracking_uri, events_url, description)``.

    ``sqlite``: MLflow's SQLite store and the event log in SQLite files, used directly by every
    process. ``postgres``: an ``mlflow server`` on a scratch PostgreSQL database and the event
    log in another scratch database (both dropped afterwards), as the team setup runs.
    """
    if backend == "sqlite":
        yield (
            f"sqlite:///{(home / 'mlflow.db').absolute()}",
            f"sqlite:///{(home / 'events.db').absolute()}",
            "MLflow SQLite store + SQLite event log, shared by every process",
        )
        return
    if backend != "postgres":
        raise ValueError(f"backend must be 'sqlite' or 'postgres', got {backend!r}")
    admin = sa.create_engine(normalise_url(postgres_url), isolation_level="AUTOCOMMIT")
    names = [f"mlplat_race_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("mlflow", "events")]
    try:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        urls = [
            sa.engine.make_url(normalise_url(postgres_url))
            .set(database=name)
            .render_as_string(hide_password=False)
            for name in names
        ]
        with _mlflow_server(urls[0], home) as server:
            yield server, urls[1], "mlflow server on PostgreSQL + PostgreSQL event log"
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def _mlflow_server(backend_store_uri: str, home: Path) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    beside = Path(sys.executable).with_name("mlflow")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = (home / "mlflow-server.log").open("wb")
    command = [
        str(beside) if beside.exists() else "mlflow", "server",
        "--backend-store-uri", backend_store_uri,
        "--artifacts-destination", str(home / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + _SERVER_DEADLINE_S
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start; see {home / 'mlflow-server.log'}")
            time.sleep(0.25)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)
        log.close()
