"""Where the controller's observations come from: one external system per module.

Three inputs feed a canary judgement and the drift job:

* **Metrics** (:class:`~monitoring.sources.base.MetricsSource`): requests, server-side errors
  and the latency histogram of the champion's and the canary's model versions, counted since
  the canary started. Two implementations read the same serving metrics
  (``interfaces/metric_names.py``): :class:`PrometheusSource` (``prometheus.py``) asks
  Prometheus (PromQL ``increase()`` over the canary's lifetime, which survives service restarts
  and controller restarts alike) and :class:`ScrapeSource` (``scrape.py``) parses the service's
  own ``/metrics``, so the controller runs with no Prometheus at all (the embedded demo). Client
  errors (``invalid_input``, ``payload_too_large``) are not counted: a bad caller is not the
  model's fault.
* **The inference log** (:class:`InferenceLogSource` over :class:`InferenceLogReader`,
  ``inference_log.py``): the scores each variant gave (the judge's prediction-distribution
  guardrail), the delayed labels joined to them (quality), windows of logged rows for the drift
  checks, and every row with its time, routing hash, latency, slice and failure
  (:meth:`InferenceLogSource.judge_inputs`), from which ``monitoring/judge/log_evidence.py``
  builds the judge's stratified, cluster-robust evidence.
* **MLflow** (:class:`RunArtifacts`, ``mlflow_artifacts.py``): the reference sample logged with
  each model version's training run (``interfaces/tags.py::REFERENCE_ARTIFACT``), and where a
  canary's drift report is attached.

Every source raises :class:`SourceUnavailable` (``base.py``, with the protocols the controller
reads through), naming itself and the cause, when it cannot answer; the controller then holds
(never promotes on partial data) and says why.

Names are imported on first use (PEP 562), so a scrape-only controller or a test of one source
does not load MLflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitoring.sources.base import (
        JudgeLogInputs,
        JudgeLogSource,
        LogSource,
        MetricsSource,
        ReferenceNotFound,
        SourceName,
        SourceUnavailable,
    )
    from monitoring.sources.inference_log import InferenceLogReader, InferenceLogSource
    from monitoring.sources.mlflow_artifacts import RunArtifacts
    from monitoring.sources.prometheus import PrometheusSource
    from monitoring.sources.scrape import ScrapeSource

_EXPORTS: dict[str, str] = {
    "InferenceLogReader": "monitoring.sources.inference_log",
    "InferenceLogSource": "monitoring.sources.inference_log",
    "JudgeLogInputs": "monitoring.sources.base",
    "JudgeLogSource": "monitoring.sources.base",
    "LogSource": "monitoring.sources.base",
    "MetricsSource": "monitoring.sources.base",
    "PrometheusSource": "monitoring.sources.prometheus",
    "ReferenceNotFound": "monitoring.sources.base",
    "RunArtifacts": "monitoring.sources.mlflow_artifacts",
    "ScrapeSource": "monitoring.sources.scrape",
    "SourceName": "monitoring.sources.base",
    "SourceUnavailable": "monitoring.sources.base",
}

__all__ = [
    "InferenceLogReader",
    "InferenceLogSource",
    "JudgeLogInputs",
    "JudgeLogSource",
    "LogSource",
    "MetricsSource",
    "PrometheusSource",
    "ReferenceNotFound",
    "RunArtifacts",
    "ScrapeSource",
    "SourceName",
    "SourceUnavailable",
]


def __getattr__(name: str) -> object:
    """Import a public name's module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'monitoring.sources' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
