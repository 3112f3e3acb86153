"""Settings come from the environment, a placeholder token is refused outside dev mode."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from serving.cli import serve
from serving.multiprocess import prepare_multiprocess_dir
from serving.settings import ServingSettings, get_settings

pytestmark = pytest.mark.unit

GOOD_TOKEN = "Zq3v9-looks-random-enough-0123"


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("MLPLAT_SERVING_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize("environment", ["staging", "production"])
@pytest.mark.parametrize("token", ["changeme", "secret", "short-token"])
def test_a_placeholder_or_short_token_is_refused_outside_dev(environment: str, token: str) -> None:
    """A placeholder or short admin token is refused in staging and production."""
    with pytest.raises(ValidationError, match="MLPLAT_SERVING_ADMIN_TOKEN must be a secret"):
        ServingSettings(environment=environment, admin_token=token, _env_file=None)


def test_dev_mode_tolerates_the_placeholder_but_knows_it() -> None:
    """Dev mode accepts the placeholder token and flags it as a placeholder."""
    settings = ServingSettings(environment="dev", _env_file=None)
    assert settings.token_is_placeholder


def test_the_default_environment_is_production_so_forgetting_the_token_fails_closed() -> None:
    """The default environment is production, so no token means the settings fail."""
    with pytest.raises(ValidationError):
        ServingSettings(_env_file=None)


def test_settings_are_read_from_prefixed_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Settings are read from MLPLAT_SERVING_ variables and cached by get_settings()."""
    monkeypatch.setenv("MLPLAT_SERVING_ADMIN_TOKEN", GOOD_TOKEN)
    monkeypatch.setenv("MLPLAT_SERVING_BATCH_MAX_ROWS", "7")
    monkeypatch.setenv("MLPLAT_HOME", str(tmp_path))
    settings = get_settings()
    assert settings.batch_max_rows == 7
    assert settings.resolved_inference_log_url == f"sqlite:///{tmp_path / 'inference-log.db'}"
    assert get_settings() is settings


def test_an_explicit_inference_log_url_wins() -> None:
    """An explicit inference log URL is used instead of the default file."""
    url = "postgresql+psycopg://postgres@127.0.0.1/mlplat"
    settings = ServingSettings(environment="dev", inference_log_url=url, _env_file=None)
    assert settings.resolved_inference_log_url == url


def test_serve_refuses_to_start_with_a_placeholder_token_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The serve command exits 1 on a placeholder token in production, saying why."""
    monkeypatch.setenv("MLPLAT_SERVING_ENVIRONMENT", "production")
    result = CliRunner().invoke(serve, ["--port", "9"])
    assert result.exit_code == 1
    assert "invalid serving settings" in result.output
    assert "MLPLAT_SERVING_ADMIN_TOKEN must be a secret" in result.output
    assert "Traceback" not in result.output


def test_multiprocess_dir_is_made_fresh_when_none_is_given() -> None:
    """Without a given folder a fresh empty one is made, for the caller to remove."""
    path, made = prepare_multiprocess_dir(None)
    try:
        assert made
        assert list(path.iterdir()) == []
    finally:
        path.rmdir()


def test_a_given_multiprocess_dir_loses_only_stale_metric_files(tmp_path: Path) -> None:
    """A given multiprocess folder loses its stale metric files and keeps other files."""
    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "gauge_livesum_9.db").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("keep me")
    path, made = prepare_multiprocess_dir(tmp_path)
    assert (path, made) == (tmp_path, False)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
