"""Settings of the inference service, read from ``MLPLAT_SERVING_*`` environment variables.

Every variable is listed with its default in ``serving/.env.example`` (docker compose reads a
``.env`` made from it; the process reads only its environment, like :mod:`registry`). The
registry connection (``MLFLOW_TRACKING_URI``, model name, ...) belongs to :mod:`registry`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["dev", "staging", "production"]

PLACEHOLDER_TOKENS = frozenset(
    {"", "changeme", "change-me", "changethis", "change-this", "secret", "admin", "token", "dev"}
)
"""Admin tokens that are refused outside dev mode, whatever their length."""
MIN_TOKEN_LENGTH = 16


class ServingSettings(BaseSettings):
    """Configuration of one service process.

    Attributes:
        environment: ``dev`` tolerates a placeholder admin token; ``staging`` and ``production``
            refuse to start with one.
        admin_token: Bearer token of the ``/admin/*`` endpoints.
        home: Local state directory (``MLPLAT_HOME``); the default inference log lives there.
        reconcile_interval_seconds: How often the registry's aliases and canary weight are polled.
        batch_max_rows: Most rows per model call of the micro-batcher.
        batch_window_ms: Longest time the micro-batcher holds a row to collect others while the
            model thread is idle (0 = dispatch at once; rows that arrive while the model is busy
            are batched anyway).
        max_queue_rows: Rows allowed to wait for the model before requests get 503 (backpressure).
        max_body_bytes: Largest request body accepted; larger ones get 413.
        model_threads: BLAS/OpenMP threads per worker for the model (1: workers, not threads,
            use the cores, and concurrent requests do not fight over them).
        prediction_threshold: Probability at or above which ``prediction`` is 1.
        metrics_enabled: Update the per-request metrics (off only to measure their cost).
        inference_log_enabled: Log every prediction (off only to measure its cost; feedback
            then answers 503).
        inference_log_url: SQLAlchemy URL of the inference-log store; default SQLite under
            ``home``.
        inference_log_queue_size: Records buffered in memory before new ones are dropped.
        inference_log_flush_seconds: Longest time a record waits in the buffer.
    """

    model_config = SettingsConfigDict(
        env_prefix="MLPLAT_SERVING_",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    environment: Environment = "production"
    admin_token: SecretStr = SecretStr("changeme")
    home: Path = Field(default=Path(".mlplat"), validation_alias="MLPLAT_HOME")
    reconcile_interval_seconds: float = Field(default=5.0, gt=0.0, le=3600.0)
    batch_max_rows: int = Field(default=128, ge=1, le=4096)
    batch_window_ms: float = Field(default=0.0, ge=0.0, le=100.0)
    max_queue_rows: int = Field(default=4096, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    model_threads: int = Field(default=1, ge=1, le=256)
    prediction_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    metrics_enabled: bool = True
    inference_log_enabled: bool = True
    inference_log_url: str | None = None
    inference_log_queue_size: int = Field(default=10_000, ge=1)
    inference_log_flush_seconds: float = Field(default=0.5, gt=0.0, le=60.0)

    @model_validator(mode="after")
    def _refuse_placeholder_token(self) -> ServingSettings:
        token = self.admin_token.get_secret_value()
        if self.environment != "dev" and (
            token.lower() in PLACEHOLDER_TOKENS or len(token) < MIN_TOKEN_LENGTH
        ):
            raise ValueError(
                "MLPLAT_SERVING_ADMIN_TOKEN must be a secret of at least "
                f"{MIN_TOKEN_LENGTH} characters outside dev mode, not a placeholder; generate one "
                "with `python -c 'import secrets; print(secrets.token_urlsafe(32))'` or set "
                "MLPLAT_SERVING_ENVIRONMENT=dev"
            )
        return self

    @property
    def token_is_placeholder(self) -> bool:
        """Whether the admin token is one a deployment must not use (tolerated in dev)."""
        token = self.admin_token.get_secret_value()
        return token.lower() in PLACEHOLDER_TOKENS or len(token) < MIN_TOKEN_LENGTH

    @property
    def resolved_inference_log_url(self) -> str:
        """The inference-log store URL, defaulting to a SQLite file under ``home``."""
        if self.inference_log_url:
            return self.inference_log_url
        return f"sqlite:///{(self.home / 'inference-log.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> ServingSettings:
    """Return the process's settings, read once from the environment."""
    return ServingSettings()
