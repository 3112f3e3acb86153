"""Registry settings: defaults under MLPLAT_HOME, environment overrides, no side effects."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry import RegistrySettings, get_settings
from registry.settings import sqlite_path

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "MLFLOW_TRACKING_URI",
        "MLPLAT_TRACKING_URI",
        "MLPLAT_EVENTS_URL",
        "MLPLAT_ACTOR",
        "MLPLAT_MODEL_NAME",
        "MLPLAT_ARTIFACT_ROOT",
        "MLPLAT_SINCE_TIMEOUT_SECONDS",
        "MLPLAT_SINCE_RETRY_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_live_under_home_as_absolute_sqlite_urls(mlplat_home: Path) -> None:
    """By default MLflow, the event log and artifacts live under MLPLAT_HOME as absolute paths."""
    settings = RegistrySettings()
    assert settings.home == mlplat_home
    assert settings.tracking_uri == f"sqlite:///{mlplat_home}/mlflow.db"
    assert settings.events_url == f"sqlite:///{mlplat_home}/events.db"
    assert settings.artifact_root == mlplat_home / "artifacts"
    assert settings.model_name == "credit-default"
    assert settings.uses_local_tracking_store


def test_a_relative_home_still_gives_absolute_database_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative home still gives absolute SQLite paths."""
    monkeypatch.chdir(tmp_path)
    settings = RegistrySettings(home=Path("rel"))
    assert settings.tracking_uri == f"sqlite:///{tmp_path / 'rel' / 'mlflow.db'}"


def test_constructing_settings_creates_nothing(tmp_path: Path) -> None:
    """Building settings creates no folder; ensure_home() creates them."""
    settings = RegistrySettings(home=tmp_path / "home")
    assert not settings.home.exists()
    settings.ensure_home()
    assert (tmp_path / "home" / "artifacts").is_dir()


def test_mlflow_tracking_uri_is_honoured_and_mlplat_variable_wins(
    mlplat_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLFLOW_TRACKING_URI is honoured, and MLPLAT_TRACKING_URI takes precedence over it."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert RegistrySettings().tracking_uri == "http://mlflow:5000"
    assert not RegistrySettings().uses_local_tracking_store
    monkeypatch.setenv("MLPLAT_TRACKING_URI", "http://other:5000")
    assert RegistrySettings().tracking_uri == "http://other:5000"


def test_events_url_and_actor_come_from_the_environment(
    mlplat_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event log URL and actor are read from MLPLAT_ variables."""
    monkeypatch.setenv("MLPLAT_EVENTS_URL", "postgresql://db/events")
    monkeypatch.setenv("MLPLAT_ACTOR", "controller")
    settings = RegistrySettings()
    assert settings.events_url == "postgresql://db/events"
    assert settings.actor == "controller"


def test_since_read_timings_come_from_the_environment(
    mlplat_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The "since" read's timeout and retry interval are settings, with bounded defaults."""
    defaults = RegistrySettings()
    assert (defaults.since_timeout_seconds, defaults.since_retry_seconds) == (1.0, 15.0)
    monkeypatch.setenv("MLPLAT_SINCE_TIMEOUT_SECONDS", "0.25")
    monkeypatch.setenv("MLPLAT_SINCE_RETRY_SECONDS", "60")
    settings = RegistrySettings()
    assert (settings.since_timeout_seconds, settings.since_retry_seconds) == (0.25, 60.0)


def test_a_zero_since_timeout_is_refused_naming_the_field(mlplat_home: Path) -> None:
    """A poll cannot wait zero seconds for the event log: the field is named in the error."""
    with pytest.raises(ValueError, match="since_timeout_seconds"):
        RegistrySettings(since_timeout_seconds=0)


def test_default_actor_is_user_at_host(mlplat_home: Path) -> None:
    """The default actor is user@host."""
    assert "@" in RegistrySettings().actor


def test_blank_tracking_uri_is_refused_naming_the_field(mlplat_home: Path) -> None:
    """A blank tracking URI is refused, naming the field."""
    with pytest.raises(ValueError, match="tracking_uri") as caught:
        RegistrySettings(tracking_uri="  ")
    assert "must not be blank" in str(caught.value)


def test_get_settings_is_cached(mlplat_home: Path) -> None:
    """get_settings() returns the same cached instance."""
    get_settings.cache_clear()
    try:
        assert get_settings() is get_settings()
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:////tmp/x/events.db", Path("/tmp/x/events.db")),
        ("sqlite:///:memory:", None),
        ("postgresql://h/db", None),
    ],
)
def test_sqlite_path(url: str, path: Path | None) -> None:
    """sqlite_path gives the file of a SQLite URL, None for in-memory or other databases."""
    assert sqlite_path(url) == path
