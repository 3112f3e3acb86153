"""/ready repeats an event-log outage the registry reports, while the models keep serving."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.unit.serving.conftest import FakeSource

pytestmark = pytest.mark.unit


class EventLogDown(FakeSource):
    """The test source, with the event-log outage a registry-backed source reports."""

    events_error: str | None = "event log unreachable for 12 s: connection refused"


def test_ready_reports_an_event_log_outage_while_still_serving(
    make_client: Callable[..., TestClient], source: FakeSource
) -> None:
    """200 and ready: only the "since" times are degraded, and /ready says why."""
    source.__class__ = EventLogDown
    client = make_client()
    body = client.get("/ready").json()
    assert body["ready"] is True
    assert body["registry_error"] is None
    assert body["event_log_error"] == "event log unreachable for 12 s: connection refused"


def test_ready_has_no_event_log_error_when_the_source_reports_none(client: TestClient) -> None:
    """A source without an event log (or with one that answers) shows nothing."""
    assert client.get("/ready").json()["event_log_error"] is None
