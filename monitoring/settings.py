"""Settings of the monitoring controller, read from ``MLPLAT_MONITOR_*`` environment variables.

Where the controller reads its inputs (Prometheus or the service's own ``/metrics``, the
inference log), how often it runs, when a canary may be promoted, how the drift job samples and
where its reports go. The registry connection (``MLFLOW_TRACKING_URI``, ``MLPLAT_EVENTS_URL``,
model name…) belongs to :mod:`registry` and is read there. Nested settings use ``__``:
``MLPLAT_MONITOR_JUDGE__ERROR_RATE_FLOOR=0.002`` sets one field of
:class:`monitoring.judge.JudgeConfig`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from interfaces.inference_log import default_log_url
from interfaces.secrets import is_placeholder, placeholder_error
from monitoring.drift import DriftConfig
from monitoring.judge import JudgeConfig

__all__ = ["Environment", "MonitorSettings", "MonitorSettingsError", "get_settings"]

Environment = Literal["dev", "staging", "production"]


class MonitorSettingsError(ValueError):
    """A setting the controller cannot run with; the message names the setting and the rule."""


def _http_url(value: str, name: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{name}: {value!r} must be an http:// or https:// URL")
    return value.rstrip("/")


class MonitorSettings(BaseSettings):
    """Configuration of the monitoring controller process.

    Attributes:
        environment: ``dev`` tolerates a placeholder webhook token; ``staging`` and
            ``production`` refuse to start with one.
        home: Local state directory (``MLPLAT_HOME``); reports and trigger decisions live here
            by default.
        interval_seconds: Time between two controller cycles.
        prometheus_url: Base URL of the Prometheus HTTP API. When set, canary counts are PromQL
            ``increase()`` over the canary's lifetime; otherwise the controller scrapes
            ``serving_metrics_urls`` itself (no Prometheus needed, as in the embedded demo).
        prometheus_serving_job: Scrape job of the inference service in Prometheus; its ``up``
            series tells fresh metrics from stale ones.
        serving_metrics_urls: The inference service's ``/metrics`` URLs (one per instance),
            scraped directly when ``prometheus_url`` is not set. JSON list in the environment.
        http_timeout_seconds: Timeout of every call to Prometheus or ``/metrics``.
        inference_log_url: SQLAlchemy URL of the inference log the service writes; also read
            from ``MLPLAT_SERVING_INFERENCE_LOG_URL`` so one variable configures both; default
            the service's own default, ``<home>/inference-log.db``.
        webhook_token: Bearer token Alertmanager sends to ``POST /alertmanager/webhook``; unset
            disables the webhook (it answers 503).
        webhook_max_body_bytes: Largest notification body the webhook reads (413 beyond). It is
            enforced while the body streams in, so a larger one is never held in memory;
            Alertmanager's notifications are a few kilobytes.
        webhook_body_timeout_seconds: Time allowed to receive the whole body (408 after it), so a
            client that trickles bytes cannot hold a worker.
        host: Interface the webhook and ``/metrics`` server binds.
        port: Its port (9200 is where the shipped Prometheus and Alertmanager look).
        judge: Thresholds of the canary judge (``MLPLAT_MONITOR_JUDGE__<FIELD>``).
        judge_config_file: A YAML file of :class:`~monitoring.judge.JudgeConfig` fields; when
            set it replaces ``judge`` (setting both is refused).
        judge_window_seconds: Length of one judge window. The judge looks once per completed
            window, so its ``min_windows_before_promote`` and ``max_windows`` are counted in
            these, and the prediction guardrail spends its error budget once per window. A
            canary alert adds at most one look per window, numbered with the current window
            (so the guardrail spends at most twice its budget).
        baseline_seconds: How much of the champion's logged traffic before a canary started
            the judge splits by the canary's routing rule, to remove the chance difference
            between the canary's customers and the champion's (read once per canary; used
            only when it holds at least as many rows as the canary's life; 0: none).
        min_canary_seconds: A canary is promoted only after serving this long...
        min_canary_requests: ...and after answering this many requests, whatever the judge says.
        drift: Parameters of the drift checks (``MLPLAT_MONITOR_DRIFT__<FIELD>``).
        drift_interval_seconds: Time between two runs of the drift job (it is costlier than a
            cycle: each new model version calibrates its thresholds once).
        drift_window_seconds: The drift job checks the inference log of the last this-many
            seconds (a canary's window also starts no earlier than the canary).
        drift_max_rows: At most this many of the window's most recent rows are checked.
        drift_report_dir: Where HTML drift reports are written; default
            ``<home>/drift-reports``.
        state_dir: Where the retrain trigger keeps its decisions; default ``<home>/monitor``.
        retrain_drift_threshold: Share of drifted champion features that asks for a retrain
            (``ci/triggers.py::drift``).
        retrain_cooldown_hours: Minimum time between two drift-triggered retrains.
        retrain_command: Optional command started (detached, not awaited) when the retrain
            trigger fires, as a JSON list; ``{drift_share}`` and ``{evidence}`` are replaced,
            e.g. ``["mlplat", "pipeline", "trigger", "drift", "--drift-share",
            "{drift_share}", "--evidence", "{evidence}"]``. Unset, the decision is only recorded.
            Used by the ``command`` backend only.
        retrain_backend: What a fired retrain trigger starts: ``command`` runs
            ``retrain_command`` beside the controller (compose, the demo); ``kubernetes_job``
            creates a Job from ``retrain_job_template`` through the API server, as the pod's
            service account (:mod:`monitoring.controller.retrain_job`).
        retrain_job_template: The Job manifest (YAML) the ``kubernetes_job`` backend creates,
            e.g. mounted from a ConfigMap; required by that backend.
        retrain_job_namespace: Where the Jobs are created; default the controller's own
            namespace (the service account's ``namespace`` file).
    """

    model_config = SettingsConfigDict(
        env_prefix="MLPLAT_MONITOR_",
        env_nested_delimiter="__",
        # `VAR=` in an env file means "not set" (the default), not an empty token or path.
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    environment: Environment = "production"
    # The alias is the whole variable name, no prefix: the MLPLAT_HOME every component reads.
    home: Path = Field(default=Path(".mlplat"), validation_alias="MLPLAT_HOME")
    interval_seconds: float = Field(default=15.0, gt=0.0, le=3600.0)
    prometheus_url: str | None = None
    prometheus_serving_job: str = Field(default="mlplat-serving", min_length=1)
    serving_metrics_urls: tuple[str, ...] = ("http://127.0.0.1:8000/metrics",)
    http_timeout_seconds: float = Field(default=5.0, gt=0.0, le=120.0)
    inference_log_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "MLPLAT_MONITOR_INFERENCE_LOG_URL", "MLPLAT_SERVING_INFERENCE_LOG_URL"
        ),
    )
    webhook_token: SecretStr | None = None
    webhook_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    webhook_body_timeout_seconds: float = Field(default=10.0, gt=0.0, le=300.0)
    host: str = "127.0.0.1"
    port: int = Field(default=9200, ge=1, le=65535)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    judge_config_file: Path | None = None
    judge_window_seconds: float = Field(default=60.0, gt=0.0)
    baseline_seconds: float = Field(default=6 * 3600.0, ge=0.0, le=7 * 24 * 3600.0)
    min_canary_seconds: float = Field(default=900.0, ge=0.0)
    min_canary_requests: int = Field(default=1000, ge=0)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    drift_interval_seconds: float = Field(default=300.0, gt=0.0)
    drift_window_seconds: float = Field(default=3600.0, gt=0.0)
    drift_max_rows: int = Field(default=20_000, ge=20)
    drift_report_dir: Path | None = None
    state_dir: Path | None = None
    retrain_drift_threshold: float = Field(default=0.3, gt=0.0, le=1.0)
    retrain_cooldown_hours: float = Field(default=6.0, ge=0.0)
    retrain_command: tuple[str, ...] | None = None
    retrain_backend: Literal["command", "kubernetes_job"] = "command"
    retrain_job_template: Path | None = None
    retrain_job_namespace: str | None = Field(
        default=None, min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    )

    @field_validator("prometheus_url")
    @classmethod
    def _prometheus_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return _http_url(value.strip(), "prometheus_url")

    @field_validator("serving_metrics_urls")
    @classmethod
    def _scrape_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_http_url(url.strip(), "serving_metrics_urls") for url in value)

    @field_validator("retrain_command")
    @classmethod
    def _command(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("retrain_command: give the program and its arguments, or unset it")
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_token(self) -> Self:
        token = self.webhook_token
        if token is None or self.environment == "dev":
            return self
        if is_placeholder(token.get_secret_value()):
            raise ValueError(
                placeholder_error(
                    "MLPLAT_MONITOR_WEBHOOK_TOKEN",
                    "unset it to disable the webhook, or set MLPLAT_MONITOR_ENVIRONMENT=dev",
                )
            )
        return self

    @model_validator(mode="after")
    def _retrain_backend(self) -> Self:
        if self.retrain_backend != "kubernetes_job":
            return self
        if self.retrain_job_template is None:
            raise ValueError(
                "retrain_job_template: required when retrain_backend is kubernetes_job (the Job "
                "manifest to create, e.g. mounted from a ConfigMap); set "
                "MLPLAT_MONITOR_RETRAIN_JOB_TEMPLATE or use retrain_backend=command"
            )
        if self.retrain_command is not None:
            raise ValueError(
                "retrain_command: runs only with retrain_backend=command; with kubernetes_job "
                "the Job template's command runs instead, so unset MLPLAT_MONITOR_RETRAIN_COMMAND"
            )
        return self

    @model_validator(mode="after")
    def _one_judge_source(self) -> Self:
        if self.judge_config_file is not None and "judge" in self.model_fields_set:
            raise ValueError(
                "judge_config_file and judge (MLPLAT_MONITOR_JUDGE__*) are both set: use one"
            )
        return self

    @property
    def resolved_inference_log_url(self) -> str:
        """The inference-log URL, defaulting to the service's default file under ``home``."""
        if self.inference_log_url:
            return self.inference_log_url
        return default_log_url(self.home)

    @property
    def resolved_report_dir(self) -> Path:
        """Where drift reports go."""
        return self.drift_report_dir or self.home / "drift-reports"

    @property
    def resolved_state_dir(self) -> Path:
        """Where the retrain trigger keeps its decisions."""
        return self.state_dir or self.home / "monitor"

    @property
    def webhook_enabled(self) -> bool:
        """Whether ``POST /alertmanager/webhook`` accepts notifications."""
        return self.webhook_token is not None and bool(self.webhook_token.get_secret_value())

    def judge_config(self) -> JudgeConfig:
        """The judge's thresholds: from ``judge_config_file`` when set, else ``judge``.

        Raises:
            MonitorSettingsError: If the file cannot be read or breaks a rule of the config.
        """
        path = self.judge_config_file
        if path is None:
            return self.judge
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise MonitorSettingsError(f"judge_config_file {str(path)!r}: {exc}") from exc
        if not isinstance(data, dict):
            raise MonitorSettingsError(
                f"judge_config_file {str(path)!r}: must hold a mapping of JudgeConfig fields"
            )
        try:
            return JudgeConfig.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}"
                for e in exc.errors()
            )
            raise MonitorSettingsError(f"judge_config_file {str(path)!r}: {problems}") from exc


@lru_cache(maxsize=1)
def get_settings() -> MonitorSettings:
    """The process-wide settings, read from the environment once (``cache_clear()`` in tests)."""
    return MonitorSettings()
