"""The traffic generator: bounded, open-loop, with labels that arrive late for the chosen share."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import httpx
import pytest

from features import ENTITY_ID, FEATURE_NAMES
from mlplat.traffic import TrafficPlan, TrafficStats, _records, run_traffic, traffic_rows

pytestmark = pytest.mark.unit


class FakeService:
    """Answers /predict like the real service and records /feedback calls."""

    def __init__(self, fail_every: int = 0) -> None:
        self.predicts: list[dict[str, object]] = []
        self.feedback: list[dict[str, object]] = []
        self.fail_every = fail_every

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path == "/predict":
            self.predicts.append(body)
            if self.fail_every and len(self.predicts) % self.fail_every == 0:
                return httpx.Response(503, json={"detail": "overloaded"})
            variant = "canary" if len(self.predicts) % 4 == 0 else "champion"
            prediction = {
                "prediction": 0,
                "probability": 0.1,
                "model_version": 1,
                "variant": variant,
            }
            return httpx.Response(
                200,
                json={"request_id": request.headers["X-Request-ID"], "predictions": [prediction]},
            )
        self.feedback.append(body)
        return httpx.Response(200, json={})


def send(plan: TrafficPlan, service: FakeService) -> TrafficStats:
    async def main() -> TrafficStats:
        async with httpx.AsyncClient(transport=httpx.MockTransport(service)) as client:
            return await run_traffic(plan, client)

    return asyncio.run(main())


def test_sends_rate_times_duration_requests_and_every_label() -> None:
    """Open loop: exactly rate x duration requests, each label sent once after its prediction."""
    service = FakeService()
    plan = TrafficPlan(url="http://svc", rate=200, duration_s=0.2, label_delay_s=0.01)
    stats = send(plan, service)
    assert stats.sent == stats.ok == len(service.predicts) == 40
    assert stats.labels_sent == len(service.feedback) == 40
    assert {f["request_id"] for f in service.feedback} == {f"traffic-1000-{i}" for i in range(40)}
    assert stats.by_variant["canary"] == 10


def test_label_fraction_limits_the_labels_sent() -> None:
    """Only about the chosen share of predictions ever gets its label."""
    service = FakeService()
    plan = TrafficPlan(
        url="http://svc", rate=1000, duration_s=0.4, label_fraction=0.25, label_delay_s=0
    )
    stats = send(plan, service)
    assert stats.sent == 400
    assert 60 <= stats.labels_sent <= 140


def test_server_errors_are_counted_not_labelled() -> None:
    """A 5xx is a server error; a failed prediction gets no label."""
    service = FakeService(fail_every=5)
    stats = send(TrafficPlan(url="http://svc", rate=500, duration_s=0.1, label_delay_s=0), service)
    assert stats.server_errors == 10
    assert stats.ok == 40
    assert stats.labels_sent == 40


def test_max_requests_bounds_the_run() -> None:
    """The request cap stops the run before the duration does."""
    stats = send(
        TrafficPlan(url="http://svc", rate=1000, duration_s=10, max_requests=7), FakeService()
    )
    assert stats.sent == 7


def test_records_are_json_ready_with_nulls_for_missing_values() -> None:
    """NaN becomes null and numpy scalars become plain numbers, so the body is valid JSON."""
    records = _records(traffic_rows(300, seed=3, scenario=None, magnitude=None))
    assert len(records) == 300
    record, label = records[0]
    assert set(record) == {ENTITY_ID, *FEATURE_NAMES}
    assert label in (0, 1)
    json.dumps([r for r, _ in records], allow_nan=False)
    assert any(r["employment_years"] is None for r, _ in records)
    assert not any(isinstance(v, float) and math.isnan(v) for r, _ in records for v in r.values())


def test_serving_skew_traffic_sends_income_in_thousands() -> None:
    """The skew scenario changes the units of annual_income, nothing else."""
    clean = traffic_rows(200, seed=5, scenario=None, magnitude=None)
    skewed = traffic_rows(200, seed=5, scenario="serving-skew", magnitude=None)
    ratio = (clean["annual_income"] / skewed["annual_income"]).median()
    assert ratio == pytest.approx(1000.0)


@pytest.mark.parametrize(
    ("field", "value"),
    [("rate", 0.0), ("duration_s", -1.0), ("label_fraction", 1.5), ("concurrency", 0)],
)
def test_invalid_plans_name_the_field(field: str, value: float) -> None:
    """A bad plan is refused with a message naming the field."""
    with pytest.raises(ValueError, match=field):
        TrafficPlan(url="http://svc", **{field: value})


def test_traffic_rows_draw_from_the_users_file(tmp_path: Path) -> None:
    """With --data the requests are rows of that file, drawn with replacement, seeded."""
    from pipeline import generate

    source = generate(40, seed=5)
    path = tmp_path / "rows.csv"
    source.to_csv(path, index=False)
    rows = traffic_rows(100, 3, None, None, data=str(path))
    assert len(rows) == 100
    known = set(source["annual_income"].round(6))
    assert set(rows["annual_income"].round(6)) <= known
    again = traffic_rows(100, 3, None, None, data=str(path))
    assert rows.equals(again)
