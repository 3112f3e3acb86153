"""``POST /feedback``: join a delayed true label to its logged prediction."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, status
from sqlalchemy.exc import SQLAlchemyError

from serving.deps import RuntimeDep
from serving.inference_log import DuplicateFeedbackError, FeedbackJoin, UnknownPredictionError
from serving.schemas import (
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    ValidationErrorResponse,
)

router = APIRouter(tags=["feedback"])


@router.post(
    "/feedback",
    response_model=FeedbackResponse,
    summary="Report the true outcome of an earlier prediction",
    responses={
        404: {"model": ErrorResponse, "description": "No prediction with this request id/row."},
        409: {"model": ErrorResponse, "description": "A label was already recorded."},
        413: {"model": ErrorResponse, "description": "Body larger than the limit."},
        422: {"model": ValidationErrorResponse, "description": "Malformed feedback."},
        503: {"model": ErrorResponse, "description": "The inference log is off or unreachable."},
    },
)
async def feedback(body: FeedbackRequest, runtime: RuntimeDep) -> FeedbackResponse:
    """Record ``label`` for the prediction of ``request_id`` (record ``row``), once.

    The join feeds ``mlplat_labeled_predictions_total`` with the prediction's variant and model
    version. A prediction made moments ago may still sit in this process's log buffer, so a
    miss flushes the buffer and looks again before answering 404.
    """
    log = runtime.inference_log
    if log is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the inference log is turned off")
    join = log.store.join_feedback
    try:
        try:
            joined: FeedbackJoin = await asyncio.to_thread(
                join, body.request_id, body.row, body.label
            )
        except UnknownPredictionError:
            await log.flush()
            joined = await asyncio.to_thread(join, body.request_id, body.row, body.label)
    except UnknownPredictionError as exc:
        runtime.metrics.record_feedback("unknown_request")
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"{exc}; send feedback only for request ids returned by POST /predict",
        ) from None
    except DuplicateFeedbackError as exc:
        runtime.metrics.record_feedback("duplicate")
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except SQLAlchemyError:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "the inference log store is unavailable"
        ) from None
    runtime.metrics.record_feedback(
        "joined", joined.variant, str(joined.model_version), joined.outcome
    )
    return FeedbackResponse(
        request_id=joined.request_id,
        row=joined.row,
        label=1 if joined.label else 0,
        probability=joined.probability,
        variant="canary" if joined.variant == "canary" else "champion",
        model_version=joined.model_version,
        outcome=joined.outcome,
    )
