"""``ci/stages.py::run_pipeline`` in process: the rows it is handed, the store it is told.

The CLI tests drive the generated credit data through ``mlplat pipeline run``; these hand the
stage a source of their own and check that its rows, its lineage and the MLflow store named in the
call are the ones used — and that no process-wide MLflow setting outlives the call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from ci.runner import open_experiment
from ci.stages import RunRequest, RunSummary, run_pipeline
from pipeline import PipelineConfig, dataset_digest, generate
from pipeline.config import DataConfig, EvaluationConfig, GateConfig
from registry import ModelRegistry, RegistrySettings, open_registry

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SOURCE_TAG = "mlplat.source"


@dataclass(frozen=True)
class FrameSource:
    """A frame already in memory, as a test or a notebook would hand it over."""

    frame: pd.DataFrame
    name: str
    loads: list[int] = field(default_factory=list)

    def load(self) -> pd.DataFrame:
        """Return a copy of the frame, counting the calls."""
        self.loads.append(1)
        return self.frame.copy()

    @property
    def description(self) -> str:
        """The frame's name."""
        return f"from {self.name}"

    @property
    def lineage(self) -> Mapping[str, str]:
        """Where the rows came from."""
        return {SOURCE_TAG: self.name}


@dataclass
class Store:
    """A fresh local store and what ``run_pipeline`` needs of it."""

    settings: RegistrySettings
    registry: ModelRegistry
    experiment_id: str
    config: PipelineConfig


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """An empty SQLite store and a light configuration."""
    settings = RegistrySettings(home=Path(tmp_path_factory.mktemp("run-pipeline")), actor="pytest")
    config = PipelineConfig(
        data=DataConfig(n_rows=6_000),
        evaluation=EvaluationConfig(latency_batch_rows=200, latency_repeats=2),
        gates=GateConfig(bootstrap_resamples=200),
        reference_sample_rows=500,
    )
    return Store(settings, open_registry(settings), open_experiment(settings), config)


def run(store: Store, source: FrameSource, seed: int) -> RunSummary:
    """One call of the stage against ``store``."""
    return run_pipeline(
        RunRequest(seed=seed, reason="pytest"),
        source,
        config=store.config,
        registry=store.registry,
        tracking_uri=store.settings.tracking_uri,
        experiment_id=store.experiment_id,
    )


def mlflow_globals() -> tuple[object, ...]:
    """The process-wide MLflow state a run could leak: both URIs and their variables."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    return (
        tracking_utils._tracking_uri,
        registry_utils._registry_uri,
        os.environ.get("MLFLOW_TRACKING_URI"),
        os.environ.get("MLFLOW_REGISTRY_URI"),
    )


def test_the_stage_trains_on_the_rows_it_is_handed_and_records_their_lineage(
    store: Store,
) -> None:
    """The source is loaded once; the digest, the run's and the version's tags name it."""
    source = FrameSource(generate(6_000, seed=11), "frame-11")
    summary = run(store, source, seed=11)
    assert summary.outcome == "registered", summary.reasons
    assert (summary.model_version, summary.alias) == (1, "champion")
    assert len(source.loads) == 1
    assert summary.data_digest == dataset_digest(source.frame)
    client = MlflowClient(store.settings.tracking_uri, store.settings.tracking_uri)
    assert summary.run_id is not None
    assert client.get_run(summary.run_id).data.tags[SOURCE_TAG] == "frame-11"
    version = client.get_model_version(store.settings.model_name, "1")
    assert version.tags[SOURCE_TAG] == "frame-11"
    assert version.tags["mlplat.data_digest"] == summary.data_digest
    # The compiled-path verdict of the run is on the version too, where a reviewer looks.
    assert version.tags["mlplat.compiled"] == "yes"
    assert "max |difference|" in version.tags["mlplat.compiled_reason"]


def test_the_store_is_set_for_the_call_only(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a run the process-wide MLflow URIs and variables are what they were before it."""
    # A known "before", whatever earlier tests left (tests/conftest.py restores it afterwards).
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    before = mlflow_globals()
    summary = run(store, FrameSource(generate(6_000, seed=12), "frame-12"), seed=12)
    assert summary.champion_before == 1  # compared with the champion: it read the store
    assert mlflow_globals() == before
    assert mlflow.get_tracking_uri() != store.settings.tracking_uri
