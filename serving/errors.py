"""Error responses: 422s that name the field and the rule, 500s that reveal nothing.

Every 422 has the same shape (:class:`~serving.schemas.ValidationErrorResponse`): a one-line
``detail`` and one entry per broken rule with ``field`` (``records[0].age``), ``rule`` (from the
feature contract: ``an integer in [18, 100] (years)``) and pydantic's ``message``. A rejected
``/predict`` also feeds the input-quality metric, per feature and issue.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from features import feature
from serving.metrics import RECORD_LEVEL, UNKNOWN_FEATURE, InputIssue, ServingMetrics
from serving.schemas import FieldError, contract_rule

logger = logging.getLogger(__name__)

_OUT_OF_RANGE = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}
_WRONG_TYPE = {
    "int_type",
    "int_parsing",
    "int_from_float",
    "float_type",
    "float_parsing",
    "string_type",
    "bool_type",
}


def _field_path(loc: Sequence[Any]) -> str:
    parts = list(loc[1:]) if loc and loc[0] == "body" else list(loc)
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def _record_feature(loc: Sequence[Any]) -> tuple[int | None, str | None]:
    """(record index, field name) when ``loc`` points into ``records[i].field``."""
    if len(loc) >= 4 and loc[0] == "body" and loc[1] == "records" and isinstance(loc[2], int):
        return loc[2], str(loc[3])
    return None, None


def _issue(error_type: str) -> InputIssue:
    if error_type == "missing":
        return "missing"
    if error_type in _OUT_OF_RANGE or error_type == "finite_number":
        return "out_of_range"
    if error_type == "literal_error":
        return "unknown_category"
    if error_type in _WRONG_TYPE:
        return "wrong_type"
    if error_type == "extra_forbidden":
        return "unknown_field"
    return "malformed"


def _rule(error: dict[str, Any], field_name: str | None) -> str:
    if error["type"] == "extra_forbidden":
        return "only the feature contract's fields and customer_id are allowed"
    if field_name is not None:
        try:
            rule = contract_rule(feature(field_name))
        except KeyError:
            pass
        else:
            return f"required: {rule}" if error["type"] == "missing" else rule
    ctx = error.get("ctx") or {}
    if error["type"] == "missing":
        return "required"
    if "pattern" in ctx:
        return f"must match {ctx['pattern']}"
    if "max_length" in ctx:
        return f"at most {ctx['max_length']} items or characters"
    if "min_length" in ctx:
        return f"at least {ctx['min_length']} items or characters"
    if ctx:
        return ", ".join(f"{k} {v}" for k, v in ctx.items() if k != "error")
    return str(error["msg"])


def describe(errors: Sequence[dict[str, Any]]) -> list[FieldError]:
    """Turn pydantic/FastAPI validation errors into field/rule/message entries."""
    described = []
    for error in errors:
        loc = error.get("loc", ())
        _, field_name = _record_feature(loc)
        described.append(
            FieldError(
                field=_field_path(loc),
                rule=_rule(error, field_name),
                message=str(error.get("msg", "invalid value")),
                type=str(error.get("type", "value_error")),
            )
        )
    return described


def _count_input_issues(metrics: ServingMetrics, errors: Sequence[dict[str, Any]]) -> None:
    rejected: set[int] = set()
    for error in errors:
        index, field_name = _record_feature(error.get("loc", ()))
        issue = _issue(str(error.get("type", "")))
        if index is not None:
            rejected.add(index)
        if field_name is None:
            metrics.record_input_issue(RECORD_LEVEL, issue)
        elif issue == "unknown_field":
            metrics.record_input_issue(UNKNOWN_FEATURE, issue)
        else:
            metrics.record_input_issue(field_name, issue)
    metrics.record_input_records(accepted=0, rejected=max(1, len(rejected)))
    metrics.record_error("invalid_input")


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """422 with every broken rule named; ``/predict`` rejections feed the input metrics."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    entries = describe(errors)
    if request.url.path == "/predict":
        _count_input_issues(request.app.state.metrics, errors)
    first = entries[0] if entries else None
    summary = (
        f"{first.field}: {first.message} (rule: {first.rule})"
        if first is not None
        else "invalid request"
    )
    if len(entries) > 1:
        summary += f"; and {len(entries) - 1} more"
    return JSONResponse(
        status_code=422,
        content={"detail": summary, "errors": [e.model_dump() for e in entries]},
    )


async def unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """500 without internals; the traceback goes to the service log only."""
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if request.url.path == "/predict":
        request.app.state.metrics.record_error("internal")
    return JSONResponse(status_code=500, content={"detail": "internal server error"})


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(Exception, unhandled_error_handler)
