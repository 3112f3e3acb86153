from __future__ import annotations

import json
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from features import FEATURE_NAMES, TARGET
from interfaces.tags import REFERENCE_ARTIFACT
from pipeline.config import PipelineConfig
from pipeline.data import generate
from pipeline.model_io import load_model
from pipeline.pipeline import PipelineResult, run
from pipeline.scenarios import apply_scenario
from pipeline.tracking import (
    CODE_VERSION_ENV,
    PREDICTION_COLUMN,
    UNKNOWN_CODE_VERSION,
    TrackingError,
    code_version,
    dataset_digest,
    log_training_run,
    mlflow_store,
    quiet_git_probe,
)

pytestmark = [pytest.mark.unit, pytest.mark.slow]


@pytest.fixture(scope="module")
def cfg(tiny_cfg: PipelineConfig) -> PipelineConfig:
    return tiny_cfg


@pytest.fixture(scope="module")
def result(clean_run: tuple[PipelineResult, list[tuple[str, str]]]) -> PipelineResult:
    return clean_run[0]


@pytest.fixture(scope="module")
def logged(
    result: PipelineResult, cfg: PipelineConfig, mlflow_experiment: str
) -> tuple[str, str | None]:
    with mlflow.start_run(experiment_id=mlflow_experiment) as active:
        uri = log_training_run(result, cfg)
    return active.info.run_id, uri


def test_the_digest_is_stable_and_sensitive_to_content() -> None:
    """The dataset digest ignores the index but changes with any value or dtype."""
    frame = generate(300, seed=1)
    assert dataset_digest(frame) == dataset_digest(generate(300, seed=1))
    assert dataset_digest(frame) == dataset_digest(frame.set_axis(range(1, 301)))  # not the index
    changed = frame.copy()
    changed.loc[7, "age"] += 1
    assert dataset_digest(changed) != dataset_digest(frame)
    assert dataset_digest(frame.astype({"age": "float64"})) != dataset_digest(frame)
    assert len(dataset_digest(frame)) == 64


def test_code_version_is_the_commit_and_says_when_the_tree_is_dirty(tmp_path: Path) -> None:
    """The code version is the commit hash, suffixed -dirty when the tree has changes."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.org"]

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *ident, *args], cwd=tmp_path, check=True, capture_output=True, text=True
        )
        return done.stdout.strip()

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("commit", "-q", "-m", "first")
    sha = git("rev-parse", "HEAD")
    assert code_version(tmp_path, environ={}) == sha
    (tmp_path / "a.py").write_text("x = 2\n")
    assert code_version(tmp_path, environ={}) == f"{sha}-dirty"


def test_code_version_is_unknown_outside_a_checkout(tmp_path: Path) -> None:
    """Not a checkout and no variable: "unknown", never a package version that looks exact."""
    assert code_version(tmp_path, environ={}) == UNKNOWN_CODE_VERSION


def test_the_build_time_variable_wins_and_a_blank_one_is_ignored(tmp_path: Path) -> None:
    """The image's MLPLAT_CODE_VERSION is the answer; a blank one (no build arg) is not."""
    assert code_version(tmp_path, environ={CODE_VERSION_ENV: " 3f2a9c1 "}) == "3f2a9c1"
    assert code_version(tmp_path, environ={CODE_VERSION_ENV: ""}) == UNKNOWN_CODE_VERSION


def test_code_version_is_unknown_and_silent_without_a_git_executable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no git on PATH (the runtime image) the checkout cannot answer: "unknown", no warning."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert code_version(environ={}) == UNKNOWN_CODE_VERSION
        assert code_version(environ={CODE_VERSION_ENV: "abc123"}) == "abc123"


def test_quiet_git_probe_sets_gitpython_quiet_only_inside_and_keeps_a_callers_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The variable holds while a run starts, is gone after it, and a caller's choice stands."""
    monkeypatch.delenv("GIT_PYTHON_REFRESH", raising=False)
    with quiet_git_probe():
        assert os.environ["GIT_PYTHON_REFRESH"] == "quiet"
    assert "GIT_PYTHON_REFRESH" not in os.environ
    monkeypatch.setenv("GIT_PYTHON_REFRESH", "error")
    with quiet_git_probe():
        assert os.environ["GIT_PYTHON_REFRESH"] == "error"
    assert os.environ["GIT_PYTHON_REFRESH"] == "error"


