"""The real service (``python -m serving --workers 2``) against a real ``mlflow server``, over HTTP.

One service process group and one registered model are shared by the module (startup is the
expensive part); each test says which deployment state it needs and sets it in the registry.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from features import FEATURE_NAMES
from interfaces import metric_names as mn
from interfaces.routing import bucket
from pipeline.config import ModelConfig
from pipeline.data import generate
from pipeline.model_io import log_model
from pipeline.train import fit
from registry import ModelRegistry, RegistrySettings, ensure_experiment, open_registry
from serving.schemas import EXAMPLE_RECORD
from tests.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "integration-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
READY_DEADLINE_S = 180.0


@dataclass(frozen=True)
class Deployed:
    """The registered model the service follows."""

    registry: ModelRegistry
    good: tuple[int, int]
    broken: int
    env: dict[str, str]


@dataclass(frozen=True)
class Service:
    """A running service."""

    url: str
    deployed: Deployed
    log: Path


@pytest.fixture(scope="module")
def deployed(mlflow_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    """Two real skops models and one broken version, registered; version 1 is champion."""
    home = tmp_path_factory.mktemp("serving-it-home")
    name = f"credit-serving-{uuid.uuid4().hex[:8]}"
    settings = RegistrySettings(
        home=home, tracking_uri=mlflow_server_url, model_name=name, experiment_name=name
    )
    registry = open_registry(settings)
    client = MlflowClient(tracking_uri=mlflow_server_url, registry_uri=mlflow_server_url)
    experiment = ensure_experiment(client, name, None)
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(mlflow_server_url)
    mlflow.set_registry_uri(mlflow_server_url)
    try:
        versions = []
        for seed in (1, 2):
            frame = generate(2_000, seed)
            model = fit(frame, ModelConfig(max_iter=20, early_stopping=False))
            with mlflow.start_run(experiment_id=experiment) as run:
                uri = log_model(model, frame[list(FEATURE_NAMES)].head(5))
            lineage = {"data_digest": f"seed-{seed}", "gate_verdict": "passed"}
            versions.append(registry.register(uri, run.info.run_id, lineage, reason="it"))
        # A gated version whose run holds no model: loading it must fail.
        empty = client.create_run(experiment)
        broken = registry.register(
            f"runs:/{empty.info.run_id}/model", empty.info.run_id, {"gate_verdict": "passed"},
            reason="it: broken",
        )  # fmt: skip
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    registry.bootstrap(versions[0], reason="it: first champion")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLAT_", "MLFLOW_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        {
            "MLFLOW_TRACKING_URI": mlflow_server_url,
            "MLPLAT_HOME": str(home),
            "MLPLAT_MODEL_NAME": name,
            "MLPLAT_EXPERIMENT_NAME": name,
            "MLPLAT_SERVING_ENVIRONMENT": "production",
            "MLPLAT_SERVING_ADMIN_TOKEN": TOKEN,
            "MLPLAT_SERVING_RECONCILE_INTERVAL_SECONDS": "1",
            "MLPLAT_SERVING_INFERENCE_LOG_FLUSH_SECONDS": "0.1",
        }
    )
    return Deployed(registry, (versions[0], versions[1]), broken, env)


@pytest.fixture(scope="module")
def service(deployed: Deployed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """``python -m serving --workers 2`` on a free loopback port, ready."""
    port = free_port()
    log = tmp_path_factory.mktemp("serving-it-logs") / "service.log"
    command = [
        sys.executable, "-m", "serving",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=deployed.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_DEADLINE_S
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                pytest.fail(f"service exited with {process.returncode}:\n{_tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"service not ready in {READY_DEADLINE_S:.0f} s:\n{_tail(log)}")
            time.sleep(0.25)
        yield Service(url, deployed, log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def _body(customer: str | None = None, **changes: object) -> dict[str, object]:
    record = {**EXAMPLE_RECORD, **changes}
    if customer is not None:
        record["customer_id"] = customer
    return {"records": [record]}


def _fresh_predict(url: str, **kwargs: object) -> httpx.Response:
    """One request on a new connection, so the kernel may hand it to either worker."""
    with httpx.Client(timeout=10) as client:
        return client.post(f"{url}/predict", **kwargs)  # type: ignore[arg-type]


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(url: str) -> Samples:
    with httpx.Client(timeout=10) as client:
        text = client.get(f"{url}/metrics").text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _predictions(samples: Samples, variant: str, version: int) -> float:
    key = frozenset({("variant", variant), ("model_version", str(version))})
    return samples.get((mn.PREDICTIONS_TOTAL, key), 0.0)


def _until(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {deadline_s:.0f} s: {what}")
        time.sleep(0.1)


def _customer_in(low: float, high: float, salt: str) -> str:
    """A customer id whose routing bucket for canary ``salt`` lies in [low, high)."""
    for i in range(100_000):
        customer = f"probe-{i}"
        if low <= bucket(customer, salt) < high:
            return customer
    raise AssertionError("no probe customer found")


def _sticks_to(url: str, customer: str, variant: str, times: int = 12) -> bool:
    """``times`` fresh-connection answers in a row give ``customer`` the ``variant``."""
    for _ in range(times):
        response = _fresh_predict(url, json=_body(customer))
        if response.status_code != 200 or response.json()["predictions"][0]["variant"] != variant:
            return False
    return True


def test_probes_docs_and_a_prediction_over_http(service: Service) -> None:
    """Over HTTP: /health, /ready with the champion, /docs, and a prediction echoing its id."""
    v1, _ = service.deployed.good
    assert httpx.get(f"{service.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{service.url}/ready").json()
    assert ready["ready"] is True
    assert ready["deployment"]["champion"]["version"] == v1
    assert ready["deployment"]["champion"]["since"] is not None
    assert httpx.get(f"{service.url}/docs").status_code == 200
    answer = _fresh_predict(service.url, json=_body(), headers={"X-Request-ID": "it-probe-1"})
    assert answer.status_code == 200
    assert answer.json()["request_id"] == "it-probe-1"
    assert answer.json()["predictions"][0]["model_version"] in service.deployed.good


def test_the_champion_serves_through_the_compiled_path_its_registration_checked(
    service: Service,
) -> None:
    """The verdict logged with the model travels through MLflow's artifacts to /model."""
    champion = httpx.get(f"{service.url}/model").json()["champion"]
    assert champion["inference_path"] == "compiled"
    measured = r"max \|difference\| \S+ on \d+ rows \(tolerance 1e-09\)"
    assert re.fullmatch(
        f"checked on load: {measured}; registration: {measured}",
        champion["inference_path_reason"],
    )
    assert "on 5 rows" in champion["inference_path_reason"]  # the 5 logged example rows


