"""Registration records whether the compiled path may serve a model, and why, as MLflow tags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from features import FEATURE_NAMES
from interfaces.tags import COMPILED_REASON_TAG, COMPILED_TAG
from pipeline.compiled import TOLERANCE, CompileCheck, check_compiled
from pipeline.config import PipelineConfig
from pipeline.data import generate
from pipeline.model_io import log_model, read_compile_check
from pipeline.pipeline import PipelineResult
from pipeline.tracking import log_training_run

pytestmark = pytest.mark.unit


class _OffByAMillionth(Pipeline):
    """The same pipeline, but its reference probabilities move by 1e-6 (a broken twin)."""

    def predict_proba(self, X: Any, **params: Any) -> Any:  # noqa: N803
        return super().predict_proba(X, **params) + 1e-6


def test_the_platform_model_passes_on_its_holdout_and_says_by_how_much(
    small_model: Pipeline, small_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """A model that compiles is kept, with the measured difference and the tolerance in words."""
    holdout = small_split[1][list(FEATURE_NAMES)]
    check = check_compiled(small_model, holdout)
    assert check.compiled
    assert f"on {len(holdout)} rows" in check.reason
    assert f"tolerance {TOLERANCE:g}" in check.reason
    assert check.tags() == {COMPILED_TAG: "yes", COMPILED_REASON_TAG: check.reason}


def test_a_step_the_compiler_does_not_know_is_refused_with_its_name() -> None:
    """A FunctionTransformer in the pipeline: refused, and the reason names it; nothing raises."""
    rows = generate(300, 5)
    model = Pipeline([
        ("pre", ColumnTransformer([("log", FunctionTransformer(np.log1p), ["age"])])),
        ("clf", LogisticRegression(max_iter=200)),
    ]).fit(rows[["age"]], rows["default"])  # fmt: skip
    check = check_compiled(model, rows[["age"]])
    assert not check.compiled
    assert "FunctionTransformer" in check.reason
    assert check.tags()[COMPILED_TAG] == "no"


def test_a_compiled_path_that_differs_beyond_the_tolerance_is_refused(
    small_model: Pipeline, small_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """Scores 1e-6 apart fail a 1e-9 tolerance, and the reason gives the measured difference."""
    twin = _OffByAMillionth(small_model.steps)
    check = check_compiled(twin, small_split[1][list(FEATURE_NAMES)])
    assert not check.compiled
    assert check.reason.startswith("differs from the reference: max |difference| 1e-06")


def test_tags_round_trip_and_tags_without_a_check_read_as_none() -> None:
    """What ``tags()`` writes ``from_tags`` reads back; a model logged before records nothing."""
    check = CompileCheck(False, "not compilable: block 'x'")
    assert CompileCheck.from_tags(check.tags()) == check
    assert CompileCheck.from_tags({}) is None
    assert CompileCheck.from_tags({COMPILED_TAG: "maybe"}) is None


@pytest.mark.slow
def test_the_check_is_logged_on_the_run_and_the_model_and_read_back_from_its_files(
    clean_run: tuple[PipelineResult, list[tuple[str, str]]],
    tiny_cfg: PipelineConfig,
    mlflow_experiment: str,
    tmp_path: Path,
) -> None:
    """Run tags, logged-model tags and the MLmodel metadata all hold the holdout check."""
    result = clean_run[0]
    assert result.holdout is not None
    with mlflow.start_run(experiment_id=mlflow_experiment) as active:
        uri = log_training_run(result, tiny_cfg)
    assert uri is not None
    run_tags = mlflow.get_run(active.info.run_id).data.tags
    assert run_tags[COMPILED_TAG] == "yes"
    assert f"on {len(result.holdout)} rows" in run_tags[COMPILED_REASON_TAG]
    model_tags = mlflow.get_logged_model(uri.removeprefix("models:/")).tags
    assert model_tags[COMPILED_TAG] == "yes"
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path)))
    assert read_compile_check(local) == CompileCheck(True, run_tags[COMPILED_REASON_TAG])


@pytest.mark.slow
def test_log_model_without_a_check_checks_on_the_input_example(
    small_model: Pipeline,
    small_split: tuple[pd.DataFrame, pd.DataFrame],
    mlflow_experiment: str,
    tmp_path: Path,
) -> None:
    """Called alone, log_model still records a verdict: measured on the example rows."""
    example = small_split[0][list(FEATURE_NAMES)].dropna().head(3).reset_index(drop=True)
    with mlflow.start_run(experiment_id=mlflow_experiment):
        uri = log_model(small_model, example)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path)))
    check = read_compile_check(local)
    assert check is not None
    assert check.compiled
    assert "on 3 rows" in check.reason
