"""The service end to end in-process: predict, feedback, admin, probes, reloads, bad input."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from interfaces.routing import choose_variant, key_hash
from serving.deployment import DesiredState
from serving.inference_log import InferenceLogStore
from tests.unit.serving.conftest import AUTH, ConstantModel, FakeSource, predict_body, record

pytestmark = pytest.mark.unit


def _predict(client: TestClient, **kwargs: Any) -> dict[str, Any]:
    response = client.post("/predict", json=predict_body(), **kwargs)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _canary_on(client: TestClient, source: FakeSource, weight: float) -> None:
    source.state = DesiredState(champion=1, challenger=2, canary_weight=weight)
    assert client.post("/admin/reload", headers=AUTH).json()["converged"] is True


def test_predict_answers_prediction_probability_version_variant_and_request_id(
    client: TestClient,
) -> None:
    """A prediction carries class, probability, version and variant; the body a request id."""
    body = _predict(client)
    (prediction,) = body["predictions"]
    assert set(prediction) == {"prediction", "probability", "model_version", "variant"}
    assert 0.0 <= prediction["probability"] <= 1.0
    assert prediction["prediction"] == int(prediction["probability"] >= 0.5)
    assert (prediction["model_version"], prediction["variant"]) == (1, "champion")
    assert body["request_id"]


def test_the_callers_request_id_is_echoed(client: TestClient) -> None:
    """An X-Request-ID from the caller comes back in the body and the header."""
    response = client.post("/predict", json=predict_body(), headers={"X-Request-ID": "abc-123"})
    assert response.json()["request_id"] == "abc-123"
    assert response.headers["X-Request-ID"] == "abc-123"


def test_generated_request_ids_are_unique(client: TestClient) -> None:
    """Without a caller's id, each request gets a distinct one."""
    ids = {_predict(client)["request_id"] for _ in range(5)}
    assert len(ids) == 5


def test_a_batch_is_answered_in_order(client: TestClient) -> None:
    """A batch's predictions come back in the order of its records."""
    records = [record(credit_score=score) for score in (350, 800, 600)]
    response = client.post("/predict", json={"records": records})
    probabilities = [p["probability"] for p in response.json()["predictions"]]
    assert len(probabilities) == 3
    assert probabilities[0] > probabilities[1]  # a poor score is riskier than an excellent one


def test_a_customer_sticks_to_one_variant_and_the_split_follows_the_weight(
    client: TestClient, source: FakeSource
) -> None:
    """The same customer always gets the same variant, chosen by the salted routing hash."""
    _canary_on(client, source, 0.5)
    customers = [f"c-{i:04d}" for i in range(60)]
    records = [record(customer_id=c) for c in customers]
    first = client.post("/predict", json={"records": records}).json()["predictions"]
    again = client.post("/predict", json={"records": records}).json()["predictions"]
    variants = [p["variant"] for p in first]
    assert variants == [p["variant"] for p in again]
    assert variants == [choose_variant(c, 0.5, "2") for c in customers]
    canary = [p for p in first if p["variant"] == "canary"]
    assert canary
    assert {(p["model_version"], p["probability"]) for p in canary} == {(2, 0.9)}


def test_without_a_customer_id_the_request_id_routes(
    client: TestClient, source: FakeSource
) -> None:
    """A record without a routing key is routed by the request id."""
    _canary_on(client, source, 0.5)
    for request_id in ("r-1", "r-2", "r-3", "r-4"):
        body = _predict(client, headers={"X-Request-ID": request_id})
        assert body["predictions"][0]["variant"] == choose_variant(request_id, 0.5, "2")


def test_feedback_joins_the_label_to_the_logged_prediction(client: TestClient) -> None:
    """A label joins its logged prediction and is classified as an outcome."""
    _predict(client, headers={"X-Request-ID": "req-1"})
    response = client.post("/feedback", json={"request_id": "req-1", "label": 1})
    assert response.status_code == 200, response.text
    joined = response.json()
    assert (joined["variant"], joined["model_version"], joined["label"]) == ("champion", 1, 1)
    assert joined["outcome"] in {"tp", "fn"}


