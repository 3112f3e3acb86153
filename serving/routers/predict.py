"""``POST /predict``: validate, route, batch-score, answer, log — in that order.

This is the hot path, so it avoids per-request work it does not need: no ``DataFrame`` (the
batcher builds one per batch), metric children bound once, the response encoded straight to
JSON bytes, and the inference log only appends to a buffer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse

from features import ENTITY_ID, FEATURE_NAMES, FEATURES, SEGMENT
from interfaces.routing import Variant, key_hash
from serving.batcher import BatcherStoppedError, MicroBatcher, OverloadedError
from serving.deps import RuntimeDep
from serving.inference_log import FailedRecord, InferenceLogger, InferenceRecord
from serving.metrics import ServingMetrics
from serving.middleware import ARRIVED_AT
from serving.runtime import ServingRuntime
from serving.schemas import (
    ID_PATTERN,
    ErrorResponse,
    FeatureRecord,
    PredictRequest,
    PredictResponse,
    ValidationErrorResponse,
)
from serving.snapshot import Deployment, LoadedModel

router = APIRouter(tags=["predict"])

_NULLABLE = tuple(f.name for f in FEATURES if f.nullable)
_SLICE_INDEX = None if SEGMENT is None else FEATURE_NAMES.index(SEGMENT)

RequestIdHeader = Annotated[
    str | None,
    Header(
        alias="X-Request-ID",
        pattern=ID_PATTERN,
        description="Your id for this request, echoed back and used by /feedback; "
        "generated when absent.",
    ),
]


def _error(status_code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status_code, content={"detail": detail}, headers=headers)


@dataclass
class _Group:
    """The records of one request that one variant scores."""

    model: LoadedModel
    indices: list[int] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    points: list[float] = field(default_factory=list)


def _route(
    records: Sequence[FeatureRecord],
    deployment: Deployment,
    request_id: str,
    metrics: ServingMetrics,
) -> dict[Variant, _Group] | None:
    """Group records by the variant their routing key picks; None when no model is loaded."""
    groups: dict[Variant, _Group] = {}
    for index, record in enumerate(records):
        values = record.__dict__
        # Without a routing key in the contract, a request's records route by its id.
        point = key_hash((values[ENTITY_ID] if ENTITY_ID else None) or request_id)
        routed = deployment.route_point(point)
        if routed is None:
            return None
        variant, model = routed
        group = groups.get(variant)
        if group is None:
            group = groups[variant] = _Group(model)
        group.indices.append(index)
        group.points.append(point)
        group.rows.append([values[name] for name in FEATURE_NAMES])
        for name in _NULLABLE:
            if values[name] is None:
                metrics.record_input_issue(name, "null")
    return groups


class _ModelFailedError(Exception):
    """Some groups' models raised while scoring; ``failed`` names their variants."""

    def __init__(self, failed: list[Variant]) -> None:
        super().__init__(f"the model of {', '.join(failed)} failed to score")
        self.failed = failed


async def _score(batcher: MicroBatcher, groups: dict[Variant, _Group]) -> list[list[float]]:
    """The score per row, one list per group (the groups are batched concurrently).

    Raises:
        OverloadedError, BatcherStoppedError: The batcher refused (no model is at fault).
        _ModelFailedError: A model raised; only the variants whose model raised are named.
    """
    if len(groups) == 1:  # the common case, without gather's task
        ((variant, group),) = groups.items()
        try:
            return [await batcher.score(group.model.predictor, group.rows)]
        except (OverloadedError, BatcherStoppedError):
            raise
        except Exception as exc:
            raise _ModelFailedError([variant]) from exc
    pending = [batcher.score(g.model.predictor, g.rows) for g in groups.values()]
    results = await asyncio.gather(*pending, return_exceptions=True)
    for result in results:
        if isinstance(result, OverloadedError | BatcherStoppedError):
            raise result
    failed = [v for v, r in zip(groups, results, strict=True) if isinstance(r, BaseException)]
    if failed:
        raise _ModelFailedError(failed)
    return [r for r in results if not isinstance(r, BaseException)]