def test_every_scrape_shows_the_totals_of_both_workers(service: Service) -> None:
    """With two workers, every /metrics scrape shows the prediction total of both."""

    def total(samples: Samples) -> float:
        return sum(v for (name, _), v in samples.items() if name == mn.PREDICTIONS_TOTAL)

    before = total(_scrape(service.url))
    for _ in range(30):
        assert _fresh_predict(service.url, json=_body()).status_code == 200
    # Each scrape lands on either worker; all must agree on the sum of both.
    assert {total(_scrape(service.url)) - before for _ in range(6)} == {30.0}


def test_feedback_joins_a_label_whichever_worker_logged_the_prediction(service: Service) -> None:
    """Feedback joins the prediction whichever worker logged it; a second label is a 409."""
    request_id = f"it-feedback-{uuid.uuid4().hex[:8]}"
    assert (
        _fresh_predict(service.url, json=_body(), headers={"X-Request-ID": request_id}).status_code
        == 200
    )
    answers: list[httpx.Response] = []

    def joined() -> bool:
        answers.append(
            httpx.post(f"{service.url}/feedback", json={"request_id": request_id, "label": 1})
        )
        return answers[-1].status_code != 404  # the other worker may not have flushed yet

    _until(joined, 15, "feedback joined to its prediction")
    assert answers[-1].status_code == 200, answers[-1].text
    assert answers[-1].json()["outcome"] in {"tp", "fn"}
    again = httpx.post(f"{service.url}/feedback", json={"request_id": request_id, "label": 1})
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("send", "status", "says"),
    [
        (lambda url: httpx.post(f"{url}/predict", content=b"{" + b" " * 2_000_000 + b"}",
                                headers={"content-type": "application/json"}),
         413, "larger than the limit"),
        (lambda url: httpx.post(f"{url}/predict", json=_body(age="x")), 422, "records[0].age"),
        (lambda url: httpx.post(f"{url}/predict", json={"records": [{"age": 40}]}),
         422, "Field required"),
        (lambda url: httpx.post(f"{url}/feedback", json={"request_id": "nobody", "label": 1}),
         404, "no prediction was logged"),
        (lambda url: httpx.post(f"{url}/admin/reload"), 401, "Authorization: Bearer"),
        (lambda url: httpx.post(f"{url}/admin/reload", headers={"Authorization": "Bearer nope"}),
         403, "not valid"),
    ],
    ids=["huge-body", "wrong-type", "missing-field", "unknown-request-id", "no-token", "bad-token"],
)  # fmt: skip
def test_bad_input_gets_the_documented_status_and_a_clear_message(
    service: Service, send: Callable[[str], httpx.Response], status: int, says: str
) -> None:
    """Bad input gets its documented status code and a message saying what is wrong."""
    response = send(service.url)
    assert response.status_code == status
    assert says in response.text


