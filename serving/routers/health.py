"""Probes and introspection: ``/health``, ``/ready``, ``/model``, ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.deps import RuntimeDep
from serving.schemas import DeploymentView, HealthResponse, ReadyResponse
from serving.views import deployment_view, failure_views

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
    """200 once a champion is loaded, with versions and any load failures; 503 before."""
    deployment = runtime.holder.current
    body = ReadyResponse(
        ready=deployment.ready,
        deployment=deployment_view(deployment),
        failures=failure_views(deployment),
        last_reconciled_at=deployment.reconciled_at,
        registry_error=runtime.reconciler.registry_error,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if deployment.ready else 503)


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