def _log_failures(
    log: InferenceLogger | None,
    request_id: str,
    groups: dict[Variant, _Group],
    failed: list[Variant],
    latency_s: float,
) -> None:
    """Log the rows of the variants whose model failed: the judge counts them as errors."""
    if log is None:
        return
    now = time.time()
    for variant in failed:
        group = groups[variant]
        for index, row, point in zip(group.indices, group.rows, group.points, strict=True):
            value = None if _SLICE_INDEX is None else row[_SLICE_INDEX]
            log.log(
                FailedRecord(
                    now,
                    request_id,
                    index,
                    variant,
                    group.model.version,
                    point,
                    latency_s,
                    None if value is None else str(value),
                )
            )


def _answers(
    runtime: ServingRuntime,
    request_id: str,
    groups: dict[Variant, _Group],
    scores: list[list[float]],
    count: int,
    elapsed: float,
) -> list[dict[str, Any] | None]:
    """Each record's answer, in request order; every score observed and logged on the way."""
    threshold = runtime.settings.prediction_threshold
    log = runtime.inference_log
    now = time.time()
    predictions: list[dict[str, Any] | None] = [None] * count
    for (variant, group), probabilities in zip(groups.items(), scores, strict=True):
        model = group.model
        runtime.metrics.observe_scores(variant, model.label, elapsed, probabilities)
        for index, row, point, probability in zip(
            group.indices, group.rows, group.points, probabilities, strict=True
        ):
            prediction = 1 if probability >= threshold else 0
            predictions[index] = {
                "prediction": prediction,
                "probability": probability,
                "model_version": model.version,
                "variant": variant,
            }
            if log is not None:
                record = InferenceRecord(
                    now, request_id, index, variant, model.version, probability, prediction,
                    row, point, elapsed,
                )  # fmt: skip
                log.log(record)
    return predictions


@router.post(
    "/predict",
    response_model=PredictResponse,
    summary="Score one or more records",
    responses={
        413: {"model": ErrorResponse, "description": "Body larger than the limit."},
        422: {"model": ValidationErrorResponse, "description": "A record breaks the contract."},
        503: {"model": ErrorResponse, "description": "No model loaded yet, or overloaded."},
    },
)
async def predict(
    body: PredictRequest,
    request: Request,
    runtime: RuntimeDep,
    x_request_id: RequestIdHeader = None,
) -> Response:
    """Score records with the champion or, for the canary's share of routing keys, the canary.

    A record's routing key is its ``customer_id`` when present, else the request id, so a
    customer always sees the same variant.
    """
    arrived = request.scope.get(ARRIVED_AT) or time.perf_counter()
    metrics = runtime.metrics
    request_id = x_request_id or runtime.new_request_id()
    deployment = runtime.holder.current  # one snapshot for the whole request
    metrics.request_started()
    try:
        groups = _route(body.records, deployment, request_id, metrics)
        if groups is None:
            metrics.record_error("model_unavailable")
            return _error(503, "no model is loaded yet; see GET /ready")
        metrics.record_input_records(accepted=len(body.records))
        try:
            scores = await _score(runtime.batcher, groups)
        except OverloadedError:
            metrics.record_error("overloaded")
            return _error(503, "the service is overloaded; retry shortly", {"Retry-After": "1"})
        except BatcherStoppedError:
            metrics.record_error("model_unavailable")
            return _error(503, "the service is shutting down; retry shortly", {"Retry-After": "1"})
        except _ModelFailedError as exc:
            for variant in exc.failed:
                metrics.record_error("inference_failure", variant, groups[variant].model.label)
            failed_after = time.perf_counter() - arrived
            _log_failures(runtime.inference_log, request_id, groups, exc.failed, failed_after)
            return _error(500, "the model failed to score the request")

        elapsed = time.perf_counter() - arrived
        predictions = _answers(runtime, request_id, groups, scores, len(body.records), elapsed)
        content = json.dumps({"request_id": request_id, "predictions": predictions})
        return Response(
            content, media_type="application/json", headers={"X-Request-ID": request_id}
        )
    finally:
        metrics.request_finished()
