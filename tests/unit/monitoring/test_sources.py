"""The controller's sources: Prometheus, the service's own /metrics, the inference log."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
from prometheus_client import generate_latest

from interfaces.metric_names import LATENCY_BUCKETS
from monitoring.judge import CanaryJudge, JudgeConfig, Verdict
from monitoring.judge.counters import SCORE_EDGES, VariantCounts, build_observation
from monitoring.sources.base import SourceUnavailable
from monitoring.sources.inference_log import InferenceLogReader, InferenceLogSource
from monitoring.sources.prometheus import PrometheusSource
from monitoring.sources.scrape import ScrapeSource
from serving.inference_log import InferenceLogStore, InferenceRecord
from serving.metrics import ServingMetrics, create_metrics
from serving.reconcile import SMOKE_ROW

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
METRICS_URL = "http://serving.test/metrics"


# --- ScrapeSource ---------------------------------------------------------------------------------


class Service:
    """A serving metrics registry behind a mock ``/metrics`` endpoint."""

    def __init__(self) -> None:
        self.metrics = create_metrics()
        self.down = False

    def restart(self) -> None:
        self.metrics = create_metrics()

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, content=generate_latest(self.metrics.registry))

    def source(self) -> ScrapeSource:
        return ScrapeSource(
            httpx.Client(transport=httpx.MockTransport(self.handler)), [METRICS_URL]
        )


def serve(
    metrics: ServingMetrics, variant: str, version: str, answered: int, seconds: float
) -> None:
    for _ in range(answered):
        metrics.observe_scores(variant, version, seconds, [0.3])


def test_scrape_counts_from_the_first_scrape_of_a_canary_not_from_the_service_start() -> None:
    """Scraped counts start at the canary's first scrape, with errors and latency per variant."""
    service = Service()
    serve(service.metrics, "champion", "1", 50, 0.01)  # before the controller looked
    source = service.source()
    first = source.counts(1, 2, T0, T0)
    assert first["champion"].requests == 0
    assert first["canary"].requests == 0
    serve(service.metrics, "champion", "1", 30, 0.01)
    serve(service.metrics, "canary", "2", 10, 0.2)
    service.metrics.record_error("inference_failure", "canary", "2")
    counts = source.counts(1, 2, T0, T0 + timedelta(seconds=60))
    assert counts["champion"] == VariantCounts(
        requests=30, errors=0, latency_cumulative=counts["champion"].latency_cumulative
    )
    assert (counts["canary"].requests, counts["canary"].errors) == (11, 1)
    assert counts["canary"].latency().count == 10
    assert math.exp(counts["canary"].latency().mean_log) > math.exp(
        counts["champion"].latency().mean_log
    )


def test_scrape_ignores_client_errors_they_are_not_the_models_fault() -> None:
    """Client errors (bad input, too large, overloaded) are not counted as canary errors."""
    service = Service()
    source = service.source()
    source.counts(1, 2, T0, T0)
    service.metrics.record_error("invalid_input", "canary", "2")
    service.metrics.record_error("payload_too_large")
    service.metrics.record_error("overloaded", "canary", "2")
    counts = source.counts(1, 2, T0, T0)
    assert counts["canary"].errors == 1


def test_scrape_folds_in_a_service_restart_like_rate_does() -> None:
    """A service restart's counter reset is folded in as Prometheus' rate() does."""
    service = Service()
    serve(service.metrics, "canary", "2", 5, 0.01)
    source = service.source()
    source.counts(1, 2, T0, T0)
    serve(service.metrics, "canary", "2", 7, 0.01)
    assert source.counts(1, 2, T0, T0)["canary"].requests == 7
    service.restart()
    serve(service.metrics, "canary", "2", 3, 0.01)
    assert source.counts(1, 2, T0, T0)["canary"].requests == 10


def test_scrape_starts_afresh_for_a_new_canary() -> None:
    """A new canary version starts counting from zero."""
    service = Service()
    source = service.source()
    source.counts(1, 2, T0, T0)
    serve(service.metrics, "canary", "2", 4, 0.01)
    assert source.counts(1, 2, T0, T0)["canary"].requests == 4
    later = T0 + timedelta(hours=1)
    assert source.counts(1, 3, later, later)["canary"].requests == 0


def test_scrape_sums_instances() -> None:
    """Counts scraped from several service instances are summed."""
    a, b = Service(), Service()

    def handler(request: httpx.Request) -> httpx.Response:
        return (a if request.url.host == "a.test" else b).handler(request)

    source = ScrapeSource(
        httpx.Client(transport=httpx.MockTransport(handler)),
        ["http://a.test/metrics", "http://b.test/metrics"],
    )
    source.counts(1, 2, T0, T0)
    serve(a.metrics, "canary", "2", 2, 0.01)
    serve(b.metrics, "canary", "2", 3, 0.01)
    assert source.counts(1, 2, T0, T0)["canary"].requests == 5


