"""The serving benchmark times both inference paths and checks the service uses the compiled one."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from benchmarks.report import BenchmarkError
from benchmarks.serving.goals import instrumentation_change, serving_goals
from benchmarks.serving.in_process import measure_inference_paths
from benchmarks.serving.load import LoadResult
from benchmarks.serving.run import format_table, served_path
from pipeline import ModelConfig, fit, generate
from pipeline.compiled import TOLERANCE

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def model() -> Pipeline:
    """The platform's pipeline, fitted on a little generated data."""
    return fit(generate(1_500, 2), ModelConfig(max_iter=15, early_stopping=False))


def test_both_paths_are_timed_per_size_and_agree(model: Pipeline) -> None:
    """Reference and compiled figures for every size, equal scores, and a speedup per size."""
    paths = measure_inference_paths(model, sizes=(1, 10), min_seconds=0.01)
    for name in ("reference", "compiled"):
        assert set(paths[name]) == {"1", "10"}
        assert paths[name]["10"]["ms_per_row"] == pytest.approx(
            paths[name]["10"]["ms_per_call"] / 10
        )
    assert paths["max_difference"] <= TOLERANCE
    assert paths["speedup"]["1"] == pytest.approx(
        paths["reference"]["1"]["ms_per_call"] / paths["compiled"]["1"]["ms_per_call"]
    )


def test_a_model_without_a_compiled_path_stops_the_benchmark() -> None:
    """Timing a compiled path that the service would not use is refused, with the reason."""
    rows = generate(200, 3)
    model = Pipeline([
        ("pre", ColumnTransformer([("log", FunctionTransformer(np.log1p), ["age"])])),
        ("clf", LogisticRegression()),
    ]).fit(rows[["age"]], rows["default"])  # fmt: skip
    with pytest.raises(BenchmarkError, match=r"no compiled path: .*FunctionTransformer"):
        measure_inference_paths(model, sizes=(1,), min_seconds=0.01)


def _model_answer(path: str) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/model"
        champion = {"inference_path": path, "inference_path_reason": f"because {path}"}
        return httpx.Response(200, json={"champion": champion})

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_the_service_target_must_serve_through_the_compiled_path() -> None:
    """/model saying compiled is recorded; saying reference stops the benchmark with the reason."""
    assert served_path("service", "http://s", _model_answer("compiled")) == {
        "inference_path": "compiled",
        "reason": "because compiled",
    }
    with pytest.raises(BenchmarkError, match="service serves through the reference path: because"):
        served_path("service", "http://s", _model_answer("reference"))


def test_the_table_shows_both_paths_and_what_each_service_served_through() -> None:
    """The printed table has a row per size with both paths, the speedup and the served path."""
    figures = {"requests_per_second": 100.0, "p50_ms": 5.0, "p99_ms": 9.0,
               "cpu_us_per_request": 400.0, "errors": 0}  # fmt: skip
    http = {name: {"32": figures} for name in ("naive", "service")}
    run = LoadResult(100.0, 5.0, 9.0, 500, 0, 400.0)
    result = {
        "predict_proba": {"1": {"ms_per_call": 4.0, "ms_per_row": 4.0}},
        "inference_paths": {
            "reference": {"1": {"ms_per_call": 4.0, "ms_per_row": 4.0}},
            "compiled": {"1": {"ms_per_call": 1.0, "ms_per_row": 1.0}},
            "speedup": {"1": 4.0},
            "max_difference": 0.0,
            "tolerance": TOLERANCE,
        },
        "served_paths": {"service": {"inference_path": "compiled", "reason": "checked"}},
        "http": http,
        "goals": serving_goals(http, instrumentation_change([run], [run]), 12.0),
    }
    table = format_table(result)
    assert "| 1 | 4.000 | 1.000 | 4.0x | 1000.0 |" in table
    assert "served through: service: compiled" in table
