"""The demo's timeline: metrics parsed per variant, rates over a rolling window, a PNG."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from demo.samples import Sample, build_series, parse_service_metrics
from demo.timeline import Marker, Phase, plot_timeline
from serving.metrics import ServingMetrics

pytestmark = pytest.mark.unit


def scrape(metrics: ServingMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_parses_rows_server_errors_labels_and_weight_per_variant() -> None:
    """Versions are summed per variant; client errors and unrouted errors are not counted."""
    metrics = ServingMetrics(CollectorRegistry())
    metrics.observe_scores("champion", "1", 0.01, [0.1, 0.2, 0.3])
    metrics.observe_scores("champion", "2", 0.01, [0.4])
    metrics.observe_scores("canary", "3", 0.01, [0.9, 0.8])
    metrics.record_error("inference_failure", "canary", "3")
    metrics.record_error("invalid_input", "canary", "3")
    metrics.record_error("overloaded")
    metrics.record_feedback("joined", "canary", "3", "fp")
    metrics.record_feedback("joined", "canary", "3", "tn")
    metrics.record_feedback("joined", "champion", "1", "tp")
    metrics.set_canary_weight(0.25)
    sample = parse_service_metrics(scrape(metrics), t=3.0, drift_score=0.7)
    assert sample.predictions == {"champion": 4.0, "canary": 2.0}
    assert sample.server_errors == {"canary": 1.0}
    assert sample.labels == {"canary": 2.0, "champion": 1.0}
    assert sample.label_errors == {"canary": 1.0}
    assert (sample.canary_weight, sample.t, sample.drift_score) == (0.25, 3.0, 0.7)


def test_refuses_text_that_is_not_prometheus() -> None:
    """A page of HTML is a ValueError (the sampler skips that second)."""
    with pytest.raises(ValueError, match=r".+"):
        parse_service_metrics("<html>oops</html>", t=0.0)


def samples(labels_per_s: float = 50.0, wrong: float = 0.2) -> list[Sample]:
    out = []
    for t in range(11):
        labels = labels_per_s * t
        out.append(
            Sample(
                t=float(t),
                predictions={"champion": 100.0 * t, "canary": 50.0 * t},
                labels={"champion": labels, "canary": labels},
                label_errors={"champion": 0.1 * labels, "canary": wrong * labels},
                canary_weight=0.5,
            )
        )
    return out


def test_rates_are_taken_over_the_rolling_window() -> None:
    """Rows per second and the share of wrong labels come out of the cumulative counters."""
    series = build_series(samples(), window_s=4.0)
    assert math.isnan(series.request_rate["champion"][0])
    assert series.request_rate["champion"][6] == pytest.approx(100.0)
    assert series.request_rate["canary"][10] == pytest.approx(50.0)
    assert series.label_error_rate["canary"][10] == pytest.approx(0.2)
    assert series.label_error_rate["champion"][10] == pytest.approx(0.1)
    assert series.canary_weight[3] == 0.5


def test_too_few_labels_leave_the_error_rate_undefined() -> None:
    """A window with fewer labels than the minimum reads nan, not a noisy number."""
    series = build_series(samples(labels_per_s=2.0), window_s=4.0, min_labels=20.0)
    assert all(math.isnan(x) for x in series.label_error_rate["canary"])


def test_a_counter_reset_restarts_the_window_instead_of_going_negative() -> None:
    """A restarted service (counters back near zero) never yields a negative rate."""
    restarted = [*samples()[:6], Sample(6.0, {"champion": 10.0}), Sample(7.0, {"champion": 110.0})]
    series = build_series(restarted, window_s=4.0)
    assert all(x >= 0 for x in series.request_rate["champion"] if not math.isnan(x))
    assert series.request_rate["champion"][-1] == pytest.approx(100.0)


@pytest.mark.parametrize("window", [0.0, -1.0])
def test_a_window_must_be_positive(window: float) -> None:
    """A zero or negative window is refused by name."""
    with pytest.raises(ValueError, match="window_s"):
        build_series(samples(), window_s=window)


def test_samples_out_of_order_are_refused() -> None:
    """Rates over shuffled samples would be nonsense."""
    with pytest.raises(ValueError, match="time order"):
        build_series(list(reversed(samples())))


def test_the_plot_is_a_png_written_atomically(tmp_path: Path) -> None:
    """The timeline is a real PNG at the path, with no temp file left behind."""
    path = tmp_path / "out" / "timeline.png"
    series = build_series(samples(), window_s=4.0)
    markers = [Marker(2.0, "canary starts", "canary"), Marker(7.5, "v2 rolled back", "rollback")]
    plot_timeline(series, markers, [Phase(0.0, 5.0, "setup"), Phase(5.0, 10.0, "1")], path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
    assert [p.name for p in path.parent.iterdir()] == ["timeline.png"]
