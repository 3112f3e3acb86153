"""Registry outages: the service starts, answers, reports them within seconds, and keeps serving.

A fake source stands in for MLflow: it can fail at once (connection refused) or hang (a server
that accepts connections and never answers), and be released again.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sklearn.pipeline import Pipeline

from registry import RegistrySettings
from serving.app import create_app
from serving.cache import ModelCache
from serving.deployment import DesiredState, RegistryModelSource, open_read_only
from serving.inference_log import InferenceLogStore
from serving.metrics import create_metrics
from serving.reconcile import Reconciler
from serving.settings import ServingSettings
from serving.snapshot import DeploymentHolder
from tests.unit.serving.conftest import AUTH, ConstantModel, FakeSource, predict_body

pytestmark = pytest.mark.unit

MLFLOW_VARIABLES = (
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
)


class HangingSource(FakeSource):
    """A source whose registry reads block until released (or fail at once when ``down``)."""

    def __init__(self, models: dict[int, Any], desired: DesiredState) -> None:
        super().__init__(models, desired)
        self.released = threading.Event()
        self.released.set()
        self.down = False
        self.calls = 0
        self._hang_once = False
        self._all_hang = False

    def hang(self, *, once: bool = False) -> None:
        """Make reads block until :attr:`released` is set (only the next read if ``once``)."""
        self._hang_once = once
        self.released.clear()
        self._all_hang = not once

    def desired(self) -> DesiredState:
        self.calls += 1
        if self.down:
            raise ConnectionRefusedError("registry down")
        once, self._hang_once = self._hang_once, False
        if once:
            state = self.state
            self.released.wait(timeout=30)
            return state
        if not self._all_hang:
            return self.state
        # Bounded, so a broken test cannot hang the suite.
        if not self.released.wait(timeout=30):
            raise TimeoutError("never released")
        return self.state


def _until(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {deadline_s} s: {what}")
        time.sleep(0.02)


@pytest.fixture
def hanging(small_model: Pipeline) -> Iterator[HangingSource]:
    """Version 1 is the real model; reads answer until the test makes them hang."""
    source = HangingSource({1: small_model, 2: ConstantModel(0.9)}, DesiredState(champion=1))
    yield source
    source.down = False
    source.released.set()


def _reconciler(source: HangingSource, **kwargs: Any) -> Reconciler:
    return Reconciler(source, DeploymentHolder(), create_metrics(), **kwargs)


def test_a_reload_is_not_blocked_by_a_poll_stuck_on_the_registry(hanging: HangingSource) -> None:
    """The lock is not held while the registry is awaited: a second reconcile goes through.

    And the stuck poll, which read the registry's older state, installs nothing when it
    finally returns after the newer one.
    """

    async def scenario() -> None:
        reconciler = _reconciler(hanging)
        await reconciler.reconcile()
        hanging.hang(once=True)
        stuck = asyncio.ensure_future(reconciler.reconcile())
        while hanging.calls < 2:  # let it enter the registry read
            await asyncio.sleep(0.01)
        hanging.state = DesiredState(champion=2)
        second = await asyncio.wait_for(reconciler.reconcile(), 5)
        assert second.deployment.champion is not None
        assert second.deployment.champion.version == 2
        hanging.released.set()
        assert (await asyncio.wait_for(stuck, 5)).changed is False
        assert reconciler.holder.current.champion is not None
        assert reconciler.holder.current.champion.version == 2

    asyncio.run(scenario())


def test_a_hanging_registry_is_reported_stale_within_a_few_intervals(
    hanging: HangingSource,
) -> None:
    """A poll that never returns raises no error, so staleness must be judged by age."""

    async def scenario() -> None:
        reconciler = _reconciler(hanging, interval_seconds=0.05, stale_after_seconds=0.15)
        await reconciler.reconcile()
        assert reconciler.registry_error is None
        hanging.hang()
        stuck = asyncio.ensure_future(reconciler.reconcile())
        deadline = time.monotonic() + 5
        while reconciler.registry_error is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert reconciler.registry_error is not None
        assert reconciler.registry_error.startswith("registry stale: no successful poll for")
        hanging.released.set()
        await stuck
        assert reconciler.registry_error is None

    asyncio.run(scenario())


def test_a_failed_poll_is_reported_at_once_and_cleared_by_the_next_good_one(
    client: TestClient, hanging: HangingSource, make_client: Callable[..., TestClient]
) -> None:
    """Connection refused shows in /ready on the failing poll; the models keep serving."""
    service = make_client()
    app: Any = service.app
    app.state.runtime.reconciler.source = hanging
    hanging.down = True
    reload = service.post("/admin/reload", headers=AUTH)
    assert reload.status_code == 503
    assert "registry unavailable (ConnectionRefusedError)" in reload.json()["detail"]
    ready = service.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["registry_error"] == "registry unavailable (ConnectionRefusedError)"
    assert service.post("/predict", json=predict_body()).status_code == 200
    hanging.down = False
    assert service.post("/admin/reload", headers=AUTH).status_code == 200
    assert service.get("/ready").json()["registry_error"] is None


def test_a_reload_answers_503_in_bounded_time_while_the_registry_hangs(
    make_client: Callable[..., TestClient], hanging: HangingSource
) -> None:
    """POST /admin/reload waits at most reload_timeout_seconds, then says so."""
    service = make_client(reload_timeout_seconds=0.2)
    app: Any = service.app
    app.state.runtime.reconciler.source = hanging
    hanging.hang()
    response = service.post("/admin/reload", headers=AUTH)
    assert response.status_code == 503
    assert "did not answer within 0.2 s" in response.json()["detail"]
    assert service.get("/health").json() == {"status": "ok"}
    assert service.post("/predict", json=predict_body()).status_code == 200


def test_a_service_started_while_the_registry_hangs_answers_health_and_says_why_not_ready(
    settings: ServingSettings, hanging: HangingSource
) -> None:
    """Startup waits for the first poll only startup_registry_wait_seconds, then comes up."""
    hanging.hang()
    app = create_app(
        settings.model_copy(
            update={"startup_registry_wait_seconds": 0.2, "registry_stale_after_polls": 1.0,
                    "reconcile_interval_seconds": 0.1}
        ),
        model_source=hanging,
    )  # fmt: skip
    started = time.monotonic()
    with TestClient(app, raise_server_exceptions=False) as service:
        assert time.monotonic() - started < 10  # the source hangs for 30 s
        assert service.get("/health").json() == {"status": "ok"}
        _until(
            lambda: service.get("/ready").json()["registry_error"] is not None, 5, "stale registry"
        )
        ready = service.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["reason"].startswith("no champion is loaded: registry stale")
        hanging.released.set()
        _until(lambda: service.get("/ready").status_code == 200, 10, "ready once released")


def test_a_restart_while_the_registry_is_down_serves_the_cached_models(
    settings: ServingSettings, hanging: HangingSource
) -> None:
    """The last served models are cached on disk and serve again until the registry answers."""
    with TestClient(create_app(settings, model_source=hanging)) as first:
        assert first.get("/ready").status_code == 200
    assert (settings.resolved_model_cache_dir / "deployment.json").exists()

    hanging.down = True
    with TestClient(create_app(settings, model_source=hanging)) as restarted:
        ready = restarted.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["deployment"]["from_cache"] is True
        assert ready.json()["registry_error"] == "registry unavailable (ConnectionRefusedError)"
        answer = restarted.post("/predict", json=predict_body()).json()["predictions"][0]
        assert answer["model_version"] == 1
        hanging.down = False
        assert restarted.post("/admin/reload", headers=AUTH).status_code == 200
        model = restarted.get("/model").json()
        assert model["from_cache"] is False
        assert model["champion"]["version"] == 1


def test_without_a_cache_a_restart_while_down_is_not_ready_and_says_why(
    settings: ServingSettings, hanging: HangingSource
) -> None:
    """Nothing cached, registry refusing connections: 503 with the registry's error as reason."""
    hanging.down = True
    with TestClient(create_app(settings, model_source=hanging)) as service:
        assert service.get("/health").status_code == 200
        ready = service.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["reason"] == (
            "no champion is loaded: registry unavailable (ConnectionRefusedError)"
        )


