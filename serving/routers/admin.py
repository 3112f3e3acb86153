"""``/admin/*``: operator actions, behind the bearer token."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, HTTPException, Response, status

from serving.deps import AdminDep, RuntimeDep
from serving.schemas import DriftReport, ErrorResponse, ReloadResponse, ValidationErrorResponse
from serving.views import deployment_view, failure_views

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[AdminDep],
    responses={
        401: {"model": ErrorResponse, "description": "No bearer token."},
        403: {"model": ErrorResponse, "description": "Wrong bearer token."},
        413: {"model": ErrorResponse, "description": "Body larger than the limit."},
    },
)


@router.post(
    "/reload",
    response_model=ReloadResponse,
    summary="Reconcile with the registry now",
    responses={503: {"model": ErrorResponse, "description": "The registry did not answer."}},
)
async def reload(runtime: RuntimeDep) -> ReloadResponse:
    """Read aliases and canary weight now, load what changed, swap atomically.

    Versions that failed to load are retried at once. A failure leaves the previous model
    serving; ``converged`` is then false and ``failures`` says which version failed; a version
    the registry may not serve is listed in ``deployment.refusals``. When the registry does not
    answer within ``MLPLAT_SERVING_RELOAD_TIMEOUT_SECONDS`` (or cannot be reached) the answer
    is 503; a slow reconciliation goes on in the background.
    """
    task = runtime.reconciler.reconcile_in_background(force=True)
    timeout = runtime.settings.reload_timeout_seconds
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the registry did not answer within {timeout:g} s; the reconciliation goes on in "
            "the background (see GET /ready)",
        )
    result = task.result()
    if result.registry_error is not None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"{result.registry_error}; the models loaded before keep serving (see GET /ready)",
        )
    return ReloadResponse(
        changed=result.changed,
        converged=result.converged,
        deployment=deployment_view(result.deployment),
        failures=failure_views(result.deployment),
    )


@router.post(
    "/drift",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Publish a drift check's scores as metrics",
    responses={422: {"model": ValidationErrorResponse, "description": "Malformed report."}},
)
async def drift(report: DriftReport, runtime: RuntimeDep) -> Response:
    """Set ``mlplat_feature_drift_score`` and ``mlplat_drifted_features_ratio`` for a variant.

    The monitoring drift job posts here after each check, so the scores are scraped with the
    rest of the service's metrics.
    """
    checked_at = report.checked_at.timestamp() if report.checked_at else time.time()
    runtime.metrics.record_drift(
        report.variant,
        str(report.model_version),
        report.scores,
        report.drifted_ratio,
        checked_at,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
