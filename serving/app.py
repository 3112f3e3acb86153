"""The app factory and its lifespan.

``create_app(settings)`` wires routers, error handlers and the body-limit middleware; nothing is
loaded at import or construction. The lifespan opens the inference-log store, starts the
micro-batcher, loads the champion (and the challenger while a canary runs) from the registry,
starts the reconciler, and undoes all of it on shutdown, flushing the log.

``uvicorn --factory serving.app:create_app`` runs it with settings from the environment;
tests call ``create_app(settings, model_source=fake)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from features import CONTRACT, Contract
from serving import errors
from serving.deployment import ModelSource, RegistryModelSource
from serving.inference_log import InferenceLogStore
from serving.metrics import ServingMetrics, create_metrics
from serving.middleware import BodyLimitMiddleware
from serving.multiprocess import multiprocess_dir
from serving.routers import admin, feedback, health, predict
from serving.runtime import ServingRuntime
from serving.settings import ServingSettings, get_settings


def describe(contract: Contract) -> str:
    """The OpenAPI description: what the contract's model decides, and how it is served."""
    return (
        f"{contract.description or contract.name} Scores {contract.score} with the champion "
        "model from the MLflow registry, and with the challenger for the canary's share of "
        "traffic. Every prediction is logged for the drift checks; `POST /feedback` joins the "
        "true outcome later. Metrics at `/metrics`."
    )


def create_app(
    settings: ServingSettings | None = None,
    *,
    model_source: ModelSource | Callable[[], ModelSource] | None = None,
    log_store: InferenceLogStore | None = None,
) -> FastAPI:
    """Build the service.

    Args:
        settings: Configuration; default :func:`~serving.settings.get_settings` (environment).
        model_source: Desired state and models, or a function returning them (called in the
            lifespan); default the MLflow registry (:class:`RegistryModelSource`).
        log_store: The inference-log store; default one on ``settings.inference_log_url``
            (none at all when the log is disabled).

    Returns:
        The FastAPI application; its lifespan does all loading.
    """
    settings = settings or get_settings()
    metrics = create_metrics(enabled=settings.metrics_enabled, multiprocess_dir=multiprocess_dir())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        source = await _resolve_source(model_source, settings)
        store = log_store
        if store is None and settings.inference_log_enabled:
            store = InferenceLogStore(settings.resolved_inference_log_url)
        runtime = await ServingRuntime.start(settings, metrics, source, store)
        app.state.runtime = runtime
        try:
            yield
        finally:
            app.state.runtime = None
            await runtime.stop()

    app = FastAPI(
        title="mlplat inference service",
        version="1.0.0",
        description=describe(CONTRACT),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.runtime = None
    errors.install(app)
    for router in (predict.router, feedback.router, health.router, admin.router):
        app.include_router(router)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        timeout_seconds=settings.body_timeout_seconds,
        on_reject=_count_rejected_body(metrics),
    )
    return app


async def _resolve_source(
    model_source: ModelSource | Callable[[], ModelSource] | None, settings: ServingSettings
) -> ModelSource:
    if model_source is None:
        return await asyncio.to_thread(RegistryModelSource.from_environment, settings)
    if callable(model_source) and not hasattr(model_source, "desired"):
        return model_source()
    return model_source  # type: ignore[return-value]


def _count_rejected_body(metrics: ServingMetrics) -> Callable[[str], None]:
    def count(path: str) -> None:
        metrics.record_error("payload_too_large")

    return count
