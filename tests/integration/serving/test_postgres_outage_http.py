"""The real service with its PostgreSQL databases reached through a proxy the test cuts mid-run.

The service writes every prediction to the inference log and reads the "since" times of its
models from the deployment-event log (``MLPLAT_EVENTS_URL``); here both live on PostgreSQL and
the service reaches them only through :class:`TcpProxy`. MLflow is reached directly: only the
databases go down. While ``/predict`` traffic runs, the proxy is cut (black-holed, then
refusing) for a few seconds and restored.

What this pins:

* ``/predict`` never answers 5xx, and ``/ready`` stays 200 with no registry error: the
  inference log is written off the request path by design and the event log is read best
  effort, so neither outage may take a serving process out of rotation. Readiness answers "can
  this process score a request?"; a shared database going down would otherwise pull every
  replica at once, turning a lost-telemetry incident into a full outage. The outage is reported
  where telemetry belongs: ``mlplat_inference_log_write_failures_total`` rises within seconds
  (measured here as the time to report) and the service logs the failed writes.
  Black-holed or refusing, the event database never makes ``/ready`` report a registry error
  (MLflow answers all along): the registry reads the "since" times with a short timeout and
  then leaves the event log alone for a while (:mod:`registry.since`), so every poll still
  finishes within the stale limit; the outage is logged once, not on every poll.
* ``/model`` keeps naming the champion and the time it took the role.
* After the restore, logging resumes by itself: the first row written after the restore is
  measured (time to recover), and every request answered after that is in the table within a
  deadline. The batches lost meanwhile are counted in the write-failure metric, and every
  record they held in ``mlplat_inference_log_dropped_total`` (as a full buffer's are), so no
  answered request goes missing from the table uncounted.

The figures are written to ``postgres-outage-figures.json`` in the test's temporary directory,
printed, and repeated in the assertion messages; deadlines are generous (timing goals live in
benchmarks, not tests).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import httpx
import mlflow
import pytest
import sqlalchemy as sa
from mlflow import MlflowClient

from features import FEATURE_NAMES
from interfaces.metric_names import INFERENCE_LOG_DROPPED_TOTAL, INFERENCE_LOG_WRITE_FAILURES_TOTAL
from pipeline.config import ModelConfig
from pipeline.data import generate
from pipeline.model_io import log_model
from pipeline.train import fit
from registry import RegistrySettings, ensure_experiment, open_registry
from serving.schemas import EXAMPLE_RECORD
from tests.integration.conftest import PostgresDatabaseFactory
from tests.integration.serving.process import ServiceProcess, start_service
from tests.integration.serving.tcpproxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BODY = {"records": [EXAMPLE_RECORD]}
CUT_S = 6.0  # longer than the 5 s connect timeout a black-holed write waits
START_DEADLINE_S = 120.0
FIGURES: dict[str, Any] = {}


@dataclass(frozen=True)
class World:
    """A champion whose service reaches its PostgreSQL databases through a cuttable proxy.

    Attributes:
        proxy: What the service uses to reach PostgreSQL.
        log_url: The inference log, reached directly (the test's view of the table).
        champion: The champion's version.
        service: The running service.
    """

    proxy: TcpProxy
    log_url: str
    champion: int
    service: ServiceProcess


def _through(proxy: TcpProxy, url: str) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parsed = sa.engine.make_url(url).set(host="127.0.0.1", port=proxy.port)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def world(
    mlflow_server_url: str,
    postgres_database: PostgresDatabaseFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    """One gated champion, its events on PostgreSQL, a service logging to PostgreSQL by proxy."""
    home = tmp_path_factory.mktemp("pg-outage-writer")
    events_url, log_url = postgres_database(), postgres_database()
    name = f"credit-pg-outage-{uuid.uuid4().hex[:8]}"
    settings = RegistrySettings(
        home=home, tracking_uri=mlflow_server_url, events_url=events_url, model_name=name,
        experiment_name=name,
    )  # fmt: skip
    registry = open_registry(settings)
    client = MlflowClient(tracking_uri=mlflow_server_url, registry_uri=mlflow_server_url)
    experiment = ensure_experiment(client, name, None)
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(mlflow_server_url)
    mlflow.set_registry_uri(mlflow_server_url)
    try:
        frame = generate(1_500, 1)
        model = fit(frame, ModelConfig(max_iter=10, early_stopping=False))
        with mlflow.start_run(experiment_id=experiment) as run:
            uri = log_model(model, frame[list(FEATURE_NAMES)].head(5))
        version = registry.register(uri, run.info.run_id, {"gate_verdict": "passed"}, reason="it")
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    registry.bootstrap(version, reason="it: first champion")

    target = sa.engine.make_url(log_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLAT_", "MLFLOW_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    service_home = tmp_path_factory.mktemp("pg-outage-service")
    env.update(
        {
            "MLFLOW_TRACKING_URI": mlflow_server_url,
            "MLPLAT_HOME": str(service_home),
            "MLPLAT_MODEL_NAME": name,
            "MLPLAT_EXPERIMENT_NAME": name,
            "MLPLAT_EVENTS_URL": _through(proxy, events_url),
            "MLPLAT_SERVING_INFERENCE_LOG_URL": _through(proxy, log_url),
            "MLPLAT_SERVING_INFERENCE_LOG_FLUSH_SECONDS": "0.1",
            "MLPLAT_SERVING_ENVIRONMENT": "production",
            "MLPLAT_SERVING_ADMIN_TOKEN": "integration-admin-token-0123456789abcdef",
            "MLPLAT_SERVING_RECONCILE_INTERVAL_SECONDS": "1",
            "MLPLAT_SERVING_MLFLOW_TIMEOUT_SECONDS": "2",
            "MLPLAT_SERVING_MLFLOW_MAX_RETRIES": "1",
            "MLPLAT_SERVING_MLFLOW_BACKOFF_FACTOR": "0",
        }
    )
    service = start_service(env, service_home / "service.log")
    try:
        service.wait_for("/ready", 200, START_DEADLINE_S)
        yield World(proxy, log_url, version, service)
    finally:
        service.stop()
        proxy.close()


@pytest.fixture(scope="module", autouse=True)
def figures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Collects the measured times; written and printed when the module ends."""
    yield FIGURES
    path = tmp_path_factory.mktemp("figures") / "postgres-outage-figures.json"
    path.write_text(json.dumps(FIGURES, indent=2))
    print(f"\npostgres outage figures ({path}):\n{json.dumps(FIGURES, indent=2)}")


@dataclass
class Answer:
    """One /predict call: its request id, status, and when it was sent and answered."""

    request_id: str
    status: int | str
    sent: float
    answered: float


@dataclass
class PredictLoad:
    """Posts /predict in a loop from a thread with its own request ids, keeping every answer."""

    url: str
    tag: str
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PredictLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    @property
    def statuses(self) -> Counter[int | str]:
        return Counter(a.status for a in list(self.answers))

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            for n in range(1_000_000):
                if self._stop.is_set():
                    return
                request_id = f"{self.tag}-{n}"
                sent = time.time()
                try:
                    status: int | str = client.post(
                        f"{self.url}/predict", json=BODY, headers={"X-Request-ID": request_id}
                    ).status_code
                except httpx.TransportError as exc:
                    status = type(exc).__name__
                self.answers.append(Answer(request_id, status, sent, time.time()))
                time.sleep(0.01)


def _until(condition: Callable[[], bool], deadline_s: float, what: str) -> float:
    """Poll ``condition``; return the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > deadline_s:
            pytest.fail(f"not within {deadline_s:.0f} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def _metric(url: str, name: str) -> float:
    """The value of an unlabelled counter in the service's /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    found = re.search(rf"^{name}_total (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _poll_age(ready: dict[str, Any]) -> float:
    """Seconds since the registry poll that ``/ready`` last saw succeed (inf if none did)."""
    last = ready["last_registry_success_at"]
    if last is None:
        return float("inf")
    return time.time() - datetime.fromisoformat(last).timestamp()


def _event_log_warnings(service: ServiceProcess) -> int:
    """How many times the service has warned that the deployment-event log is unreachable."""
    return service.log.read_text().count("event log unreachable")


def _logged(engine: sa.Engine, prefix: str) -> dict[str, float]:
    """Request ids starting with ``prefix`` that are in the inference log, with their ``ts``."""
    query = sa.text("SELECT request_id, ts FROM inference_log WHERE request_id LIKE :p")
    with engine.connect() as conn:
        return {r.request_id: r.ts for r in conn.execute(query, {"p": f"{prefix}-%"})}


@pytest.mark.parametrize("mode", ["blackhole", "refuse"])
def test_a_postgres_cut_mid_run_loses_log_rows_but_no_request_and_logging_resumes(
    world: World, mode: Literal["blackhole", "refuse"]
) -> None:
    """Cut PostgreSQL for a few seconds under load: /predict stays 200, the log catches up."""
    url = world.service.url
    failures_metric = INFERENCE_LOG_WRITE_FAILURES_TOTAL.removesuffix("_total")
    dropped_metric = INFERENCE_LOG_DROPPED_TOTAL.removesuffix("_total")
    engine = sa.create_engine(world.log_url)
    tag = f"{mode}-{uuid.uuid4().hex[:6]}"
    warnings_before = _event_log_warnings(world.service)
    model_before = httpx.get(f"{url}/model", timeout=5).json()
    try:
        with PredictLoad(url, tag) as load:
            _until(lambda: len(_logged(engine, tag)) > 5, 30, "rows logged before the cut")
            failures_before = _metric(url, failures_metric)
            dropped_before = _metric(url, dropped_metric)
            world.proxy.cut(mode)
            cut_at = time.time()
            reported: float | None = None
            ready_seen: Counter[tuple[int, str | None]] = Counter()
            poll_age_max = 0.0
            try:
                while (elapsed := time.time() - cut_at) < CUT_S:
                    if reported is None and _metric(url, failures_metric) > failures_before:
                        reported = elapsed
                    ready = httpx.get(f"{url}/ready", timeout=5)
                    ready_seen[(ready.status_code, ready.json()["registry_error"])] += 1
                    poll_age_max = max(poll_age_max, _poll_age(ready.json()))
                    model = httpx.get(f"{url}/model", timeout=5).json()
                    assert model["champion"] == model_before["champion"], model
                    time.sleep(0.1)
            finally:
                world.proxy.restore()
            restored_at = time.time()
            first_row_s = _until(
                lambda: any(ts >= restored_at for ts in _logged(engine, tag).values()), 30,
                "a row logged after the restore",
            )  # fmt: skip
            resumed_at = time.time()
            time.sleep(0.5)  # traffic after recovery, whose rows must all arrive
        after = [a for a in load.answers if a.sent >= resumed_at and a.status == 200]
        caught_up = _until(
            lambda: {a.request_id for a in after} <= set(_logged(engine, tag)), 15,
            "every request answered after recovery in the log",
        )  # fmt: skip
        logged = _logged(engine, tag)
    finally:
        engine.dispose()
    during = [a for a in load.answers if cut_at <= a.sent < restored_at]
    write_failures = _metric(url, failures_metric) - failures_before
    dropped = _metric(url, dropped_metric) - dropped_before
    event_log_warnings = _event_log_warnings(world.service) - warnings_before
    answered_200 = [a for a in load.answers if a.status == 200]
    lost = sum(a.request_id not in logged for a in answered_200)
    figures = {
        "cut_s": round(restored_at - cut_at, 2),
        "write_failure_metric_reports_s": None if reported is None else round(reported, 2),
        "first_row_after_restore_s": round(first_row_s, 2),
        "rows_after_recovery_all_logged_within_s": round(caught_up, 2),
        "predict_statuses": dict(load.statuses),
        "requests_during_cut": len(during),
        "requests_during_cut_logged": sum(a.request_id in logged for a in during),
        "requests_answered_200_not_logged": lost,
        "write_failures_metric": write_failures,
        "dropped_records_metric": dropped,
        "ready_during_cut": {f"{status} {error}": n for (status, error), n in ready_seen.items()},
        "registry_poll_age_max_s": round(poll_age_max, 2),
        "event_log_warnings": event_log_warnings,
    }
    FIGURES[f"postgres_{mode}"] = figures
    assert set(load.statuses) == {200}, figures
    assert {status for status, _ in ready_seen} == {200}, figures
    assert reported is not None, figures
    assert len(during) > 20, figures
    assert len(after) > 10, figures
    # Every record lost in a failed batch is counted as dropped (one record per request here;
    # a batch whose commit reached the server just as the cut fell may count without loss).
    assert dropped >= lost, figures
    assert write_failures >= 1, figures
    assert "inference log: failed to write" in world.service.log.read_text(), figures
    # MLflow answered all along: the event database's outage is not a registry outage.
    assert not {error for _, error in ready_seen if error is not None}, figures
    # One outage, at most one warning (the first failed read), not one per poll.
    assert event_log_warnings <= 1, figures
