"""Shared test fixtures: tool and service discovery that fails instead of skipping under CI."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
POSTGRES_URL_ENV = "MLPLAT_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def missing(reason: str) -> None:
    """Skip the test locally, but fail it under ``CI=true``: CI must never hide a missing part."""
    if IN_CI:
        pytest.fail(f"required in CI but unavailable: {reason}")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    """Return the path of executable ``name`` or skip (fail in CI) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed")
    assert path is not None
    return path


@pytest.fixture(autouse=True)
def _mlflow_globals_restored() -> Iterator[None]:
    """Undo what ``mlflow.set_tracking_uri`` leaks: it also writes ``MLFLOW_TRACKING_URI``.

    Settings read that variable, so a test that points MLflow at its own server would otherwise
    send every later test in the process (and the subprocesses it starts) to a dead store.
    """
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    environment = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    tracking, registry = tracking_utils._tracking_uri, registry_utils._registry_uri
    yield
    tracking_utils._tracking_uri, registry_utils._registry_uri = tracking, registry
    for name in [k for k in os.environ if k.startswith("MLFLOW_") and k not in environment]:
        del os.environ[name]
    os.environ.update(environment)


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """A SQLAlchemy URL of a reachable PostgreSQL server, from ``MLPLAT_TEST_POSTGRES_URL``."""
    import sqlalchemy as sa

    url = os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # any connection failure means "no server here"
        missing(f"PostgreSQL not reachable at {url} ({type(exc).__name__})")
    finally:
        engine.dispose()
    return url


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import uuid

    import sqlalchemy as sa

    name = f"mlplat_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = sa.engine.make_url(postgres_admin_url)
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def mlplat_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated MLPLAT_HOME (SQLite MLflow store, events DB, artifacts) for one test."""
    home = tmp_path / "mlplat-home"
    home.mkdir()
    monkeypatch.setenv("MLPLAT_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home