def test_feedback_for_an_unknown_request_id_is_a_clear_404(client: TestClient) -> None:
    """A label for a request that was never logged is a 404 naming the id."""
    response = client.post("/feedback", json={"request_id": "never-seen", "label": 0})
    assert response.status_code == 404
    assert "no prediction was logged for request_id 'never-seen'" in response.json()["detail"]


def test_a_second_label_for_the_same_prediction_is_a_409(client: TestClient) -> None:
    """A prediction takes one label; a second is a 409."""
    _predict(client, headers={"X-Request-ID": "req-2"})
    assert client.post("/feedback", json={"request_id": "req-2", "label": 0}).status_code == 200
    again = client.post("/feedback", json={"request_id": "req-2", "label": 1})
    assert again.status_code == 409
    assert "already recorded" in again.json()["detail"]


def test_feedback_answers_503_when_the_inference_log_is_off(
    make_client: Callable[..., TestClient],
) -> None:
    """Without an inference log, feedback cannot be joined: 503."""
    client = make_client(inference_log_enabled=False)
    _predict(client, headers={"X-Request-ID": "req-3"})
    response = client.post("/feedback", json={"request_id": "req-3", "label": 0})
    assert response.status_code == 503


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
        ({"Authorization": "Bearer wrong-token"}, 403),
        (AUTH, 200),
    ],
)
def test_admin_endpoints_need_the_bearer_token(
    client: TestClient, headers: dict[str, str], status: int
) -> None:
    """No token is a 401 with WWW-Authenticate, a wrong one a 403."""
    response = client.post("/admin/reload", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization: Bearer" in response.json()["detail"]


def test_the_admin_token_is_compared_in_constant_time(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin token check goes through hmac.compare_digest with the presented bytes."""
    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr("interfaces.secrets.hmac.compare_digest", spy)
    client.post("/admin/reload", headers={"Authorization": "Bearer guess"})
    assert calls == [(b"guess", AUTH["Authorization"].removeprefix("Bearer ").encode())]


def test_a_body_over_the_limit_is_refused_before_it_is_read(
    make_client: Callable[..., TestClient],
) -> None:
    """A body with a Content-Length over the limit is a 413 saying the limit."""
    client = make_client(max_body_bytes=2048)
    body = b'{"records": [' + b" " * 4096 + b"]}"
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"detail": "request body is larger than the limit of 2048 bytes"}


def test_a_chunked_body_over_the_limit_is_refused_too(
    make_client: Callable[..., TestClient],
) -> None:
    """A chunked body that grows past the limit is cut off with a 413."""
    client = make_client(max_body_bytes=2048)

    def chunks() -> Iterator[bytes]:
        yield b'{"records": ['
        for _ in range(10):
            yield b" " * 512
        yield b"]}"

    response = client.post(
        "/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_a_chunked_body_under_the_limit_is_served(client: TestClient) -> None:
    """A chunked body within the limit is read whole and served."""
    import json

    payload = json.dumps(predict_body()).encode()
    response = client.post(
        "/predict", content=iter([payload[:10], payload[10:]]),
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 200, response.text


def test_a_full_inference_log_drops_and_counts_but_the_request_succeeds(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full log queue drops records (counted) and never fails the request."""
    import threading

    client = make_client(inference_log_queue_size=1)
    app: Any = client.app
    log = app.state.runtime.inference_log
    released = threading.Event()
    write = log.store.write
    monkeypatch.setattr(log.store, "write", lambda records: (released.wait(10), write(records)))
    statuses = [client.post("/predict", json=predict_body()).status_code for _ in range(4)]
    released.set()
    assert statuses == [200] * 4
    assert log.dropped >= 2  # one record in the stuck write, at most one buffered
    assert f"mlplat_inference_log_dropped_total {float(log.dropped)}" in client.get("/metrics").text


def test_a_drift_report_for_a_feature_outside_the_contract_is_refused(client: TestClient) -> None:
    """A drift score for a feature outside the contract is a 422 naming the field."""
    response = client.post(
        "/admin/drift", headers=AUTH,
        json={"variant": "champion", "model_version": 1, "scores": {"shoe_size": 0.4},
              "drifted_ratio": 0.0},
    )  # fmt: skip
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "scores.shoe_size.[key]"


def test_health_ready_and_model_describe_the_deployment(client: TestClient) -> None:
    """/health, /ready and /model describe the served champion and the absent canary."""
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert ready.json()["deployment"]["champion"]["version"] == 1
    model = client.get("/model").json()
    assert model["champion"]["version"] == 1
    assert model["canary"] is None
    assert model["champion"]["since"] is not None


def test_without_a_champion_ready_and_predict_answer_503(
    make_client: Callable[..., TestClient], source: FakeSource
) -> None:
    """With no champion, /ready and /predict answer 503 and say why."""
    source.state = DesiredState(champion=None)
    client = make_client()
    assert client.get("/ready").status_code == 503
    response = client.post("/predict", json=predict_body())
    assert response.status_code == 503
    assert response.json()["detail"] == "no model is loaded yet; see GET /ready"


def test_a_reload_swaps_in_the_registrys_new_champion(
    client: TestClient, source: FakeSource
) -> None:
    """An admin reload loads and serves the registry's new champion."""
    source.state = DesiredState(champion=2)
    reload = client.post("/admin/reload", headers=AUTH).json()
    assert (reload["changed"], reload["converged"]) == (True, True)
    assert _predict(client)["predictions"][0] == {
        "prediction": 1, "probability": 0.9, "model_version": 2, "variant": "champion"
    }  # fmt: skip


def test_promoting_the_canary_reuses_the_loaded_model(
    client: TestClient, source: FakeSource
) -> None:
    """A canary promoted to champion is served without loading it again."""
    _canary_on(client, source, 0.2)
    loads = list(source.loads)
    source.state = DesiredState(champion=2)
    client.post("/admin/reload", headers=AUTH)
    assert source.loads == loads
    assert client.get("/model").json()["champion"]["version"] == 2


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(
    client: TestClient, source: FakeSource
) -> None:
    """A failed load keeps the old champion, and /ready and the metrics report it."""
    source.state = DesiredState(champion=3)
    reload = client.post("/admin/reload", headers=AUTH).json()
    assert (reload["changed"], reload["converged"]) == (False, False)
    assert reload["failures"][0]["version"] == 3
    assert reload["failures"][0]["error"] == "BrokenModelError"
    assert _predict(client)["predictions"][0]["model_version"] == 1
    ready = client.get("/ready").json()
    assert ready["ready"] is True
    assert [(f["variant"], f["version"]) for f in ready["failures"]] == [("champion", 3)]
    metrics = client.get("/metrics").text
    assert 'mlplat_model_load_failures_total{model_version="3",variant="champion"} 1.0' in metrics
    assert 'mlplat_model_load_failing{variant="champion"} 1.0' in metrics


def test_a_canary_that_fails_to_load_gets_no_traffic(
    client: TestClient, source: FakeSource
) -> None:
    """A canary that cannot load gets weight 0; everything goes to the champion."""
    source.state = DesiredState(champion=1, challenger=3, canary_weight=1.0)
    reload = client.post("/admin/reload", headers=AUTH).json()
    assert reload["deployment"]["canary"] is None
    assert reload["deployment"]["canary_weight"] == 0.0
    assert _predict(client)["predictions"][0]["variant"] == "champion"


def test_a_registry_outage_keeps_the_models_serving(client: TestClient, source: FakeSource) -> None:
    """While the registry is down, loaded models keep serving and /ready says why."""

    def unavailable() -> DesiredState:
        raise ConnectionError("registry down")

    source.desired = unavailable  # type: ignore[method-assign]
    client.post("/admin/reload", headers=AUTH)
    assert _predict(client)["predictions"][0]["model_version"] == 1
    assert client.get("/ready").json()["registry_error"] == "registry unavailable (ConnectionError)"


def test_a_model_error_is_a_500_that_reveals_nothing(
    client: TestClient, source: FakeSource
) -> None:
    """A model that raises is a 500 whose body reveals none of the error's text."""

    class BreaksAfterTheSmokeTest:
        calls = 0

        def predict_proba(self, X: Any) -> Any:  # noqa: N803
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("secret path /srv/models/credit.skops is corrupt")
            return ConstantModel(0.5).predict_proba(X)

    source.models[4] = BreaksAfterTheSmokeTest()
    source.state = DesiredState(champion=4)
    assert client.post("/admin/reload", headers=AUTH).json()["converged"] is True
    response = client.post("/predict", json=predict_body())
    assert response.status_code == 500
    assert response.json() == {"detail": "the model failed to score the request"}
    assert "secret" not in response.text


def test_the_openapi_docs_are_served(client: TestClient) -> None:
    """/docs and the OpenAPI document list every endpoint."""
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/predict", "/feedback", "/health", "/ready", "/model", "/metrics"} <= set(paths)
    assert {"/admin/reload", "/admin/drift"} <= set(paths)


def test_the_log_records_each_rows_routing_hash_latency_and_the_failures_of_a_broken_canary(
    client: TestClient, source: FakeSource
) -> None:
    """What the canary judge reads: every row with its hash and latency, failed rows included.

    A canary whose model raises answers its customers 500; the champion's customers are served.
    Only the canary's rows are logged as failures and counted as its errors.
    """

    class Broken:
        calls = 0

        def predict_proba(self, X: Any) -> Any:  # noqa: N803
            self.calls += 1
            if self.calls > 1:  # the load's smoke test passes
                raise RuntimeError("boom")
            return ConstantModel(0.5).predict_proba(X)

    source.models[5] = Broken()
    source.state = DesiredState(champion=1, challenger=5, canary_weight=0.5)
    assert client.post("/admin/reload", headers=AUTH).json()["converged"] is True
    customers = [f"judge-{i:03d}" for i in range(40)]
    statuses = {
        c: client.post("/predict", json={"records": [record(customer_id=c)]}).status_code
        for c in customers
    }
    expected = {c: 500 if choose_variant(c, 0.5, "5") == "canary" else 200 for c in customers}
    assert statuses == expected
    assert 500 in statuses.values()
    assert 200 in statuses.values()

    app: Any = client.app
    store = app.state.runtime.inference_log.store
    deadline = time.monotonic() + 10
    while len(rows := _logged_rows(store)) < len(customers):
        assert time.monotonic() < deadline, rows
        time.sleep(0.05)
    by_hash = {key_hash(c): c for c in customers}
    assert {row.routing_hash for row in rows} == set(by_hash)
    for row in rows:
        customer = by_hash[row.routing_hash]
        assert row.failed == (statuses[customer] == 500)
        assert (row.variant, row.model_version) == (
            ("canary", 5) if row.failed else ("champion", 1)
        )
        assert row.latency_s > 0
    metrics = client.get("/metrics").text
    assert 'error_class="inference_failure",model_version="5",variant="canary"' in metrics
    assert 'error_class="inference_failure",model_version="1"' not in metrics


def _logged_rows(store: InferenceLogStore) -> list[Any]:
    """Every logged row, scored or failed, as the writer stored it (``failed`` tells which)."""
    columns = ("variant", "model_version", "routing_hash", "latency_s")
    with store.engine.connect() as conn:
        scored = conn.execute(
            sa.select(*(store.predictions.c[c] for c in columns), sa.false().label("failed"))
        ).all()
        failed = conn.execute(
            sa.select(*(store.failures.c[c] for c in columns), sa.true().label("failed"))
        ).all()
    return [*scored, *failed]
