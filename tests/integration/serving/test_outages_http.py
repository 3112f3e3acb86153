"""The real service against a real ``mlflow server`` reached through a proxy the test cuts.

What an operator relies on during an incident, over HTTP with real processes:

* MLflow down (refusing or black-holed): ``/ready`` says so within seconds, ``/predict`` never
  answers 5xx, ``/admin/reload`` answers in bounded time, and the service catches up as soon as
  MLflow is back.
* A service (re)started while MLflow is down comes up, answers ``/health``, and serves its
  cached models, or says why it cannot; the events database is down throughout (every service
  here points at a closed port for it).
* Someone with MLflow access moves an alias to a rejected or ungated version, or puts the canary
  at 100%: the service refuses, keeps serving what it served, and says why in ``/model``.
* Slow clients: silent connections, stalled headers and stalled bodies are cut off.

The measured times are written to ``outage-figures.json`` in the test's temporary directory and
printed; assertions use generous deadlines (timing goals live in benchmarks, not tests).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import mlflow
import pytest
from mlflow import MlflowClient

from features import FEATURE_NAMES
from pipeline.config import ModelConfig
from pipeline.data import generate
from pipeline.model_io import log_model
from pipeline.train import fit
from registry import ModelRegistry, RegistrySettings, ensure_experiment, open_registry
from serving.schemas import EXAMPLE_RECORD
from tests.integration.serving.process import ServiceProcess, start_service
from tests.integration.serving.tcpproxy import TcpProxy
from tests.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "integration-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY = {"records": [EXAMPLE_RECORD]}
INTERVAL_S = 0.5
STALE_AFTER_POLLS = 6  # 3 s: polls take a second on a busy two-core machine
START_DEADLINE_S = 120.0
FIGURES: dict[str, Any] = {}


@dataclass(frozen=True)
class World:
    """A registered model behind a cuttable proxy.

    Attributes:
        registry: The platform's writer, talking to MLflow directly.
        client: A raw MLflow client, talking to MLflow directly (the "attacker").
        proxy: What the services use to reach MLflow.
        champion: The gated champion.
        gated: Another gated version.
        to_reject: A gated version the test tags rejected.
        ungated: A version without a gate verdict.
        env: The services' environment, less their home and cache.
    """

    registry: ModelRegistry
    client: MlflowClient
    proxy: TcpProxy
    champion: int
    gated: int
    to_reject: int
    ungated: int
    env: dict[str, str]


@pytest.fixture(scope="module")
def world(mlflow_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Four versions of two real models; version 1 is champion; a proxy in front of MLflow."""
    home = tmp_path_factory.mktemp("outage-writer")
    name = f"credit-outage-{uuid.uuid4().hex[:8]}"
    settings = RegistrySettings(
        home=home, tracking_uri=mlflow_server_url, model_name=name, experiment_name=name
    )
    registry = open_registry(settings)
    client = MlflowClient(tracking_uri=mlflow_server_url, registry_uri=mlflow_server_url)
    experiment = ensure_experiment(client, name, None)
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(mlflow_server_url)
    mlflow.set_registry_uri(mlflow_server_url)
    versions = []
    try:
        models = [
            (fit(frame, ModelConfig(max_iter=10, early_stopping=False)), frame)
            for frame in (generate(1_500, seed) for seed in (1, 2))
        ]
        gates: list[dict[str, str]] = [{"gate_verdict": "passed"}] * 3 + [{}]
        for i, lineage in enumerate(gates):
            model, frame = models[i % 2]
            with mlflow.start_run(experiment_id=experiment) as run:
                uri = log_model(model, frame[list(FEATURE_NAMES)].head(5))
            versions.append(registry.register(uri, run.info.run_id, lineage, reason="it"))
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    registry.bootstrap(versions[0], reason="it: first champion")
    host, port = mlflow_server_url.removeprefix("http://").split(":")
    proxy = TcpProxy(host, int(port))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLAT_", "MLFLOW_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        {
            "MLFLOW_TRACKING_URI": proxy.url,
            "MLPLAT_MODEL_NAME": name,
            "MLPLAT_EXPERIMENT_NAME": name,
            # The events database is down for every service here: reading the registry
            # must not need it.
            "MLPLAT_EVENTS_URL": f"postgresql://mlplat@127.0.0.1:{free_port()}/events",
            "MLPLAT_SERVING_ENVIRONMENT": "production",
            "MLPLAT_SERVING_ADMIN_TOKEN": TOKEN,
            "MLPLAT_SERVING_RECONCILE_INTERVAL_SECONDS": str(INTERVAL_S),
            "MLPLAT_SERVING_REGISTRY_STALE_AFTER_POLLS": str(STALE_AFTER_POLLS),
            "MLPLAT_SERVING_MLFLOW_TIMEOUT_SECONDS": "2",
            "MLPLAT_SERVING_MLFLOW_MAX_RETRIES": "1",
            "MLPLAT_SERVING_MLFLOW_BACKOFF_FACTOR": "0",
            "MLPLAT_SERVING_STARTUP_REGISTRY_WAIT_SECONDS": "2",
            "MLPLAT_SERVING_RELOAD_TIMEOUT_SECONDS": "3",
            "MLPLAT_SERVING_HEADER_TIMEOUT_SECONDS": "1",
            "MLPLAT_SERVING_BODY_TIMEOUT_SECONDS": "1",
            "MLPLAT_SERVING_INFERENCE_LOG_FLUSH_SECONDS": "0.1",
        }
    )
    try:
        champion, gated, to_reject, ungated = versions
        yield World(registry, client, proxy, champion, gated, to_reject, ungated, env)
    finally:
        proxy.close()


