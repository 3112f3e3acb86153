"""Probes and introspection: ``/health``, ``/ready``, ``/model``, ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.deps import RuntimeDep
from serving.schemas import DeploymentView, HealthResponse, ReadyResponse
from serving.snapshot import Deployment
from serving.views import deployment_view, failure_views, refusal_views

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthResponse, summary="Liveness")
async def health() -> HealthResponse:
    """The process is up and its event loop answers (models may still be loading)."""
    return HealthResponse()


@router.get(
    "/ready",
    response_model=ReadyResponse,
    summary="Readiness",
    responses={503: {"model": ReadyResponse, "description": "No champion loaded."}},
)
async def ready(runtime: RuntimeDep) -> JSONResponse:
    """200 while a champion serves; 503 before, with the reason.

    Readiness answers "can this process score a request?", so a registry outage alone does not
    make it 503 (the loaded models keep serving): the outage is reported in ``registry_error``
    within a few poll intervals, with ``last_registry_success_at``, and so are load failures
    and refused versions.
    """
    deployment = runtime.holder.current
    reconciler = runtime.reconciler
    registry_error = reconciler.registry_error
    reason = None
    if not deployment.ready:
        reason = _not_ready_reason(deployment, registry_error, reconciler.last_success_at is None)
    body = ReadyResponse(
        ready=deployment.ready,
        deployment=deployment_view(deployment),
        failures=failure_views(deployment),
        last_reconciled_at=deployment.reconciled_at,
        registry_error=registry_error,
        last_registry_success_at=reconciler.last_success_at,
        event_log_error=reconciler.event_log_error,
        refusals=refusal_views(deployment),
        reason=reason,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if deployment.ready else 503)


def _not_ready_reason(
    deployment: Deployment, registry_error: str | None, never_answered: bool
) -> str:
    refused = [r.detail for r in deployment.refusals if r.variant == "champion"]
    if registry_error:
        return f"no champion is loaded: {registry_error}"
    if never_answered:
        return "no champion is loaded yet: waiting for the registry's first answer"
    if refused:
        return f"no champion is loaded: {refused[0]}"
    if deployment.failures:
        return f"no champion is loaded: version {deployment.failures[0].version} failed to load"
    return "no champion is loaded yet"


@router.get("/model", response_model=DeploymentView, summary="What is deployed, since when")
async def model(runtime: RuntimeDep) -> DeploymentView:
    """The served champion and canary versions, since when they hold their role, and the weight."""
    return deployment_view(runtime.holder.current)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics(request: Request) -> Response:
    """All workers' metrics in the Prometheus text format."""
    registry = request.app.state.metrics.exposition_registry()
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