def test_mlflow_store_points_mlflow_at_a_store_for_the_block_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Inside, both URIs are the store's; after, the URIs and both variables are as before."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:///elsewhere.db")
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with mlflow_store(store):
        assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == (store, store)
        assert os.environ["MLFLOW_TRACKING_URI"] == store
    assert (tracking_utils._tracking_uri, registry_utils._registry_uri) == (None, None)
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert os.environ["MLFLOW_REGISTRY_URI"] == "sqlite:///elsewhere.db"


def test_logging_needs_an_active_run(result: PipelineResult, cfg: PipelineConfig) -> None:
    """Logging a training run without an active MLflow run raises TrackingError."""
    assert mlflow.active_run() is None
    with pytest.raises(TrackingError, match="active run"):
        log_training_run(result, cfg)


def test_a_trained_run_logs_params_tags_metrics_and_verdict(
    logged: tuple[str, str | None], result: PipelineResult, cfg: PipelineConfig
) -> None:
    """A trained run logs config params, lineage tags, metrics, slices, gate and timings."""
    run_id, uri = logged
    data = mlflow.MlflowClient().get_run(run_id).data
    assert data.params["gates.min_auc"] == str(cfg.gates.min_auc)
    assert data.params["model.learning_rate"] == str(cfg.model.learning_rate)
    assert result.data is not None
    assert data.tags["mlplat.dataset_digest"] == dataset_digest(result.data)
    assert data.tags["mlplat.code_version"]
    assert data.tags["mlplat.scenario"] == "none"
    assert data.tags["mlplat.gate"] == "passed"
    assert data.tags["mlplat.model_uri"] == uri
    assert result.evaluation is not None
    assert data.metrics["auc"] == pytest.approx(result.evaluation.metrics.auc)
    assert "slice.small_business.auc" in data.metrics
    assert data.metrics["gate.passed"] == 1.0
    assert "time.train_s" in data.metrics


def test_reports_are_saved_with_the_run(logged: tuple[str, str | None], tmp_path: Path) -> None:
    """The validation report, gate verdict and evaluation are saved as run artifacts."""
    run_id, _ = logged
    local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path)))
    validation = json.loads((local / "validation" / "report.json").read_text())
    verdict = json.loads((local / "gate" / "verdict.json").read_text())
    candidate = json.loads((local / "evaluation" / "candidate.json").read_text())
    assert validation["success"] is True
    assert verdict["passed"] is True
    assert {c["name"] for c in verdict["checks"]} >= {"floor_auc", "latency_budget"}
    assert "slices" in candidate


def test_the_reference_sample_holds_features_label_and_prediction(
    logged: tuple[str, str | None], result: PipelineResult, cfg: PipelineConfig, tmp_path: Path
) -> None:
    """The drift reference holds features, label and the model's own predictions."""
    run_id, _ = logged
    path = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=str(tmp_path)
    )
    reference = pd.read_parquet(path)
    assert list(reference.columns) == [*FEATURE_NAMES, TARGET, PREDICTION_COLUMN]
    assert len(reference) == cfg.reference_sample_rows
    assert result.model is not None
    expected = result.model.predict_proba(reference[list(FEATURE_NAMES)])[:, 1]
    np.testing.assert_allclose(reference[PREDICTION_COLUMN], expected)


def test_the_logged_model_is_the_trained_one(
    logged: tuple[str, str | None], result: PipelineResult, small_frame: pd.DataFrame
) -> None:
    """The model logged with the run scores exactly like the trained one."""
    _, uri = logged
    assert uri is not None
    assert result.model is not None
    rows = small_frame.head(100)
    np.testing.assert_array_equal(
        load_model(uri).predict_proba(rows), result.model.predict_proba(rows)
    )


def test_a_run_stopped_at_validation_logs_the_report_and_no_model(
    small_frame: pd.DataFrame, cfg: PipelineConfig, mlflow_experiment: str, tmp_path: Path
) -> None:
    """A run stopped at validation logs its tags and validation report and no model."""
    stopped = run(apply_scenario(small_frame, "null-spike"), cfg, None)
    with mlflow.start_run(experiment_id=mlflow_experiment) as active:
        assert log_training_run(stopped, cfg) is None
    client = mlflow.MlflowClient()
    tags = client.get_run(active.info.run_id).data.tags
    assert tags["mlplat.validation"] == "failed"
    assert tags["mlplat.stopped_at"] == "validate"
    assert tags["mlplat.gate"] == "not-run"
    assert [a.path for a in client.list_artifacts(active.info.run_id)] == ["validation"]
    local = Path(
        mlflow.artifacts.download_artifacts(run_id=active.info.run_id, dst_path=str(tmp_path))
    )
    assert "debt_to_income: null_rate" in (local / "validation" / "report.txt").read_text()