def test_the_cache_is_written_atomically_and_a_damaged_one_is_ignored(
    tmp_path: Path, small_model: Pipeline
) -> None:
    """No temporary files are left behind; an unreadable cache means "no cache", not a crash."""
    from serving.cache import CachedDeployment

    cache = ModelCache(tmp_path / "cache")
    cache.save(CachedDeployment(1, None, 0.0), {1: small_model})
    assert sorted(p.name for p in cache.directory.iterdir()) == [
        "deployment.json",
        "model-v1.skops",
    ]
    found = cache.read()
    assert found is not None
    assert found[0] == CachedDeployment(1, None, 0.0)
    (cache.directory / "model-v1.skops").write_bytes(b"not a model")
    assert cache.read() is None
    (cache.directory / "deployment.json").write_text("{")
    assert cache.read() is None


def test_mlflow_client_limits_come_from_the_settings_at_startup_not_at_import(
    monkeypatch: pytest.MonkeyPatch, settings: ServingSettings
) -> None:
    """Importing the service sets nothing; building the registry source sets short limits."""
    for name in MLFLOW_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    import serving.app  # noqa: F401

    assert not any(name in os.environ for name in MLFLOW_VARIABLES)
    RegistryModelSource.from_environment(settings)
    assert {name: os.environ[name] for name in MLFLOW_VARIABLES} == {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    }


