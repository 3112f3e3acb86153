"""The request schema comes from the feature contract, and every 422 names the field and rule."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from features import FEATURES, NumericFeature
from serving.schemas import MAX_BATCH_RECORDS, FeatureRecord, PredictRequest, contract_rule
from tests.unit.serving.conftest import predict_body, record

pytestmark = pytest.mark.unit


def _only_error(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert len(body["errors"]) == 1, body
    return dict(body["errors"][0])


def test_the_record_has_exactly_the_contract_features_plus_the_routing_key() -> None:
    """A record has exactly the contract's features, after the customer_id routing key."""
    assert list(FeatureRecord.model_fields) == ["customer_id", *(f.name for f in FEATURES)]


def test_numeric_bounds_in_the_openapi_schema_are_the_contract_bounds() -> None:
    """The OpenAPI schema's numeric bounds are the contract's bounds."""
    properties = PredictRequest.model_json_schema()["$defs"]["FeatureRecord"]["properties"]
    for f in FEATURES:
        if isinstance(f, NumericFeature) and not f.nullable:
            assert properties[f.name]["minimum"] == f.minimum
            assert properties[f.name]["maximum"] == f.maximum


@pytest.mark.parametrize(
    ("changes", "field", "rule", "error_type"),
    [
        ({"age": "forty"}, "records[0].age", "an integer in [18, 100] (years)", "int_type"),
        ({"age": 41.5}, "records[0].age", "an integer in [18, 100] (years)", "int_type"),
        ({"age": True}, "records[0].age", "an integer in [18, 100] (years)", "int_type"),
        ({"loan_amount": "12000"}, "records[0].loan_amount", "a number in [500, 200000] (USD)",
         "float_type"),
        ({"age": 17}, "records[0].age", "an integer in [18, 100] (years)", "greater_than_equal"),
        ({"credit_score": 851}, "records[0].credit_score", "an integer in [300, 850] (points)",
         "less_than_equal"),
        ({"segment": "vip"}, "records[0].segment",
         "one of 'mass', 'affluent', 'small_business'", "literal_error"),
        ({"home_ownership": None}, "records[0].home_ownership",
         "one of 'rent', 'own', 'mortgage', 'other'", "literal_error"),
        ({"favourite_colour": "blue"}, "records[0].favourite_colour",
         "only the feature contract's fields and customer_id are allowed", "extra_forbidden"),
    ],
)  # fmt: skip
def test_a_broken_rule_gets_a_422_naming_the_field_and_the_rule(
    client: TestClient, changes: dict[str, Any], field: str, rule: str, error_type: str
) -> None:
    """Each broken rule gets a 422 naming the field, the contract rule and the error type."""
    error = _only_error(client.post("/predict", json=predict_body(record(**changes))))
    assert error["field"] == field
    assert error["rule"] == rule
    assert error["type"] == error_type


def test_a_missing_field_is_named_as_required(client: TestClient) -> None:
    """A missing field is a 422 naming it as required, with its rule."""
    body = record()
    del body["loan_amount"]
    error = _only_error(client.post("/predict", json=predict_body(body)))
    assert error["field"] == "records[0].loan_amount"
    assert error["rule"] == "required: a number in [500, 200000] (USD)"
    assert error["type"] == "missing"


def test_the_detail_line_summarises_the_first_error_and_counts_the_rest(client: TestClient) -> None:
    """The detail line states the first error and rule and counts the others."""
    response = client.post("/predict", json=predict_body(record(age=5, segment="x")))
    assert response.json()["detail"] == (
        "records[0].age: Input should be greater than or equal to 18 "
        "(rule: an integer in [18, 100] (years)); and 1 more"
    )


def test_an_integral_number_is_an_integer_as_in_json_schema(client: TestClient) -> None:
    """A whole number written as 41.0 is accepted as an integer, as JSON Schema allows."""
    response = client.post("/predict", json=predict_body(record(age=41.0)))
    assert response.status_code == 200, response.text


def test_nullable_features_may_be_null_or_omitted(client: TestClient) -> None:
    """Nullable features may be null or left out."""
    omitted = record()
    del omitted["employment_years"]
    response = client.post("/predict", json=predict_body(record(debt_to_income=None), omitted))
    assert response.status_code == 200, response.text


def test_not_a_finite_number_is_refused(client: TestClient) -> None:
    """NaN in a numeric field is refused as not a finite number."""
    body = '{"records": [' + str(record()).replace("'", '"').replace("0.11", "NaN") + "]}"
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    error = _only_error(response)
    assert (error["field"], error["type"]) == ("records[0].interest_rate", "finite_number")


@pytest.mark.parametrize("count", [0, MAX_BATCH_RECORDS + 1])
def test_a_batch_outside_the_bounds_is_refused(client: TestClient, count: int) -> None:
    """An empty batch or one over MAX_BATCH_RECORDS is refused."""
    response = client.post("/predict", json={"records": [record()] * count})
    error = _only_error(response)
    assert error["field"] == "records"
    assert error["type"] in {"too_short", "too_long"}


def test_malformed_json_is_a_422_not_a_500(client: TestClient) -> None:
    """Malformed JSON is a 422 json_invalid, not a 500."""
    response = client.post(
        "/predict", content=b'{"records": [', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "json_invalid"


def test_an_invalid_request_id_header_is_refused_by_name(client: TestClient) -> None:
    """An invalid X-Request-ID header is refused, naming the header and its rule."""
    response = client.post("/predict", json=predict_body(), headers={"X-Request-ID": "a b"})
    error = _only_error(response)
    assert error["field"] == "header.X-Request-ID"
    assert error["rule"].startswith("must match")


def test_contract_rules_read_naturally() -> None:
    """A contract rule reads as range, unit and whether null is allowed."""
    from features import feature

    assert contract_rule(feature("employment_years")) == "a number in [0.0, 60.0] (years) or null"