def test_scrape_of_a_down_service_raises_source_unavailable_naming_it() -> None:
    """A down service raises SourceUnavailable naming its URL, held as unreachable."""
    service = Service()
    service.down = True
    with pytest.raises(
        SourceUnavailable, match=r"scrape: cannot scrape http://serving.test"
    ) as info:
        service.source().counts(1, 2, T0, T0)
    assert info.value.hold_reason == "prometheus_unreachable"


def test_scrape_needs_at_least_one_url() -> None:
    """A scrape source needs at least one /metrics URL."""
    with pytest.raises(ValueError, match="at least one /metrics URL"):
        ScrapeSource(httpx.Client(), [])


# --- PrometheusSource -----------------------------------------------------------------------------


def vector(*series: tuple[dict[str, str], float]) -> dict[str, object]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": m, "value": [T0.timestamp(), str(v)]} for m, v in series],
        },
    }


class FakePrometheus:
    """Answers the three queries PrometheusSource makes; records what it was asked."""

    def __init__(self, up: list[float] | None = None) -> None:
        self.up = [1.0] if up is None else up
        self.queries: list[dict[str, list[str]]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        params = parse_qs(urlsplit(str(request.url)).query)
        self.queries.append(params)
        query = params["query"][0]
        if query.startswith("up{"):
            return httpx.Response(
                200, json=vector(*(({"job": "mlplat-serving"}, u) for u in self.up))
            )
        if "mlplat_errors_total" in query:
            return httpx.Response(
                200,
                json=vector(
                    ({"variant": "canary", "model_version": "2"}, 9.6),
                    ({"variant": "canary", "model_version": "7"}, 100.0),  # another version
                ),
            )
        buckets = []
        for variant, version, total in (("champion", "1", 1000.4), ("canary", "2", 90.2)):
            for le in (*LATENCY_BUCKETS, math.inf):
                value = total if le >= 0.01 else 0.0
                le_text = "+Inf" if math.isinf(le) else repr(le)
                buckets.append(
                    ({"variant": variant, "model_version": version, "le": le_text}, value)
                )
        return httpx.Response(200, json=vector(*buckets))

    def source(self) -> PrometheusSource:
        client = httpx.Client(transport=httpx.MockTransport(self.handler))
        return PrometheusSource(client, "http://prometheus.test:9090/")


def test_prometheus_counts_are_increases_over_the_canary_lifetime() -> None:
    """Prometheus counts are increase() over the canary's life, server errors only, at its end."""
    prometheus = FakePrometheus()
    counts = prometheus.source().counts(1, 2, T0, T0 + timedelta(seconds=125.2))
    assert counts["champion"] == VariantCounts(
        requests=1000, errors=0, latency_cumulative=counts["champion"].latency_cumulative
    )
    assert (counts["canary"].requests, counts["canary"].errors) == (100, 10)
    queries = [q["query"][0] for q in prometheus.queries]
    assert queries[0] == 'up{job="mlplat-serving"}'
    assert "increase(mlplat_errors_total{" in queries[1]
    assert "[126s]" in queries[1]
    assert 'error_class=~"model_unavailable|overloaded|inference_failure|internal"' in queries[1]
    assert "mlplat_prediction_latency_seconds_bucket" in queries[2]
    assert all(q["time"] == [f"{(T0 + timedelta(seconds=125.2)).timestamp():.3f}"]
               for q in prometheus.queries)  # fmt: skip


@pytest.mark.parametrize(
    ("up", "message"),
    [([], "no target of job 'mlplat-serving' is scraped"), ([0.0], "is down \\(up == 0\\)")],
)
def test_prometheus_that_no_longer_scrapes_the_service_reports_stale_metrics(
    up: list[float], message: str
) -> None:
    """No scraped target, or a target down, is SourceUnavailable held as stale metrics."""
    with pytest.raises(SourceUnavailable, match=message) as info:
        FakePrometheus(up).source().counts(1, 2, T0, T0)
    assert info.value.hold_reason == "stale_metrics"


def test_unreachable_prometheus_raises_source_unavailable() -> None:
    """An unreachable Prometheus raises SourceUnavailable naming its URL."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    source = PrometheusSource(httpx.Client(transport=httpx.MockTransport(refuse)), "http://p:9090")
    with pytest.raises(SourceUnavailable, match="prometheus: cannot reach http://p:9090") as info:
        source.counts(1, 2, T0, T0)
    assert info.value.hold_reason == "prometheus_unreachable"


def test_a_refused_query_raises_source_unavailable_with_prometheus_error() -> None:
    """A query Prometheus refuses raises SourceUnavailable with the status and its error."""

    def bad(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"status": "error", "error": "parse error at char 3"})

    source = PrometheusSource(httpx.Client(transport=httpx.MockTransport(bad)), "http://p:9090")
    with pytest.raises(SourceUnavailable, match="HTTP 400: parse error at char 3"):
        source.query("up{", T0)


# --- InferenceLogSource ---------------------------------------------------------------------------


@pytest.fixture
def log_store(tmp_path: Path) -> InferenceLogStore:
    store = InferenceLogStore(f"sqlite:///{tmp_path / 'log.db'}")
    store.create_schema()
    return store


def record(ts: datetime, request: str, variant: str, version: int, p: float) -> InferenceRecord:
    return InferenceRecord(
        ts.timestamp(), request, 0, variant, version, p, int(p >= 0.5), SMOKE_ROW
    )


def test_log_source_reads_scores_labels_and_windows_of_one_version(
    log_store: InferenceLogStore,
) -> None:
    """The log source reads one variant and version's scores, labels and newest rows in a window."""
    log_store.write(
        [
            record(T0 - timedelta(seconds=5), "early", "canary", 2, 0.9),  # before the window
            record(T0 + timedelta(seconds=1), "a", "canary", 2, 0.8),
            record(T0 + timedelta(seconds=2), "b", "canary", 2, 0.2),
            record(T0 + timedelta(seconds=3), "c", "champion", 1, 0.4),
            record(T0 + timedelta(seconds=4), "d", "canary", 3, 0.7),  # another version
        ]
    )
    log_store.join_feedback("a", 0, 1)
    log_store.join_feedback("c", 0, 0)
    source = InferenceLogSource(InferenceLogReader(log_store.engine))
    end = T0 + timedelta(minutes=1)
    assert source.scores("canary", 2, T0, end).tolist() == [0.8, 0.2]
    probabilities, labels = source.labelled("canary", 2, T0, end)
    assert probabilities.tolist() == [0.8]
    assert labels.tolist() == [1]
    window = source.window("canary", 2, T0, end, max_rows=1)
    assert window["request_id"].tolist() == ["b"]
    assert "probability" in window.columns
    assert "credit_score" in window.columns


def test_a_log_the_service_has_not_written_yet_reads_as_empty(tmp_path: Path) -> None:
    """An inference log the service has not created yet reads as empty."""
    source = InferenceLogSource(InferenceLogReader(f"sqlite:///{tmp_path / 'never-written.db'}"))
    end = T0 + timedelta(minutes=1)
    assert source.scores("canary", 2, T0, end).size == 0
    assert len(source.window("champion", 1, T0, end, max_rows=10)) == 0


def test_an_unreadable_log_is_unavailable_and_says_which(tmp_path: Path) -> None:
    """An unreadable inference log raises SourceUnavailable naming it, for every read."""
    not_a_database = tmp_path / "log.db"
    not_a_database.mkdir()  # sqlite cannot open a directory
    source = InferenceLogSource(InferenceLogReader(f"sqlite:///{not_a_database}"))
    end = T0 + timedelta(minutes=1)
    with pytest.raises(SourceUnavailable, match="inference_log: cannot read sqlite:///") as info:
        source.scores("canary", 2, T0, end)
    assert info.value.source == "inference_log"
    with pytest.raises(SourceUnavailable):
        source.labelled("canary", 2, T0, end)
    with pytest.raises(SourceUnavailable):
        source.window("champion", 1, T0, end, max_rows=10)


# --- the judge's observation ----------------------------------------------------------------------


def test_observation_from_sources_lets_the_judge_roll_back_a_failing_canary() -> None:
    """An observation built from source data lets the judge roll back a failing canary."""
    rng = np.random.default_rng(0)
    counts = {
        "champion": VariantCounts(requests=5000, errors=5),
        "canary": VariantCounts(requests=1000, errors=80),
    }
    scores = {v: rng.uniform(0, 1, 800) for v in ("champion", "canary")}
    labelled = {v: (np.array([0.2, 0.7]), np.array([0, 1])) for v in ("champion", "canary")}
    observation = build_observation(3, counts, scores, labelled)  # type: ignore[arg-type]
    assert observation.canary.scores is not None
    assert observation.canary.scores.edges == SCORE_EDGES
    assert observation.canary.quality is not None
    assert observation.canary.quality.count == 2
    result = CanaryJudge(JudgeConfig()).evaluate(observation)
    assert result.verdict == Verdict.ROLLBACK
    assert json.dumps(result.to_dict())


def test_counts_latency_summary_reads_the_histogram() -> None:
    """The latency summary of counts is read from the cumulative histogram buckets."""
    bounds = (*(float(b) for b in LATENCY_BUCKETS), math.inf)
    cumulative = tuple(100.0 if b >= 0.05 else 0.0 for b in bounds)
    latency = VariantCounts(100, 0, bounds, cumulative).latency()
    assert latency.count == 100
    assert 0.025 < math.exp(latency.mean_log) < 0.05
