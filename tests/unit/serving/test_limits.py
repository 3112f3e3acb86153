"""Request limits and messages: slow bodies, huge error lists, malformed JSON, boolean labels.

A client mistake always gets a 4xx whose message says what was wrong and where; no request can
make the service build a response much larger than the request or hold a connection forever.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message

from serving.middleware import BodyLimitMiddleware
from tests.unit.serving.conftest import predict_body, record

pytestmark = pytest.mark.unit


async def _app_reading_the_body(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body", False):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _serve_once(
    headers: list[tuple[bytes, bytes]], chunks: list[bytes], stall: bool
) -> list[Message]:
    """Run the middleware for one request whose body stalls after ``chunks`` if ``stall``."""
    sent: list[Message] = []

    async def scenario() -> None:
        pending = list(chunks)

        async def receive() -> Message:
            if pending:
                return {"type": "http.request", "body": pending.pop(0), "more_body": True}
            if stall:
                await asyncio.Event().wait()  # the client stopped sending
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        middleware = BodyLimitMiddleware(_app_reading_the_body, max_bytes=1024, timeout_seconds=0.2)
        scope = {"type": "http", "method": "POST", "path": "/predict", "headers": headers}
        await asyncio.wait_for(middleware(scope, receive, send), 5)

    asyncio.run(scenario())
    return sent


@pytest.mark.parametrize(
    "headers",
    [[(b"content-length", b"100")], [(b"transfer-encoding", b"chunked")]],
    ids=["declared-length", "chunked"],
)
def test_a_body_that_stops_arriving_gets_a_408(headers: list[tuple[bytes, bytes]]) -> None:
    """Half a body, then silence: 408 after the body timeout, and the connection is closed."""
    started = time.monotonic()
    sent = _serve_once(headers, [b'{"records": ['], stall=True)
    assert time.monotonic() - started < 4
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    detail = json.loads(sent[1]["body"])["detail"]
    assert detail == ("the request body did not arrive within 0.2 s; send the whole body promptly")


def test_a_prompt_body_in_several_chunks_is_served() -> None:
    """The deadline covers the whole body, not each chunk; a normal upload passes."""
    sent = _serve_once([(b"content-length", b"6")], [b"abc", b"def"], stall=False)
    assert sent[0]["status"] == 200


def test_a_record_with_90k_unknown_keys_gets_one_short_error(client: TestClient) -> None:
    """Validation stops at one error for the record, not 90,000 (a 15 MB answer before)."""
    body = predict_body(record(**{f"{i:x}": 0 for i in range(90_000)}))
    payload = json.dumps(body).encode()
    assert len(payload) > 900_000
    response = client.post(
        "/predict", content=payload, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert len(response.content) < 2_000
    (error,) = response.json()["errors"]
    assert error["field"] == "records[0]"
    assert error["type"] == "too_many_fields"
    assert error["message"] == (
        "the record has 90013 fields, 90000 of them unknown (the first: '0')"
    )
    assert error["rule"].startswith("at most 28 fields; only the feature contract's fields")
    metrics = client.get("/metrics").text
    assert 'mlplat_input_issues_total{feature="_record",issue="unknown_field"} 1.0' in metrics


def test_a_long_error_list_is_cut_to_the_first_20_and_counts_the_rest(
    client: TestClient,
) -> None:
    """512 bad records, 1,024 broken rules: 20 are listed, the detail counts them all."""
    body = predict_body(*[record(age=5, segment="x") for _ in range(512)])
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    answer = response.json()
    assert len(answer["errors"]) == 20
    assert answer["detail"].endswith("; and 1023 more (the first 20 are listed)")
    metrics = client.get("/metrics").text
    assert 'mlplat_input_issues_total{feature="age",issue="out_of_range"} 512.0' in metrics
    assert 'mlplat_input_records_total{outcome="rejected"} 512.0' in metrics


def test_the_error_list_cap_is_a_setting(make_client: Any) -> None:
    """max_validation_errors bounds the list."""
    service = make_client(max_validation_errors=2)
    response = service.post(
        "/predict", json=predict_body(record(age=5, segment="x", loan_term_months=1))
    )
    assert len(response.json()["errors"]) == 2
    assert response.json()["detail"].endswith("; and 2 more (the first 2 are listed)")


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        (b'{"records": [', "line 1, column 14"),
        (b'{"records": [\n  {"age": 41,}\n]}', "line 2, column 14"),
        (b"records=1", "line 1, column 1"),
    ],
    ids=["truncated", "trailing-comma", "form-data"],
)
def test_malformed_json_is_named_as_such_with_line_and_column(
    client: TestClient, payload: bytes, where: str
) -> None:
    """Not a 'field' that is a character offset with an empty rule: the body, and where."""
    response = client.post(
        "/predict", content=payload, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "body"
    assert error["type"] == "json_invalid"
    assert error["message"].startswith("the body is not valid JSON: ")
    assert error["message"].endswith(f"at {where}")
    assert error["rule"] == "the body must be a JSON document (Content-Type: application/json)"
    assert response.json()["detail"].startswith("body: the body is not valid JSON")


@pytest.mark.parametrize("label", [True, False, "1", 0.5, 2])
def test_feedback_refuses_a_label_that_is_not_the_integer_0_or_1(
    client: TestClient, label: object
) -> None:
    """`label: true` is a client mistake: 422 naming the field and the rule, never stored."""
    response = client.post("/feedback", json={"request_id": "abc", "label": label})
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "label"
    assert error["rule"] == "0 or 1 as a JSON integer (not true/false, not a string)"


def test_feedback_takes_the_integers_0_and_1(client: TestClient) -> None:
    """The valid labels get past validation (404: no such prediction, which is the next check)."""
    for label in (0, 1):
        response = client.post("/feedback", json={"request_id": "nobody", "label": label})
        assert response.status_code == 404
