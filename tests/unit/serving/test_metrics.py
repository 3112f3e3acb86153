"""After known traffic, each of the eight metrics has the right value and labels."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from interfaces import metric_names as mn
from interfaces.routing import choose_variant
from serving.app import create_app
from serving.deployment import DesiredState
from serving.settings import ServingSettings
from tests.unit.serving.conftest import AUTH, ConstantModel, FakeSource, predict_body, record

pytestmark = pytest.mark.unit

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def traffic_source() -> FakeSource:
    return FakeSource(
        {1: ConstantModel(0.2), 2: ConstantModel(0.9)},
        DesiredState(champion=1, challenger=2, canary_weight=0.5),
    )


@pytest.fixture
def traffic_client(settings: ServingSettings, traffic_source: FakeSource) -> Iterator[TestClient]:
    with TestClient(create_app(settings, model_source=traffic_source)) as client:
        yield client


CUSTOMERS = [f"c-{i:03d}" for i in range(8)]
ON_CANARY = [c for c in CUSTOMERS if choose_variant(c, 0.5, "2") == "canary"]
ON_CHAMPION = [c for c in CUSTOMERS if c not in ON_CANARY]


def test_known_traffic_shows_in_each_of_the_eight_metrics(traffic_client: TestClient) -> None:
    """Known traffic, drift and feedback show exactly in each of the eight metrics by variant."""
    client = traffic_client
    assert ON_CANARY
    assert ON_CHAMPION
    for customer in CUSTOMERS:
        response = client.post(
            "/predict",
            json=predict_body(record(customer_id=customer, debt_to_income=None)),
            headers={"X-Request-ID": f"req-{customer}"},
        )
        assert response.status_code == 200
    rejected = client.post("/predict", json=predict_body(record(age=12, segment="vip")))
    assert rejected.status_code == 422
    drift = client.post(
        "/admin/drift",
        headers=AUTH,
        json={"variant": "canary", "model_version": 2,
              "scores": {"credit_score": 0.31, "segment": 0.02}, "drifted_ratio": 0.5},
    )  # fmt: skip
    assert drift.status_code == 204
    feedback = client.post("/feedback", json={"request_id": f"req-{ON_CHAMPION[0]}", "label": 1})
    assert feedback.json()["outcome"] == "fn"  # scored 0.2, predicted 0, defaulted

    s = scrape(client)
    n_champion, n_canary = len(ON_CHAMPION), len(ON_CANARY)
    champion = {"variant": "champion", "model_version": "1"}
    canary = {"variant": "canary", "model_version": "2"}

    # 1. traffic
    assert value(s, mn.PREDICTIONS_TOTAL, **champion) == n_champion
    assert value(s, mn.PREDICTIONS_TOTAL, **canary) == n_canary
    # 2. latency, by variant
    latency = mn.PREDICTION_LATENCY_SECONDS
    assert value(s, latency + "_count", **champion) == n_champion
    assert value(s, latency + "_count", **canary) == n_canary
    assert value(s, latency + "_bucket", le="+Inf", **canary) == n_canary
    assert 0 < value(s, latency + "_sum", **champion) < 10
    # 3. errors, by class and variant
    assert value(s, mn.ERRORS_TOTAL, error_class="invalid_input", variant="none",
                 model_version="none") == 1  # fmt: skip
    # 4. saturation: nothing in flight once the traffic is answered
    assert value(s, mn.INFLIGHT_REQUESTS) == 0
    # 5. input quality: accepted nulls and rejected values, per feature
    assert value(s, mn.INPUT_ISSUES_TOTAL, feature="debt_to_income", issue="null") == 8
    assert value(s, mn.INPUT_ISSUES_TOTAL, feature="age", issue="out_of_range") == 1
    assert value(s, mn.INPUT_ISSUES_TOTAL, feature="segment", issue="unknown_category") == 1
    assert value(s, mn.INPUT_RECORDS_TOTAL, outcome="accepted") == 8
    assert value(s, mn.INPUT_RECORDS_TOTAL, outcome="rejected") == 1
    # 6. prediction distribution, by variant
    probability = mn.PREDICTION_PROBABILITY
    assert value(s, probability + "_count", **canary) == n_canary
    assert value(s, probability + "_sum", **canary) == pytest.approx(0.9 * n_canary)
    assert value(s, probability + "_bucket", le="0.2", **champion) == n_champion
    assert value(s, probability + "_bucket", le="0.85", **canary) == 0
    # 7. feature drift, set by the drift check
    assert value(s, mn.FEATURE_DRIFT_SCORE, feature="credit_score", **canary) == 0.31
    assert value(s, mn.FEATURE_DRIFT_SCORE, feature="segment", **canary) == 0.02
    assert value(s, mn.DRIFTED_FEATURES_RATIO, **canary) == 0.5
    # 8. model quality from delayed labels
    assert value(s, mn.LABELED_PREDICTIONS_TOTAL, outcome="fn", **champion) == 1
    assert value(s, mn.LABELED_PREDICTIONS_TOTAL, outcome="tp", **champion) == 0
    # supporting series
    assert value(s, mn.MODEL_INFO, **champion) == 1
    assert value(s, mn.MODEL_INFO, **canary) == 1
    assert value(s, mn.CANARY_WEIGHT_RATIO) == 0.5
    assert value(s, mn.BATCH_SIZE_ROWS + "_sum") == 8


def test_every_one_of_the_eight_is_exposed_from_the_first_scrape(
    traffic_client: TestClient,
) -> None:
    """Every one of the eight metrics is exposed on the first scrape."""
    traffic_client.post(
        "/admin/drift", headers=AUTH,
        json={"variant": "champion", "model_version": 1, "scores": {"age": 0.0},
              "drifted_ratio": 0.0},
    )  # fmt: skip
    traffic_client.post("/predict", json=predict_body(record(age=1)))
    names = {name for name, _ in scrape(traffic_client)}
    for metric in mn.EIGHT_METRICS:
        assert any(n == metric or n.startswith(metric + "_") for n in names), metric


def test_no_label_carries_a_request_or_customer_id(traffic_client: TestClient) -> None:
    """No metric label carries a request or customer id."""
    traffic_client.post(
        "/predict", json=predict_body(record(customer_id="c-secret")),
        headers={"X-Request-ID": "req-secret"},
    )  # fmt: skip
    assert "secret" not in traffic_client.get("/metrics").text


def test_a_retired_version_reads_zero_in_model_info(
    traffic_client: TestClient, traffic_source: FakeSource
) -> None:
    """After a reload, retired versions read 0 in model info and the canary weight is 0."""
    traffic_source.state = DesiredState(champion=2)
    traffic_client.post("/admin/reload", headers=AUTH)
    s = scrape(traffic_client)
    assert value(s, mn.MODEL_INFO, variant="champion", model_version="1") == 0
    assert value(s, mn.MODEL_INFO, variant="champion", model_version="2") == 1
    assert value(s, mn.MODEL_INFO, variant="canary", model_version="2") == 0
    assert value(s, mn.CANARY_WEIGHT_RATIO) == 0


def test_with_metrics_off_the_request_series_stay_empty(
    make_client: Callable[..., TestClient],
) -> None:
    """With metrics off, request series stay at zero while model info is still set."""
    client = make_client(metrics_enabled=False)
    client.post("/predict", json=predict_body())
    s = scrape(client)
    assert value(s, mn.PREDICTIONS_TOTAL, variant="champion", model_version="1") == 0
    assert value(s, mn.MODEL_INFO, variant="champion", model_version="1") == 1
