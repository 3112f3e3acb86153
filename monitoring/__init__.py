"""Monitoring: drift checks, the canary judge, the controller, and the Prometheus stack's config.

The public API is listed in ``__all__`` and resolved lazily (PEP 562): ``from monitoring import
CanaryJudge`` imports only the judge, so the Prometheus/Alertmanager/Grafana folders and the pure
statistics can be lifted without the controller's MLflow dependency.

- :mod:`monitoring.judge` — the sequential canary judge (:class:`monitoring.judge.CanaryJudge`),
  its statistics and the evidence it weighs (from counters or from the inference log).
- :mod:`monitoring.drift` — calibrated per-feature drift checks, their report and the policy.
- :mod:`monitoring.metrics` — the controller's Prometheus metrics.
- :mod:`monitoring.sources` — what the controller reads, one external system per module:
  Prometheus, a direct scrape of the service's ``/metrics``, the inference log (its reader,
  :class:`~monitoring.sources.inference_log.InferenceLogReader`), MLflow's reference samples.
- :mod:`monitoring.controller` — the loop (judge the canary, act, run the drift job), the
  alerts, the retrain trigger (a local command or a Kubernetes Job) and the reports.
- :mod:`monitoring.wiring` — a controller built from settings (``build_controller``).
- :mod:`monitoring.app` — the controller's HTTP face (Alertmanager webhook, metrics, status).
- :mod:`monitoring.settings` / :mod:`monitoring.cli` — ``mlplat monitor`` and its settings.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitoring.app import create_app
    from monitoring.controller import Controller, CycleReport
    from monitoring.drift import DriftConfig, DriftDetector, DriftResult, check_drift, recommend
    from monitoring.judge import CanaryJudge, CanaryObservation, JudgeConfig, JudgeResult, Verdict
    from monitoring.metrics import ControllerMetrics
    from monitoring.settings import MonitorSettings, get_settings
    from monitoring.sources.inference_log import InferenceLogReader
    from monitoring.wiring import build_controller

_EXPORTS: dict[str, str] = {
    "CanaryJudge": "monitoring.judge",
    "CanaryObservation": "monitoring.judge",
    "Controller": "monitoring.controller",
    "ControllerMetrics": "monitoring.metrics",
    "CycleReport": "monitoring.controller",
    "DriftConfig": "monitoring.drift",
    "DriftDetector": "monitoring.drift",
    "DriftResult": "monitoring.drift",
    "InferenceLogReader": "monitoring.sources.inference_log",
    "JudgeConfig": "monitoring.judge",
    "JudgeResult": "monitoring.judge",
    "MonitorSettings": "monitoring.settings",
    "Verdict": "monitoring.judge",
    "build_controller": "monitoring.wiring",
    "check_drift": "monitoring.drift",
    "create_app": "monitoring.app",
    "get_settings": "monitoring.settings",
    "recommend": "monitoring.drift",
}

__all__ = [
    "CanaryJudge",
    "CanaryObservation",
    "Controller",
    "ControllerMetrics",
    "CycleReport",
    "DriftConfig",
    "DriftDetector",
    "DriftResult",
    "InferenceLogReader",
    "JudgeConfig",
    "JudgeResult",
    "MonitorSettings",
    "Verdict",
    "build_controller",
    "check_drift",
    "create_app",
    "get_settings",
    "recommend",
]


def __getattr__(name: str) -> object:
    """Import a public name's module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'monitoring' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