def test_mlflows_own_variables_are_read_as_the_serving_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An operator who sets MLFLOW_HTTP_REQUEST_TIMEOUT gets it, as .env.example suggests."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    monkeypatch.setenv("MLPLAT_SERVING_MLFLOW_MAX_RETRIES", "1")
    settings = ServingSettings(environment="dev")
    assert (settings.mlflow_timeout_seconds, settings.mlflow_max_retries) == (30, 1)


def test_before_the_registrys_first_answer_ready_says_it_is_waiting(
    settings: ServingSettings, hanging: HangingSource
) -> None:
    """Not ready, not yet stale: the reason says the registry has not answered yet."""
    hanging.hang()
    app = create_app(
        settings.model_copy(update={"startup_registry_wait_seconds": 0.1}), model_source=hanging
    )
    with TestClient(app, raise_server_exceptions=False) as service:
        ready = service.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["reason"] == (
            "no champion is loaded yet: waiting for the registry's first answer"
        )
        assert ready.json()["registry_error"] is None
        hanging.released.set()


def test_a_service_starts_and_predicts_while_the_inference_log_database_is_down(
    settings: ServingSettings, source: FakeSource
) -> None:
    """The log store is best effort: its outage costs log records (counted), never predictions."""
    with socket.socket() as closed:  # a port nothing listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    store = InferenceLogStore(f"postgresql+psycopg://mlplat@127.0.0.1:{port}/log")
    app = create_app(settings, model_source=source, log_store=store)
    with TestClient(app, raise_server_exceptions=False) as service:
        assert service.get("/ready").status_code == 200
        assert service.post("/predict", json=predict_body()).status_code == 200
        feedback = service.post("/feedback", json={"request_id": "abc", "label": 1})
        assert feedback.status_code == 503
        assert feedback.json() == {"detail": "the inference log store is unavailable"}
        _until(
            lambda: "mlplat_inference_log_write_failures_total 1.0" in service.get("/metrics").text,
            10,
            "the failed write counted",
        )


def test_the_services_registry_client_takes_every_registry_setting(tmp_path: Path) -> None:
    """The read-only client uses the configured lease and "since" timings, not defaults."""
    settings = RegistrySettings(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        events_url=f"sqlite:///{tmp_path / 'events.db'}",
        lock_lease_seconds=42.0,
        since_timeout_seconds=0.25,
    )
    registry = open_read_only(settings)
    assert registry.lock_lease_seconds == 42.0
    assert registry._since._timeout_seconds == 0.25  # no public view of it
