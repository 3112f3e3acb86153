"""A controller wired from settings: the one place that opens its registry, sources and MLflow.

:func:`build_controller` opens the registry (or, when MLflow or the event database is down at
start, one that holds until they answer), the metrics source (Prometheus, or a scrape of the
service's ``/metrics``), the inference log and the MLflow client, and the retrain trigger
``retrain_backend`` names (:func:`build_retrain_trigger`). The pipeline's drift rule is handed
in by the caller (``mlplat monitor``, the demo): ``monitoring`` does not import ``ci``.
"""

from __future__ import annotations

import logging
import socket
from datetime import timedelta

import httpx
from mlflow import MlflowClient
from prometheus_client import CollectorRegistry

from monitoring.controller import Controller, utc_now
from monitoring.controller.kubernetes import ClusterAccess, JobClient
from monitoring.controller.retrain import DriftRetrainTrigger, DriftRule, RetrainTrigger
from monitoring.controller.retrain_job import KubernetesJobTrigger, load_job_template
from monitoring.drift import DriftDetector
from monitoring.judge import CanaryJudge
from monitoring.metrics import ControllerMetrics
from monitoring.settings import MonitorSettings, get_settings
from monitoring.sources.base import MetricsSource
from monitoring.sources.inference_log import InferenceLogReader, InferenceLogSource
from monitoring.sources.mlflow_artifacts import RunArtifacts
from monitoring.sources.prometheus import PrometheusSource
from monitoring.sources.scrape import ScrapeSource
from registry import (
    EventStore,
    EventStoreUnavailable,
    ModelRegistry,
    RegistrySettings,
    RegistryUnavailable,
    open_registry,
    registry_from_settings,
)
from registry import get_settings as registry_get_settings

__all__ = ["build_controller", "build_retrain_trigger"]

logger = logging.getLogger(__name__)


def build_controller(
    settings: MonitorSettings | None = None,
    registry_settings: RegistrySettings | None = None,
    *,
    metrics: ControllerMetrics | None = None,
    retrain_rule: DriftRule,
) -> Controller:
    """A controller wired from settings: registry, metrics source, inference log, MLflow.

    Args:
        settings: Controller settings; :func:`monitoring.settings.get_settings` by default.
        registry_settings: Where the registry lives; :func:`registry.get_settings` by default.
        metrics: Where to publish; a fresh registry by default.
        retrain_rule: The pipeline's drift rule (``ci/triggers.py::drift``), which the retrain
            trigger applies.

    Raises:
        RegistryError: If the registry or the event store cannot be opened.
        MonitorSettingsError: If the judge configuration file or the retrain Job template is
            unusable, or ``retrain_backend=kubernetes_job`` outside a pod.
    """
    settings = settings or get_settings()
    registry_settings = registry_settings or registry_get_settings()
    if "actor" not in registry_settings.model_fields_set:
        # Events written by the controller say so, rather than naming the unix user it runs as.
        actor = f"mlplat-controller@{socket.gethostname()}"
        registry_settings = registry_settings.model_copy(update={"actor": actor})
    judge = CanaryJudge(settings.judge_config())
    client = MlflowClient(
        tracking_uri=registry_settings.tracking_uri, registry_uri=registry_settings.tracking_uri
    )
    registry = _open_registry(registry_settings, client)
    artifacts = RunArtifacts(client, registry)
    source = _metrics_source(settings)
    log = InferenceLogSource(InferenceLogReader(settings.resolved_inference_log_url))

    def detector(version: int) -> DriftDetector:
        return DriftDetector(artifacts.reference(version), settings.drift)

    trigger = build_retrain_trigger(settings, retrain_rule)
    return Controller(
        registry,
        source,
        log,
        judge,
        detector,
        metrics or ControllerMetrics(CollectorRegistry(auto_describe=True)),
        utc_now,
        settings,
        retrain_trigger=trigger,
        attach_report=artifacts.attach,
    )


def _open_registry(registry_settings: RegistrySettings, client: MlflowClient) -> ModelRegistry:
    """The registry; if MLflow or the event database is down at start, one that waits for them."""
    try:
        return open_registry(registry_settings)
    except (RegistryUnavailable, EventStoreUnavailable) as exc:
        # Start anyway: the loop holds (and says why) until MLflow and the event database
        # answer, instead of a crash-looping process that looks like ControllerDown.
        logger.warning("registry unavailable at start, holding until it answers: %s", exc)
        registry_settings.ensure_home()
        # The same lock lease, timeouts and failpoints as open_registry would have set.
        events = EventStore(registry_settings.events_url)
        return registry_from_settings(registry_settings, client, events)


def _metrics_source(settings: MonitorSettings) -> MetricsSource:
    """Prometheus when ``prometheus_url`` is set, else a scrape of the service's ``/metrics``."""
    http = httpx.Client(timeout=settings.http_timeout_seconds)
    if settings.prometheus_url:
        return PrometheusSource(http, settings.prometheus_url, settings.prometheus_serving_job)
    return ScrapeSource(http, settings.serving_metrics_urls)


def build_retrain_trigger(settings: MonitorSettings, rule: DriftRule) -> RetrainTrigger:
    """The retrain trigger ``retrain_backend`` names, deciding with ``rule`` either way.

    ``command`` starts ``retrain_command`` beside the controller (compose, the demo);
    ``kubernetes_job`` creates a Job from ``retrain_job_template`` as the pod's service account.

    Raises:
        MonitorSettingsError: If the Job template is unusable or this is not a pod.
    """
    kubernetes = settings.retrain_backend == "kubernetes_job"
    decider = DriftRetrainTrigger(
        settings.resolved_state_dir / "retrain-decisions.json",
        settings.retrain_drift_threshold,
        timedelta(hours=settings.retrain_cooldown_hours),
        None if kubernetes else settings.retrain_command,
        rule=rule,
    )
    if not kubernetes:
        return decider
    assert settings.retrain_job_template is not None  # the settings' validator requires it
    template = load_job_template(settings.retrain_job_template)
    access = ClusterAccess.in_cluster(settings.retrain_job_namespace)
    jobs = JobClient(access.http_client(settings.http_timeout_seconds), access)
    return KubernetesJobTrigger(decider, jobs, template)
