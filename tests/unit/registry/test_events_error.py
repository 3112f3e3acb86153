"""The registry says when its event log is down (the service's /ready repeats it)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from registry import DeploymentState, EventStore, EventStoreUnavailable, ModelRegistry
from registry.since import SinceReader
from serving.deployment import RegistryModelSource
from tests.unit.registry.stores import LocalStores

pytestmark = pytest.mark.unit


class FlakyLog:
    """An event log that refuses until ``up`` is set."""

    def __init__(self) -> None:
        self.up = False

    def with_since(self, model_name: str, state: DeploymentState) -> DeploymentState:
        if not self.up:
            raise EventStoreUnavailable("postgresql://events", "connection refused")
        return replace(state, champion_since=datetime(2026, 1, 1, tzinfo=UTC))


def test_the_since_reader_names_the_outage_and_its_age_then_clears_it() -> None:
    """``error`` is None while the log answers, says why and for how long while it does not."""
    now = [100.0]
    log = FlakyLog()
    reader = SinceReader(log, "credit-default", retry_seconds=0.0, clock=lambda: now[0])
    state = DeploymentState(champion=1)
    reader.fill(state)
    now[0] = 130.0
    reader.fill(state)
    error = reader.error
    assert error is not None
    assert error.startswith("event log unreachable for 30 s: ")
    assert "connection refused" in error
    log.up = True
    reader.fill(state)
    assert reader.error is None


def test_a_registry_on_an_unreachable_event_log_says_so_and_a_source_passes_it_on(
    local: LocalStores, tmp_path: Path
) -> None:
    """``events_error`` names the outage; the serving source repeats it for /ready."""
    version = local.register()
    local.registry.bootstrap(version, reason="first champion")
    unreachable = EventStore(f"sqlite:///{tmp_path / 'no-such-dir' / 'events.db'}")
    registry = ModelRegistry(local.client, unreachable, local.model, "tester")
    source = RegistryModelSource(registry, loader=lambda uri: None)  # type: ignore[arg-type,return-value]
    assert local.registry.events_error is None
    assert source.desired().champion == version
    assert registry.events_error is not None
    assert "no-such-dir" in registry.events_error
    assert source.events_error == registry.events_error
