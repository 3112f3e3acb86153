"""Settings of the inference service, read from ``MLPLAT_SERVING_*`` environment variables.

Every variable is listed with its default in ``serving/.env.example`` (docker compose reads a
``.env`` made from it; the process reads only its environment, like :mod:`registry`). The
registry connection (``MLFLOW_TRACKING_URI``, model name, ...) belongs to :mod:`registry`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from interfaces.inference_log import default_log_url
from interfaces.secrets import is_placeholder, placeholder_error
from registry.admission import MAX_CANARY_WEIGHT

Environment = Literal["dev", "staging", "production"]


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
        mlflow_max_retries: Retries of each MLflow HTTP call (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``
            is read too). MLflow's own default, 7 with exponential backoff, kept a poll blocked
            for minutes through an outage.
        mlflow_timeout_seconds: Timeout of each MLflow HTTP call (``MLFLOW_HTTP_REQUEST_TIMEOUT``
            is read too; MLflow's default is 120 s).
        mlflow_backoff_factor: Backoff factor between retries
            (``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`` is read too).
        registry_stale_after_polls: ``/ready`` reports the registry stale once the last
            successful poll is older than this many poll intervals (a poll blocked on a dead
            MLflow does not hide the outage).
        startup_registry_wait_seconds: Longest time startup waits for the first poll before the
            service answers anyway (from its model cache, or "not ready"); the poll goes on.
        reload_timeout_seconds: Longest time ``POST /admin/reload`` waits for the registry
            before answering 503; the reconciliation goes on in the background.
        max_canary_weight: The platform's cap on the canary's share of traffic (the same 0.5 as
            ``ci.deploy.MAX_CANARY_WEIGHT``); a larger weight in the registry is clamped to it.
        model_cache_dir: Where the last served models are kept, so a restart while MLflow is
            down still serves them; default ``<home>/serving-cache``.
        model_cache_enabled: Keep (and use) that cache.
        body_timeout_seconds: Longest time from a request's arrival to the end of its body;
            a slower body gets 408.
        header_timeout_seconds: Longest time a connection may take to send a request's headers
            (or stay silent after connecting) before it is closed (``mlplat serve`` only).
        keep_alive_seconds: Idle time after which a keep-alive connection is closed.
        max_validation_errors: Most errors listed in one 422; the rest are counted.
        compiled_inference: Serve a model through the compiled inference path when its
            registration and a check at load both found it equal to the reference pipeline
            (:mod:`serving.inference_path`); off: every model serves through the reference.
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
    mlflow_max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        validation_alias=AliasChoices(
            "MLPLAT_SERVING_MLFLOW_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
        ),
    )
    mlflow_timeout_seconds: int = Field(
        default=5,
        ge=1,
        le=600,
        validation_alias=AliasChoices(
            "MLPLAT_SERVING_MLFLOW_TIMEOUT_SECONDS", "MLFLOW_HTTP_REQUEST_TIMEOUT"
        ),
    )
    mlflow_backoff_factor: int = Field(
        default=1,
        ge=0,
        le=60,
        validation_alias=AliasChoices(
            "MLPLAT_SERVING_MLFLOW_BACKOFF_FACTOR", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"
        ),
    )
    registry_stale_after_polls: float = Field(default=3.0, ge=1.0, le=100.0)
    startup_registry_wait_seconds: float = Field(default=5.0, ge=0.0, le=600.0)
    reload_timeout_seconds: float = Field(default=15.0, gt=0.0, le=600.0)
    max_canary_weight: float = Field(default=MAX_CANARY_WEIGHT, gt=0.0, le=1.0)
    model_cache_dir: Path | None = None
    model_cache_enabled: bool = True
    body_timeout_seconds: float = Field(default=10.0, gt=0.0, le=600.0)
    header_timeout_seconds: float = Field(default=10.0, gt=0.0, le=600.0)
    keep_alive_seconds: int = Field(default=5, ge=1, le=600)
    max_validation_errors: int = Field(default=20, ge=1, le=1000)
    compiled_inference: bool = True

    @model_validator(mode="after")
    def _refuse_placeholder_token(self) -> ServingSettings:
        if self.environment != "dev" and is_placeholder(self.admin_token.get_secret_value()):
            raise ValueError(
                placeholder_error(
                    "MLPLAT_SERVING_ADMIN_TOKEN", "or set MLPLAT_SERVING_ENVIRONMENT=dev"
                )
            )
        return self

    @property
    def token_is_placeholder(self) -> bool:
        """Whether the admin token is one a deployment must not use (tolerated in dev)."""
        return is_placeholder(self.admin_token.get_secret_value())

    @property
    def resolved_inference_log_url(self) -> str:
        """The inference-log store URL, defaulting to a SQLite file under ``home``."""
        if self.inference_log_url:
            return self.inference_log_url
        return default_log_url(self.home)

    @property
    def resolved_model_cache_dir(self) -> Path:
        """The model cache directory, defaulting to ``<home>/serving-cache``."""
        return self.model_cache_dir or self.home / "serving-cache"

    @property
    def registry_stale_after_seconds(self) -> float:
        """Age of the last successful poll at which the registry is reported stale."""
        return self.registry_stale_after_polls * self.reconcile_interval_seconds

    def mlflow_client_environment(self) -> dict[str, str]:
        """The MLflow client's retry and timeout variables, as this service sets them.

        MLflow reads them from the environment on every HTTP call; the service process sets
        them at startup (:func:`serving.deployment.RegistryModelSource.from_environment`),
        never at import, so importing :mod:`serving` changes nothing for other code.
        """
        return {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.mlflow_max_retries),
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.mlflow_timeout_seconds),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(self.mlflow_backoff_factor),
        }


@lru_cache(maxsize=1)
def get_settings() -> ServingSettings:
    """Return the process's settings, read once from the environment."""
    return ServingSettings()
