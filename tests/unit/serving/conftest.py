"""Fixtures of the serving unit tests: a small real model, a fake model source, a TestClient."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sklearn.pipeline import Pipeline

from pipeline.config import ModelConfig
from pipeline.data import generate
from pipeline.train import fit
from serving.app import create_app
from serving.deployment import DesiredState
from serving.schemas import EXAMPLE_RECORD
from serving.settings import ServingSettings

with warnings.catch_warnings():
    # starlette 1.x asks for httpx2; httpx still works. Narrow to this import.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

ADMIN_TOKEN = "unit-test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class BrokenModelError(RuntimeError):
    """What a fake source raises for a version that cannot be loaded."""


class FakeSource:
    """A model source whose desired state the test sets; versions map to models.

    Args:
        models: Version -> model; a version mapped to ``None`` fails to load.
        desired: The initial desired state.
    """

    def __init__(self, models: dict[int, Any], desired: DesiredState) -> None:
        self.models = models
        self.state = desired
        self.loads: list[int] = []

    def desired(self) -> DesiredState:
        return self.state

    def load(self, version: int) -> Any:
        self.loads.append(version)
        model = self.models.get(version)
        if model is None:
            raise BrokenModelError(f"version {version} is broken")
        return model


class ConstantModel:
    """A stand-in model that scores every row ``probability``."""

    def __init__(self, probability: float) -> None:
        self.probability = probability
        self.batch_sizes: list[int] = []

    def predict_proba(self, X: Any) -> Any:  # noqa: N803
        import numpy as np

        self.batch_sizes.append(len(X))
        return np.tile([1.0 - self.probability, self.probability], (len(X), 1))


@pytest.fixture(autouse=True)
def _no_leaked_multiprocess_dir() -> Iterator[None]:
    """The ``serve`` command sets PROMETHEUS_MULTIPROC_DIR for its workers; undo it after a test.

    Left set, every later test in the process would create its metrics in multi-process mode.
    """
    before = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    yield
    if before is None:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = before


@pytest.fixture(scope="session")
def small_model() -> Pipeline:
    """The real pipeline, fitted once on a little generated data (about a second)."""
    return fit(generate(1_500, seed=11), ModelConfig(max_iter=15, early_stopping=False))


@pytest.fixture
def settings(tmp_path: Path) -> ServingSettings:
    """Dev settings with a real admin token; polls are left to the test (POST /admin/reload)."""
    return ServingSettings(
        environment="dev",
        admin_token=ADMIN_TOKEN,
        home=tmp_path / "home",
        reconcile_interval_seconds=3600,
        inference_log_flush_seconds=0.05,
    )


@pytest.fixture
def source(small_model: Pipeline) -> FakeSource:
    """Version 1 is the real model, 2 a constant 0.9 model, 3 cannot be loaded."""
    return FakeSource({1: small_model, 2: ConstantModel(0.9), 3: None}, DesiredState(champion=1))


AppClient = Callable[..., TestClient]


@pytest.fixture
def make_client(
    settings: ServingSettings, source: FakeSource
) -> Iterator[Callable[..., TestClient]]:
    """Factory: a started TestClient of an app with ``settings`` updated by keyword."""
    stack: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        app = create_app(settings.model_copy(update=overrides), model_source=source)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        stack.append(client)
        return client

    yield make
    for client in reversed(stack):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """A started client with the default test settings."""
    return make_client()


def record(**changes: Any) -> dict[str, Any]:
    """A valid feature record with ``changes`` applied (``None`` values are sent as null)."""
    return {**EXAMPLE_RECORD, **changes}


def predict_body(*records: dict[str, Any]) -> dict[str, Any]:
    """A /predict body; one valid record by default."""
    return {"records": list(records) or [record()]}