def _service_env(world: World, home: Path, cache: Path) -> dict[str, str]:
    return {
        **world.env,
        "MLPLAT_HOME": str(home),
        "MLPLAT_SERVING_MODEL_CACHE_DIR": str(cache),
    }


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model cache of the module's service, reused by a restart."""
    return tmp_path_factory.mktemp("serving-cache")


@pytest.fixture(scope="module")
def service(
    world: World, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """One service following the registry through the proxy, ready on the champion."""
    home = tmp_path_factory.mktemp("serving-home")
    running = start_service(_service_env(world, home, cache_dir), home / "service.log")
    try:
        health_s = running.wait_for("/health", 200, START_DEADLINE_S)
        FIGURES["start_with_mlflow_up"] = {"health_after_start_s": round(health_s, 2)}
        running.wait_for("/ready", 200, START_DEADLINE_S)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module", autouse=True)
def figures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Collects the measured times; written and printed when the module ends."""
    yield FIGURES
    path = tmp_path_factory.mktemp("figures") / "outage-figures.json"
    path.write_text(json.dumps(FIGURES, indent=2))
    print(f"\noutage figures ({path}):\n{json.dumps(FIGURES, indent=2)}")


def _ready(url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{url}/ready", timeout=5).json()
    return body


def _until(condition: Callable[[], bool], deadline_s: float, what: str) -> float:
    """Poll ``condition``; return the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > deadline_s:
            pytest.fail(f"not within {deadline_s:.0f} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - started


class PredictLoad:
    """Posts /predict in a loop from a thread, counting answers by status (and transport errors)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: Counter[int | str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PredictLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    self.statuses[client.post(f"{self.url}/predict", json=BODY).status_code] += 1
                except httpx.TransportError as exc:
                    self.statuses[type(exc).__name__] += 1
                time.sleep(0.01)


@pytest.mark.parametrize("mode", ["blackhole", "refuse"])
def test_an_mlflow_outage_is_reported_within_seconds_and_predict_never_fails(
    world: World, service: ServiceProcess, mode: Literal["blackhole", "refuse"]
) -> None:
    """Cut MLflow: /ready reports it, /predict keeps answering 200, recovery follows the cut."""
    _until(lambda: _ready(service.url)["registry_error"] is None, 30, "registry followed")
    with PredictLoad(service.url) as load:
        world.proxy.cut(mode)
        try:
            detected = _until(
                lambda: _ready(service.url)["registry_error"] is not None, 30, "outage in /ready"
            )
            ready = httpx.get(f"{service.url}/ready", timeout=5)
            assert ready.status_code == 200  # the loaded champion keeps serving
            started = time.monotonic()
            reload = httpx.post(f"{service.url}/admin/reload", headers=AUTH, timeout=30)
            reload_s = time.monotonic() - started
            assert reload.status_code == 503
            assert httpx.get(f"{service.url}/health", timeout=5).json() == {"status": "ok"}
        finally:
            world.proxy.restore()
        recovered = _until(
            lambda: _ready(service.url)["registry_error"] is None, 60, "recovery in /ready"
        )
        time.sleep(0.5)  # a little traffic after recovery too
    FIGURES[f"mlflow_{mode}"] = {
        "ready_reports_outage_s": round(detected, 2),
        "admin_reload_answers_s": round(reload_s, 2),
        "ready_recovers_after_restore_s": round(recovered, 2),
        "predict_statuses": dict(load.statuses),
        "reconcile_interval_s": INTERVAL_S,
        "stale_after_s": INTERVAL_S * STALE_AFTER_POLLS,
        "mlflow_timeout_s": 2,
        "mlflow_retries": 1,
    }
    assert load.statuses[200] > 20
    assert set(load.statuses) == {200}, load.statuses


def _model(url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{url}/model", timeout=5).json()
    return body


def _refused(url: str, variant: str, version: int, reason: str) -> bool:
    return any(
        (r["variant"], r["version"], r["reason"]) == (variant, version, reason)
        for r in _model(url)["refusals"]
    )


def test_versions_moved_behind_the_platforms_back_are_refused(
    world: World, service: ServiceProcess
) -> None:
    """Raw MLflow writes, as anyone with MLflow access can make them, do not decide what serves."""
    client, name = world.client, world.registry.model_name
    try:
        # A rejected version made champion.
        client.set_model_version_tag(name, str(world.to_reject), "mlplat.status", "rejected")
        client.set_registered_model_alias(name, "champion", str(world.to_reject))
        _until(
            lambda: _refused(service.url, "champion", world.to_reject, "rejected"), 30,
            "rejected champion refused",
        )  # fmt: skip
        model = _model(service.url)
        assert model["champion"]["version"] == world.champion
        answer = httpx.post(f"{service.url}/predict", json=BODY, timeout=10).json()
        assert answer["predictions"][0]["model_version"] == world.champion

        # An ungated version as canary.
        client.set_registered_model_alias(name, "champion", str(world.champion))
        client.set_registered_model_alias(name, "challenger", str(world.ungated))
        client.set_registered_model_tag(name, "mlplat.canary_weight", "0.3")
        _until(
            lambda: _refused(service.url, "canary", world.ungated, "gate_not_passed"), 30,
            "ungated canary refused",
        )  # fmt: skip
        assert _model(service.url)["canary"] is None

        # A gated canary at 100%, past the cap.
        client.set_registered_model_alias(name, "challenger", str(world.gated))
        client.set_registered_model_tag(name, "mlplat.canary_weight", "1")
        _until(
            lambda: _refused(service.url, "canary", world.gated, "canary_weight_above_cap"), 60,
            "canary weight clamped",
        )  # fmt: skip
        model = _model(service.url)
        assert (model["canary"]["version"], model["canary_weight"]) == (world.gated, 0.5)
        (refusal,) = model["refusals"]
        assert "cap of 0.5" in refusal["detail"]

        metrics = httpx.get(f"{service.url}/metrics", timeout=5).text
        for variant, version, reason in (
            ("champion", world.to_reject, "rejected"),
            ("canary", world.ungated, "gate_not_passed"),
            ("canary", world.gated, "canary_weight_above_cap"),
        ):
            assert (
                f'mlplat_model_load_refusals_total{{model_version="{version}",reason="{reason}",'
                f'variant="{variant}"}} 1.0'
            ) in metrics
        assert "refusing the registry's champion version" in service.log.read_text()
    finally:
        client.delete_registered_model_alias(name, "challenger")
        client.set_registered_model_tag(name, "mlplat.canary_weight", "0")
        client.set_registered_model_alias(name, "champion", str(world.champion))
    _until(lambda: not _model(service.url)["refusals"], 30, "refusals cleared")


def _closed_within(sock: socket.socket, deadline_s: float) -> tuple[float, bytes]:
    """Seconds until the server closes ``sock``, and what it sent before."""
    started = time.monotonic()
    sock.settimeout(deadline_s)
    received = b""
    while True:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            pytest.fail(f"connection still open after {deadline_s} s")
        except ConnectionResetError:
            data = b""
        if not data:
            return time.monotonic() - started, received
        received += data


def test_silent_and_stalled_connections_are_cut_off(service: ServiceProcess) -> None:
    """Nothing sent, half the headers, half the body: each is closed (408 for the body)."""
    host, port = service.url.removeprefix("http://").split(":")
    address = (host, int(port))
    with socket.create_connection(address) as silent:
        silent_s, _ = _closed_within(silent, 10)
    with socket.create_connection(address) as half_headers:
        half_headers.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
        headers_s, _ = _closed_within(half_headers, 10)
    with socket.create_connection(address) as half_body:
        half_body.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"records": ['
        )
        body_s, answer = _closed_within(half_body, 10)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"did not arrive within 1 s" in answer
    FIGURES["slow_clients"] = {
        "silent_connection_closed_s": round(silent_s, 2),
        "half_headers_closed_s": round(headers_s, 2),
        "half_body_408_then_closed_s": round(body_s, 2),
        "header_timeout_s": 1,
        "body_timeout_s": 1,
    }
    assert max(silent_s, headers_s) < 5


def test_a_restart_while_mlflow_is_down_serves_the_cached_models(
    world: World, service: ServiceProcess, cache_dir: Path, tmp_path: Path
) -> None:
    """Restart with MLflow black-holed: /health at once, cached v1 serves, registry catches up."""
    assert (cache_dir / "deployment.json").exists()  # written by the module's service
    world.proxy.cut("blackhole")
    restarted = start_service(_service_env(world, tmp_path / "home", cache_dir), tmp_path / "log")
    try:
        health_s = restarted.wait_for("/health", 200, START_DEADLINE_S)
        ready_s = restarted.wait_for("/ready", 200, 30)
        ready = _ready(restarted.url)
        assert ready["deployment"]["from_cache"] is True
        assert ready["deployment"]["champion"]["version"] == world.champion
        _until(lambda: _ready(restarted.url)["registry_error"] is not None, 30, "outage reported")
        answer = httpx.post(f"{restarted.url}/predict", json=BODY, timeout=10)
        assert answer.status_code == 200
        assert answer.json()["predictions"][0]["model_version"] == world.champion
        world.proxy.restore()
        caught_up = _until(
            lambda: (
                (body := _ready(restarted.url))["registry_error"] is None
                and body["deployment"]["from_cache"] is False
            ),
            60,
            "following the registry again",
        )
    finally:
        world.proxy.restore()
        restarted.stop()
    FIGURES["restart_while_mlflow_down_with_cache"] = {
        "health_after_start_s": round(health_s, 2),
        "ready_after_start_s": round(ready_s, 2),
        "registry_followed_after_restore_s": round(caught_up, 2),
    }


def test_a_first_start_while_mlflow_is_down_is_not_ready_and_says_why(
    world: World, tmp_path: Path
) -> None:
    """No cache, MLflow refusing connections: /health answers, /ready is 503 with the reason."""
    world.proxy.cut("refuse")
    fresh = start_service(
        _service_env(world, tmp_path / "home", tmp_path / "empty-cache"), tmp_path / "log"
    )
    try:
        health_s = fresh.wait_for("/health", 200, START_DEADLINE_S)
        ready = httpx.get(f"{fresh.url}/ready", timeout=5)
        assert ready.status_code == 503
        assert ready.json()["reason"].startswith("no champion is loaded: registry ")
        world.proxy.restore()
        ready_s = _until(
            lambda: httpx.get(f"{fresh.url}/ready", timeout=5).status_code == 200, 60,
            "ready once MLflow is back",
        )  # fmt: skip
    finally:
        world.proxy.restore()
        fresh.stop()
    FIGURES["first_start_while_mlflow_down"] = {
        "health_after_start_s": round(health_s, 2),
        "ready_after_restore_s": round(ready_s, 2),
    }