def test_steady_load_through_a_canary_change_and_a_reload_loses_nothing(
    service: Service, tmp_path: Path
) -> None:
    """30+ s of load from another process through a canary start, a weight change and a reload.

    No request may fail, and in each phase the canary's share of predictions in the metrics
    must match the weight.
    """
    registry = service.deployed.registry
    v1, v2 = service.deployed.good
    assert registry.state().champion == v1
    summary_path = tmp_path / "load.json"
    load = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.serving.loadgen", f"{service.url}/predict",
         "--seconds", "32", "--concurrency", "4", "--out", str(summary_path)],
        cwd=Path(__file__).resolve().parents[3],
    )  # fmt: skip
    try:
        splits = []
        for weight, low in ((0.2, 0.0), (0.5, 0.2)):
            if weight == 0.2:
                registry.start_canary(v2, weight, reason="it: canary")
            else:
                registry.set_canary_weight(weight, reason="it: ramp", expected_challenger=v2)
                reload = httpx.post(f"{service.url}/admin/reload", headers=AUTH, timeout=60)
                assert reload.status_code == 200
                assert reload.json()["deployment"]["canary_weight"] == weight
            # A customer newly inside the canary shows when every worker has converged.
            probe = _customer_in(low, weight, str(v2))

            def converged(probe: str = probe) -> bool:
                return _sticks_to(service.url, probe, "canary")

            _until(converged, 30, f"every worker serving the canary at weight {weight}")
            start = _scrape(service.url)

            def since_start(start: Samples = start) -> tuple[float, float]:
                now = _scrape(service.url)
                return (
                    _predictions(now, "canary", v2) - _predictions(start, "canary", v2),
                    _predictions(now, "champion", v1) - _predictions(start, "champion", v1),
                )

            _until(lambda: sum(since_start()) >= 400, 30, "400 predictions at this weight")
            splits.append((weight, *since_start()))
        load.wait(timeout=120)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    summary = json.loads(summary_path.read_text())
    assert summary["seconds"] >= 30
    assert summary["failures"] == {}
    assert summary["ok"] > 1_000
    for weight, canary, champion in splits:
        n = canary + champion
        share = canary / n
        # Customers are drawn at random: the share is binomial; allow four standard errors.
        assert abs(share - weight) < 4 * (weight * (1 - weight) / n) ** 0.5, (weight, canary, n)


def test_a_version_that_fails_to_load_leaves_the_service_serving(service: Service) -> None:
    """A canary that fails to load is reported in /ready and metrics; the champion keeps serving."""
    registry = service.deployed.registry
    broken = service.deployed.broken
    registry.start_canary(broken, 0.5, reason="it: broken canary")
    reload = httpx.post(f"{service.url}/admin/reload", headers=AUTH, timeout=60).json()
    assert reload["converged"] is False
    assert [(f["variant"], f["version"]) for f in reload["failures"]] == [("canary", broken)]
    for _ in range(20):
        answer = _fresh_predict(service.url, json=_body())
        assert answer.status_code == 200
        assert answer.json()["predictions"][0]["model_version"] != broken

    def both_workers_report_it() -> bool:
        ready = httpx.get(f"{service.url}/ready").json()
        return ready["ready"] and any(f["version"] == broken for f in ready["failures"])

    _until(lambda: all(both_workers_report_it() for _ in range(6)), 30, "failure in /ready")
    failures = _scrape(service.url)
    key = frozenset({("variant", "canary"), ("model_version", str(broken))})
    assert failures[(mn.MODEL_LOAD_FAILURES_TOTAL, key)] >= 1
    assert failures[(mn.MODEL_LOAD_FAILING, frozenset({("variant", "canary")}))] == 1
