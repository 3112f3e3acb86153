"""Small data and one small trained model, shared by the pipeline's unit tests (read-only)."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from pipeline.config import EvaluationConfig, GateConfig, ModelConfig, PipelineConfig
from pipeline.data import generate
from pipeline.pipeline import PipelineResult, run
from pipeline.threads import limit_threads
from pipeline.train import fit, split


@pytest.fixture(scope="session")
def small_frame() -> pd.DataFrame:
    """3,000 generated rows; tests must not modify it."""
    return generate(3_000, seed=3)


@pytest.fixture(scope="session")
def small_split(small_frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The 75/25 split of ``small_frame``."""
    return split(small_frame, 0.25, seed=3)


@pytest.fixture(scope="session")
def small_model(small_split: tuple[pd.DataFrame, pd.DataFrame]) -> Pipeline:
    """A model fitted once on the training part of ``small_split``."""
    return fit(small_split[0], ModelConfig())


@pytest.fixture(scope="session", autouse=True)
def _one_native_thread() -> Iterator[None]:
    """Tests predict directly too: keep OpenMP from busy-waiting on a shared 2-core runner."""
    with limit_threads(1):
        yield


@pytest.fixture(scope="session")
def mlflow_experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local SQLite MLflow store under a temp dir; yields the id of a fresh experiment.

    Session-scoped because creating the SQLite schema takes seconds (MLflow runs its migrations).

    The id is passed to ``start_run`` explicitly: setting a global active experiment would leak
    into other modules' tests.
    """
    import mlflow

    root = tmp_path_factory.mktemp("mlflow")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    try:
        yield mlflow.create_experiment("pipeline", artifact_location=(root / "art").as_uri())
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="session")
def tiny_cfg() -> PipelineConfig:
    """Defaults, with lighter measurement so composed runs stay quick."""
    return PipelineConfig(
        evaluation=EvaluationConfig(latency_batch_rows=200, latency_repeats=2),
        gates=GateConfig(bootstrap_resamples=200),
        reference_sample_rows=500,
    )


@pytest.fixture(scope="session")
def clean_run(
    small_frame: pd.DataFrame, tiny_cfg: PipelineConfig
) -> tuple[PipelineResult, list[tuple[str, str]]]:
    """One composed run on ``small_frame`` without champion, with the stage events it emitted."""
    events: list[tuple[str, str]] = []
    result = run(small_frame, tiny_cfg, None, on_stage=lambda s, status: events.append((s, status)))
    return result, events
