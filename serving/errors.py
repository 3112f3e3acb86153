"""Error responses: 422s that name the field and the rule, 500s that reveal nothing.

Every 422 has the same shape (:class:`~serving.schemas.ValidationErrorResponse`): a one-line
``detail`` and one entry per broken rule with ``field`` (``records[0].age``), ``rule`` (from the
feature contract: ``an integer in [18, 100] (years)``) and pydantic's ``message``. The list
stops at ``max_validation_errors`` entries and ``detail`` counts the rest, so a body with tens
of thousands of unknown keys gets a short answer, quickly. A body that is not JSON at all is
one entry saying so, with the line and column where parsing stopped. A rejected ``/predict``
also feeds the input-quality metric, per feature and issue.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from features import ENTITY_ID, feature
from interfaces.metric_names import RECORD_LEVEL, UNKNOWN_FEATURE, InputIssue
from serving.metrics import ServingMetrics
from serving.schemas import LABEL_RULE, MAX_RECORD_FIELDS, FieldError, contract_rule

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
    if error_type in ("extra_forbidden", "too_many_fields"):
        return "unknown_field"
    return "malformed"


_AND_KEY = f" and {ENTITY_ID}" if ENTITY_ID else ""
"""The routing key allowed beside the features, when the contract names one."""

_BODY_FIELD_RULES = {("/feedback", "label"): LABEL_RULE}
"""Rules of body fields outside the feature contract, by (path, field)."""


def _rule(error: dict[str, Any], field_name: str | None, path: str = "") -> str:
    if error["type"] == "extra_forbidden":
        if path == "/predict":
            return f"only the feature contract's fields{_AND_KEY} are allowed"
        return "unknown field; see the request schema in /docs"
    if error["type"] == "too_many_fields":
        return (
            f"at most {MAX_RECORD_FIELDS} fields; only the feature contract's fields{_AND_KEY} "
            "are allowed"
        )
    loc = error.get("loc", ())
    if len(loc) == 2 and loc[0] == "body" and (path, loc[1]) in _BODY_FIELD_RULES:
        return _BODY_FIELD_RULES[path, str(loc[1])]
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


def _position(document: object, offset: int) -> str:
    """``line L, column C`` of character ``offset`` in ``document`` (1-based, as editors count)."""
    if not isinstance(document, str):
        return f"character {offset + 1}"
    line = document.count("\n", 0, offset) + 1
    column = offset - (document.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def _invalid_json(error: dict[str, Any], document: object) -> FieldError:
    loc = error.get("loc", ())
    offset = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
    reason = str((error.get("ctx") or {}).get("error", "not JSON"))
    return FieldError(
        field="body",
        rule="the body must be a JSON document (Content-Type: application/json)",
        message=f"the body is not valid JSON: {reason} at {_position(document, offset)}",
        type="json_invalid",
    )


def describe(
    errors: Sequence[dict[str, Any]], document: object = None, path: str = ""
) -> list[FieldError]:
    """Turn pydantic/FastAPI validation errors into field/rule/message entries.

    Args:
        errors: The errors, as ``RequestValidationError.errors()`` lists them.
        document: The request body FastAPI could not parse, if it could not (to say where).
        path: The request path (some rules depend on the endpoint).
    """
    described = []
    for error in errors:
        if error.get("type") == "json_invalid":
            described.append(_invalid_json(error, document))
            continue
        loc = error.get("loc", ())
        _, field_name = _record_feature(loc)
        described.append(
            FieldError(
                field=_field_path(loc),
                rule=_rule(error, field_name, path),
                message=str(error.get("msg", "invalid value")),
                type=str(error.get("type", "value_error")),
            )
        )
    return described


def _count_input_issues(metrics: ServingMetrics, errors: Sequence[dict[str, Any]]) -> None:
    rejected: set[int] = set()
    counts: Counter[tuple[str, InputIssue]] = Counter()
    for error in errors:
        index, field_name = _record_feature(error.get("loc", ()))
        issue = _issue(str(error.get("type", "")))
        if index is not None:
            rejected.add(index)
        if field_name is None:
            counts[RECORD_LEVEL, issue] += 1
        elif issue == "unknown_field":
            counts[UNKNOWN_FEATURE, issue] += 1
        else:
            counts[field_name, issue] += 1
    # One metric update per (feature, issue), not per error: 90k unknown keys are one update.
    for (feature_name, issue), count in counts.items():
        metrics.record_input_issue(feature_name, issue, count)
    metrics.record_input_records(accepted=0, rejected=max(1, len(rejected)))
    metrics.record_error("invalid_input")


DEFAULT_MAX_ERRORS = 20
"""Errors listed in one 422 when the app's settings do not say otherwise."""


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """422 naming the broken rules (the first few); ``/predict`` rejections feed the metrics."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    settings = getattr(request.app.state, "settings", None)
    limit = getattr(settings, "max_validation_errors", DEFAULT_MAX_ERRORS)
    entries = describe(errors[:limit], exc.body, request.url.path)
    if request.url.path == "/predict":
        _count_input_issues(request.app.state.metrics, errors)
    first = entries[0] if entries else None
    summary = (
        f"{first.field}: {first.message} (rule: {first.rule})"
        if first is not None
        else "invalid request"
    )
    if len(errors) > 1:
        summary += f"; and {len(errors) - 1} more"
    if len(errors) > len(entries):
        summary += f" (the first {len(entries)} are listed)"
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
