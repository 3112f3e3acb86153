"""Every process that builds a registry from settings gets all of them: lock lease, timeouts.

The lock lease must be the same in every process that moves aliases (it decides when a dead
mover's move may be finished), so the controller's registry must get it whether the stores
answered at start (``open_registry``) or not (its fallback, which waits for them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from ci.triggers import drift
from monitoring.settings import MonitorSettings
from monitoring.wiring import build_controller
from registry import (
    EventStore,
    ModelRegistry,
    RegistrySettings,
    open_registry,
    registry_from_settings,
)
from tests.ports import free_port
from tests.unit.registry.stores import EXPERIMENT

pytestmark = pytest.mark.unit

LEASE_SECONDS = 42.0
LOCK_TIMEOUT_SECONDS = 7.0


def _settings(tmp_path: Path, client: MlflowClient, events_url: str) -> RegistrySettings:
    return RegistrySettings(
        home=tmp_path / "home",
        tracking_uri=str(client.tracking_uri),
        events_url=events_url,
        model_name="credit-default-wiring",
        experiment_name=EXPERIMENT,
        actor="tester",
        lock_lease_seconds=LEASE_SECONDS,
        lock_timeout_seconds=LOCK_TIMEOUT_SECONDS,
    )


def _assert_configured(registry: ModelRegistry) -> None:
    assert registry.lock_lease_seconds == LEASE_SECONDS
    assert registry.lock_timeout_seconds == LOCK_TIMEOUT_SECONDS


def test_open_registry_passes_the_lock_settings(
    tmp_path: Path, mlflow_client: MlflowClient
) -> None:
    """``open_registry`` builds a registry with the configured lease and lock timeout."""
    settings = _settings(tmp_path, mlflow_client, f"sqlite:///{tmp_path / 'events.db'}")
    _assert_configured(open_registry(settings))


def test_registry_from_settings_passes_the_lock_settings(
    tmp_path: Path, mlflow_client: MlflowClient
) -> None:
    """The one wiring function, used without opening anything, sets the lease too."""
    settings = _settings(tmp_path, mlflow_client, f"sqlite:///{tmp_path / 'events.db'}")
    registry = registry_from_settings(settings, mlflow_client, EventStore(settings.events_url))
    _assert_configured(registry)


@pytest.fixture
def monitor_settings(tmp_path: Path) -> MonitorSettings:
    """Controller settings that reach nothing at build time (no Prometheus query is made)."""
    return MonitorSettings(home=tmp_path / "monitor", environment="dev")


@pytest.fixture(params=["event log answers", "event log down at start"])
def events_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A reachable SQLite event log, or a PostgreSQL one whose port refuses connections."""
    if request.param == "event log answers":
        yield f"sqlite:///{tmp_path / 'events.db'}"
    else:
        yield f"postgresql+psycopg://mlplat@127.0.0.1:{free_port()}/events"


def test_the_controllers_registry_has_the_configured_lease(
    tmp_path: Path,
    mlflow_client: MlflowClient,
    monitor_settings: MonitorSettings,
    events_url: str,
) -> None:
    """The controller moves aliases with the configured lease, even if it started blind."""
    controller = build_controller(
        monitor_settings, _settings(tmp_path, mlflow_client, events_url), retrain_rule=drift
    )
    try:
        _assert_configured(controller.registry)
    finally:
        controller.close()
