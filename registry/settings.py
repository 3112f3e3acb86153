"""Where the registry keeps its state: MLflow tracking store, artifacts and the events database.

Everything defaults to files under one home directory (``MLPLAT_HOME``, ``.mlplat``), so a fresh
checkout runs with no server at all; pointing ``MLFLOW_TRACKING_URI`` at an ``mlflow server`` and
``MLPLAT_EVENTS_URL`` at PostgreSQL turns the same code into the shared, multi-user setup.
"""

from __future__ import annotations

import getpass
import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from registry.failpoints import Failpoints, parse_failpoints

__all__ = ["RegistrySettings", "get_settings"]


def _default_actor() -> str:
    """``user@host``: who moved an alias is part of every deployment event."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. an arbitrary container uid
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def _sqlite_url(path: Path) -> str:
    # Four slashes: an absolute path, so the URL means the same file whatever the working directory.
    return f"sqlite:///{path.absolute()}"


def _home(data: dict[str, Any]) -> Path:
    return Path(data.get("home", ".mlplat"))


class RegistrySettings(BaseSettings):
    """Registry configuration, read from ``MLPLAT_*`` environment variables.

    Defaults are derived from ``home`` at construction time but nothing is created on disk until
    :meth:`ensure_home` runs (``open_registry`` calls it), so importing or constructing settings has
    no side effects.

    Attributes:
        home: Directory holding the local SQLite stores and artifacts (``MLPLAT_HOME``).
        tracking_uri: MLflow tracking and registry URI; ``MLPLAT_TRACKING_URI`` or the standard
            ``MLFLOW_TRACKING_URI``; default ``sqlite:///<home>/mlflow.db``.
        artifact_root: Artifact location of experiments created on a database store; default
            ``<home>/artifacts`` (keeps ``./mlruns`` out of the working directory).
        events_url: SQLAlchemy URL of the deployment-events database (``MLPLAT_EVENTS_URL``);
            default ``sqlite:///<home>/events.db``; ``postgresql://…`` uses psycopg 3.
        model_name: Registered model name.
        experiment_name: MLflow experiment that training runs log to.
        actor: Who is acting, recorded on every event (``MLPLAT_ACTOR``); default ``user@host``.
        lock_lease_seconds: How long a model's move lock outlives its owner's last heartbeat
            (``MLPLAT_LOCK_LEASE_SECONDS``): a dead mover's half-done move is finished only
            after this; keep it well above the clock skew between machines.
        lock_timeout_seconds: How long a move waits for another move of the same model
            (``MLPLAT_LOCK_TIMEOUT_SECONDS``) before failing with a message naming the holder.
        since_timeout_seconds: How long a state read waits for the "since" times from the
            event log (``MLPLAT_SINCE_TIMEOUT_SECONDS``) before answering without them: a poll
            must not wait on the event database (:mod:`registry.since`).
        since_retry_seconds: How long after a failed read of the "since" times the event log
            is not read for them again (``MLPLAT_SINCE_RETRY_SECONDS``).
        failpoints: Test-only fault injection (``MLPLAT_FAILPOINTS``), e.g.
            ``registry.before_alias_write=sleep(0.3)``; empty (off) by default. The syntax and
            the places are in :mod:`registry.failpoints`.
    """

    model_config = SettingsConfigDict(
        env_prefix="MLPLAT_",
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
    )

    home: Path = Path(".mlplat")
    tracking_uri: str = Field(
        default_factory=lambda data: _sqlite_url(_home(data) / "mlflow.db"),
        validation_alias=AliasChoices("MLPLAT_TRACKING_URI", "MLFLOW_TRACKING_URI", "tracking_uri"),
    )
    artifact_root: Path = Field(default_factory=lambda data: _home(data) / "artifacts")
    events_url: str = Field(default_factory=lambda data: _sqlite_url(_home(data) / "events.db"))
    model_name: str = Field(default="credit-default", min_length=1)
    experiment_name: str = Field(default="credit-default", min_length=1)
    actor: str = Field(default_factory=_default_actor, min_length=1)
    lock_lease_seconds: float = Field(default=15.0, gt=0.0, le=3600.0)
    lock_timeout_seconds: float = Field(default=30.0, ge=0.0, le=3600.0)
    since_timeout_seconds: float = Field(default=1.0, gt=0.0, le=60.0)
    since_retry_seconds: float = Field(default=15.0, ge=0.0, le=3600.0)
    failpoints: str = ""

    @field_validator("failpoints")
    @classmethod
    def _known_failpoints(cls, value: str) -> str:
        parse_failpoints(value)  # raises ValueError naming the bad entry
        return value.strip()

    def failpoint_actions(self) -> Failpoints:
        """The configured failpoints (none unless ``MLPLAT_FAILPOINTS`` is set)."""
        return parse_failpoints(self.failpoints)

    @field_validator("tracking_uri", "events_url")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank (unset it to use the default under MLPLAT_HOME)")
        return value.strip()

    @property
    def uses_local_tracking_store(self) -> bool:
        """Whether MLflow talks to a database file/URL directly rather than to a server."""
        return not self.tracking_uri.startswith(("http://", "https://", "databricks"))

    def ensure_home(self) -> Path:
        """Create ``home``, the artifact root and the directories of local SQLite files.

        Returns:
            The home directory.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        if self.uses_local_tracking_store:
            self.artifact_root.mkdir(parents=True, exist_ok=True)
        for url in (self.tracking_uri, self.events_url):
            path = sqlite_path(url)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
        return self.home


def sqlite_path(url: str) -> Path | None:
    """The file behind a ``sqlite:///`` URL, or ``None`` for other URLs and in-memory databases."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix) :].split("?", 1)[0]
    if path in {"", ":memory:"}:
        return None
    return Path(path)


@lru_cache(maxsize=1)
def get_settings() -> RegistrySettings:
    """The process-wide settings, read from the environment once (``cache_clear()`` in tests)."""
    return RegistrySettings()
