"""The FastAPI inference service: champion/canary serving with metrics and an inference log.

Start with :func:`create_app` (or ``mlplat serve``). The controller reads the inference log
with its own reader (``monitoring/sources/inference_log.py``); Prometheus rules use the names in
:mod:`interfaces.metric_names`.

Attributes are imported on first use, so ``import serving`` (and ``mlplat --help``) stays cheap
and the CLI can set thread and multi-process environment variables before numpy or
prometheus-client load.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from serving.app import create_app
    from serving.deployment import (
        DesiredState,
        FileModelSource,
        ModelSource,
        RegistryModelSource,
    )
    from serving.inference_log import InferenceLogStore
    from serving.metrics import ServingMetrics
    from serving.settings import ServingSettings, get_settings

__all__ = [
    "DesiredState",
    "FileModelSource",
    "InferenceLogStore",
    "ModelSource",
    "RegistryModelSource",
    "ServingMetrics",
    "ServingSettings",
    "create_app",
    "get_settings",
]

_HOMES = {
    "create_app": "serving.app",
    "DesiredState": "serving.deployment",
    "FileModelSource": "serving.deployment",
    "ModelSource": "serving.deployment",
    "RegistryModelSource": "serving.deployment",
    "InferenceLogStore": "serving.inference_log",
    "ServingMetrics": "serving.metrics",
    "ServingSettings": "serving.settings",
    "get_settings": "serving.settings",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'serving' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
