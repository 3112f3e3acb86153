"""The serving benchmark's parsing and verdicts (the benchmark itself: ``mlplat bench serve``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.report import BenchmarkError
from benchmarks.serving.goals import instrumentation_change, serving_goals
from benchmarks.serving.in_process import measure_instrumentation_cpu
from benchmarks.serving.load import LoadResult, parse_wrk
from benchmarks.serving.run import format_table

pytestmark = pytest.mark.unit

WRK_OUTPUT = """\
Running 5s test @ http://127.0.0.1:8000/predict
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    20.10ms    5.01ms  80.00ms   90.00%
  Latency Distribution
     50%   18.49ms
     75%   21.00ms
     90%   25.00ms
     99%  850.00us
  9500 requests in 5.00s, 2.10MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:   1900.50
Transfer/sec:    420.00KB
"""


def test_wrk_output_is_read_with_units_and_errors() -> None:
    """The output of wrk is parsed with its units into rate, percentiles, requests and errors."""
    result = parse_wrk(WRK_OUTPUT)
    assert result.requests_per_second == 1900.5
    assert result.p50_ms == pytest.approx(18.49)
    assert result.p99_ms == pytest.approx(0.85)
    assert (result.requests, result.errors) == (9500, 7)


def test_unreadable_wrk_output_is_a_benchmark_error() -> None:
    """Output wrk did not produce as a report is a BenchmarkError."""
    with pytest.raises(BenchmarkError, match="could not read wrk's output"):
        parse_wrk("unable to connect to 127.0.0.1:8000 Connection refused")


def _run(rps: float, cpu: float = 400.0) -> LoadResult:
    return LoadResult(rps, 5.0, 10.0, int(rps * 5), 0, cpu)


def _figures(rps: float, p99: float) -> dict[str, object]:
    return {"requests_per_second": rps, "p50_ms": 5.0, "p99_ms": p99, "cpu_us_per_request": 400.0}


def test_instrumentation_cost_is_the_median_of_back_to_back_pairs() -> None:
    """The instrumentation cost is the median over back-to-back pairs, with its IQR."""
    change = instrumentation_change(
        [_run(900, 420), _run(1_000, 400), _run(2_000, 400)],
        [_run(1_000, 400), _run(1_000, 400), _run(1_000, 400)],
    )
    assert change["throughput_cost"] == pytest.approx(0.0)
    assert change["throughput_cost_iqr"] == pytest.approx([-0.5, 0.05])
    assert change["cpu_cost"] == pytest.approx(0.0)
    assert change["pairs"] == 3
    assert change["verdict"] == "met"


@pytest.mark.parametrize(
    ("on", "verdict"),
    [
        ([930, 940, 950], "missed"),
        ([930, 1_100, 800], "inconclusive"),
        ([990, 1_000, 1_040], "met"),
    ],
)
def test_the_instrumentation_verdict_admits_when_noise_decides(
    on: list[float], verdict: str
) -> None:
    """The instrumentation verdict is met, missed, or inconclusive when noise spans the goal."""
    change = instrumentation_change([_run(r) for r in on], [_run(1_000)] * 3)
    assert change["verdict"] == verdict


def test_goals_compare_the_service_with_the_naive_endpoint_at_32() -> None:
    """The goals compare the service with the naive endpoint at 32 connections."""
    http = {
        "naive": {"32": _figures(100.0, 600.0)},
        "service": {"32": _figures(1_500.0, 30.0)},
        "service_uninstrumented": {"32": _figures(1_550.0, 28.0)},
    }
    change = instrumentation_change([_run(970)], [_run(1_000)])
    goals = serving_goals(http, change, 20.0)
    assert goals["throughput_ratio"] == 15.0
    assert goals["throughput_goal_met"] is True
    assert goals["p99_goal_met"] is True
    assert goals["instrumentation_goal_met"] is True
    assert goals["instrumentation_cpu_share"] == pytest.approx(0.05)


def test_a_six_percent_instrumentation_cost_misses_the_goal() -> None:
    """A 6% throughput cost from instrumentation misses the goal."""
    http = {name: {"32": _figures(1_000.0, 20.0)} for name in ("naive", "service")}
    goals = serving_goals(http, instrumentation_change([_run(940)], [_run(1_000)]), 20.0)
    assert goals["instrumentation_goal_met"] is False


def test_the_table_names_every_target_and_the_verdicts() -> None:
    """The results table shows each target's figures, the ratio and the verdicts."""
    http = {
        name: {"32": {**_figures(rps, 20.0), "errors": 0}}
        for name, rps in (("naive", 100.0), ("service", 400.0), ("service_uninstrumented", 400.0))
    }
    result = {
        "predict_proba": {"1": {"ms_per_call": 4.0, "ms_per_row": 4.0}},
        "http": http,
        "goals": serving_goals(http, instrumentation_change([_run(400)], [_run(400)]), 12.0),
    }
    table = format_table(result)
    for expected in ("| naive | 32 | 100.0 |", "service_uninstrumented", "4.00x", "met", "12.0 us"):
        assert expected in table


def test_the_in_process_instrumentation_cost_is_measured(tmp_path: Path) -> None:
    """The in-process instrumentation cost is measured as a plausible number of microseconds."""
    cost = measure_instrumentation_cpu(tmp_path, requests=200)
    assert 0.0 < cost < 10_000.0
