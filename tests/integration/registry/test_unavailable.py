"""A registry whose MLflow server is down fails fast with a message, not a stack trace."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from registry import EventStore, ModelRegistry, RegistrySettings, RegistryUnavailable, open_registry
from tests.ports import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def down_url(monkeypatch: pytest.MonkeyPatch) -> str:
    """The URL of a server that is not running, with MLflow's HTTP retries turned down.

    By default the REST client retries 7 times with exponential backoff (minutes); these are
    MLflow's own knobs (``mlflow.environment_variables``), read at request time.
    """
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    return f"http://127.0.0.1:{free_port()}"


def test_state_of_a_down_server_names_the_uri(down_url: str, tmp_path: Path) -> None:
    """Reading state from a down server raises RegistryUnavailable naming the URI, no traceback."""
    events = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    events.create_schema()
    registry = ModelRegistry(MlflowClient(down_url, down_url), events, "credit-default", "it")
    with pytest.raises(RegistryUnavailable) as caught:
        registry.state()
    message = str(caught.value)
    assert message.startswith(f"MLflow registry at {down_url} is unavailable")
    assert "connection refused" in message
    assert "Traceback" not in message


def test_a_move_against_a_down_server_writes_no_event(down_url: str, tmp_path: Path) -> None:
    """A promotion against a down server fails without writing an event."""
    events = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    events.create_schema()
    registry = ModelRegistry(MlflowClient(down_url, down_url), events, "credit-default", "it")
    with pytest.raises(RegistryUnavailable):
        registry.promote(2, reason="canary healthy")
    assert events.history("credit-default") == []


def test_open_registry_against_a_down_server_is_unavailable(down_url: str, tmp_path: Path) -> None:
    """open_registry against a down server raises RegistryUnavailable naming the URI."""
    settings = RegistrySettings(home=tmp_path, tracking_uri=down_url, actor="it")
    with pytest.raises(RegistryUnavailable, match=down_url):
        open_registry(settings)
