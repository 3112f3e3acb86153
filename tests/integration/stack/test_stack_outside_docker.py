"""Every compose service's command, run outside Docker, brings the stack up and does its job.

There is no Docker engine here, so the stack is started the way the containers would start it:
each service's entrypoint and command, its environment and its healthcheck, exactly as
``docker-compose config`` resolves them, with the service hostnames pointed at loopback ports,
the PostgreSQL databases created fresh on the machine's server (by the same init script), and
container paths mapped to folders of the test (:mod:`tests.integration.stack.outside`). The
Prometheus and Alertmanager configurations the containers mount are rendered for loopback with
the renderers of :mod:`monitoring` (one-second intervals). Grafana is not packaged for Debian; its
provisioning is checked in ``test_compose_file.py`` instead.

The stack comes up in dependency order, each service waited for by its own healthcheck (MLflow
with its basic-auth app, every component logging in as its own user: the users are made by the
``mlflow-users`` one-shot; what each may do is pinned by ``test_mlflow_auth.py``); then:
the trainer has registered a champion in MLflow on PostgreSQL, a second trainer run is a no-op,
the service answers, Prometheus scrapes it, Alertmanager delivers to the controller and the relay,
the ``make bad-canary`` job ships a canary the service serves and the controller judges, and the
traffic generator's requests and delayed labels arrive.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from monitoring.alertmanager import render_alertmanager_config
from monitoring.prometheus import render_prometheus_config
from tests.conftest import require_tool
from tests.integration.conftest import PostgresDatabaseFactory
from tests.integration.stack.compose import (
    Service,
    filled_env_file,
    resolved_services,
)
from tests.integration.stack.outside import (
    IMAGE_BINARIES,
    Loopback,
    Stack,
    container_paths,
    container_port,
    fresh_databases,
    image_name,
    poll,
)
from tests.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL_NAME = "credit-default"
NOT_RUN_HERE = {"grafana"}
"""Services with no Debian package: their provisioning is checked statically instead."""
START_DEADLINES_S = {"mlflow": 120.0, "mlflow-users": 120.0, "trainer": 300.0, "serving": 120.0}
DEFAULT_DEADLINE_S = 60.0
RENDERED_MOUNTS = {"prometheus": "/etc/prometheus", "alertmanager": "/etc/alertmanager"}


@dataclass
class RunningStack:
    """The stack as the tests see it."""

    stack: Stack
    services: dict[str, Service]
    urls: dict[str, str]
    databases: dict[str, str]
    seconds_to_healthy: dict[str, float] = field(default_factory=dict)
    trainer_output: str = ""
    alerts_posted_at: datetime | None = None

    def get(self, service: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.urls[service]}{path}", timeout=10.0, **kwargs)

    def promql(self, query: str) -> list[dict[str, Any]]:
        response = self.get("prometheus", "/api/v1/query", params={"query": query})
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result


def _last_json(text: str) -> dict[str, Any]:
    """The JSON summary a ``--json`` command printed last (MLflow prints to stdout too)."""
    decoder = json.JSONDecoder()
    for match in reversed(list(re.finditer(r"(?m)^\{", text))):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise AssertionError(f"no JSON object in the output:\n{text[-2000:]}")


def _start_order(services: dict[str, Service]) -> list[str]:
    order: list[str] = []
    pending = {n: s for n, s in services.items() if not s.profiles and n not in NOT_RUN_HERE}
    while pending:
        ready = sorted(n for n, s in pending.items() if set(s.depends_on) <= set(order))
        assert ready, f"dependency cycle among {sorted(pending)}"
        # One at a time, in the order compose would be allowed to start them.
        order.append(ready[0])
        del pending[ready[0]]
    return order


def _render_configs(root: Path, ports: dict[str, int], token_file: Path) -> dict[str, Path]:
    prometheus = root / "rendered" / "prometheus"
    alertmanager = root / "rendered" / "alertmanager"
    prometheus.mkdir(parents=True)
    alertmanager.mkdir(parents=True)
    (prometheus / "prometheus.yml").write_text(
        render_prometheus_config(
            [f"127.0.0.1:{ports['serving']}"],
            [f"127.0.0.1:{ports['controller']}"],
            [f"127.0.0.1:{ports['alertmanager']}"],
            scrape_interval="1s",
            evaluation_interval="1s",
        )
    )
    (alertmanager / "alertmanager.yml").write_text(
        render_alertmanager_config(
            f"http://127.0.0.1:{ports['controller']}/alertmanager/webhook",
            token_file,
            oncall_webhook_url=f"http://127.0.0.1:{ports['alert-relay']}/notify",
            group_wait="1s",
        )
    )
    return {"prometheus": prometheus, "alertmanager": alertmanager}


def _post_alerts(running: RunningStack) -> None:
    """One canary alert (for the controller) and one ticket (for people) into Alertmanager.

    Posted before any canary exists, and about a version that does not exist, so the controller
    acknowledges the canary alert without rolling anything back.
    """
    now = datetime.now(UTC)
    alerts = [
        {
            "labels": {
                "alertname": "StackTestCanaryAlert", "component": "canary",
                "signal": "error_rate", "severity": "page", "model_version": "999",
                "job": "mlplat-serving",
            },
            "annotations": {"summary": "posted by the stack test"},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=10)).isoformat(),
        },
        {
            "labels": {"alertname": "StackTestTicket", "severity": "ticket", "job": "stack-test"},
            "annotations": {"summary": "posted by the stack test"},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=10)).isoformat(),
        },
    ]  # fmt: skip
    response = httpx.post(f"{running.urls['alertmanager']}/api/v2/alerts", json=alerts, timeout=10)
    response.raise_for_status()
    running.alerts_posted_at = now


@contextmanager
def bring_up(
    compose: str, root: Path, create_database: PostgresDatabaseFactory
) -> Iterator[RunningStack]:
    """Start the stack's services in dependency order, each waited for by its healthcheck.

    Args:
        compose: The docker-compose program (it resolves the file).
        root: An empty folder for configs, volumes, logs and homes.
        create_database: Makes a fresh PostgreSQL database and returns its URL.
    """
    binaries = {
        image: {path: require_tool(program) for path, program in mapping.items()}
        for image, mapping in IMAGE_BINARIES.items()
    }
    services = resolved_services(compose, filled_env_file(root / "test.env"))
    databases = fresh_databases(services, create_database)
    server_port = sa.engine.make_url(next(iter(databases.values()))).port or 5432
    ports = {
        name: server_port if name == "postgres" else free_port()
        for name, service in services.items()
        if container_port(service) is not None
    }
    token_file = root / "tmpfs" / "alertmanager" / "run/secrets/controller_webhook_token"
    rendered = _render_configs(root, ports, token_file)
    loopback = Loopback(
        services,
        ports,
        databases,
        container_paths(
            services,
            root,
            {name: {RENDERED_MOUNTS[name]: folder} for name, folder in rendered.items()},
        ),
        {n: binaries.get(image_name(s.image), {}) for n, s in services.items()},
    )
    stack = Stack(loopback, root)
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    running = RunningStack(stack, services, urls, databases)
    try:
        for name in _start_order(services):
            service = services[name]
            deadline = START_DEADLINES_S.get(name, DEFAULT_DEADLINE_S)
            started = time.monotonic()
            if name == "postgres":  # the machine's server stands in for the container
                stack.wait_healthy(name, deadline)
            elif service.one_shot:
                stack.start(name)
                status = stack.wait_exit(name, deadline)
                assert status == 0, f"{name} exited with {status}:\n{stack.tail(name)}"
                stack.processes.pop(name)
            else:
                stack.start(name)
                stack.wait_healthy(name, deadline)
            running.seconds_to_healthy[name] = round(time.monotonic() - started, 1)
            if name == "alertmanager":
                _post_alerts(running)
        running.trainer_output = stack.log("trainer").read_text()
        yield running
    finally:
        stack.stop_all()


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, postgres_database: PostgresDatabaseFactory
) -> Iterator[RunningStack]:
    """The compose stack, started service by service outside Docker; stopped at the end."""
    compose = require_tool("docker-compose")
    for tool in ("pg_isready", "wget"):
        require_tool(tool)
    with bring_up(compose, tmp_path_factory.mktemp("stack"), postgres_database) as stack:
        yield stack


def test_each_service_passed_its_own_healthcheck_in_dependency_order(
    running: RunningStack,
) -> None:
    """Every runnable service came up; the one-shot trainer finished before the service."""
    expected = {n for n, s in running.services.items() if not s.profiles} - NOT_RUN_HERE
    assert set(running.seconds_to_healthy) == expected
    order = list(running.seconds_to_healthy)
    assert order.index("trainer") < order.index("serving") < order.index("controller")
    print(f"seconds to healthy: {running.seconds_to_healthy}")


def test_trainer_registers_a_champion_in_mlflow_backed_by_postgresql(
    running: RunningStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The champion alias is set on the server, and the rows live in the PostgreSQL database."""
    from mlflow import MlflowClient

    # The server wants a user: read as the service does.
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(key, running.services["serving"].environment[key])
    summary = _last_json(running.trainer_output)
    assert summary["ran"] is True
    assert summary["alias"] == "champion"
    client = MlflowClient(tracking_uri=running.urls["mlflow"], registry_uri=running.urls["mlflow"])
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert int(champion.version) == summary["model_version"]
    engine = sa.create_engine(running.databases["mlflow"])
    try:
        with engine.connect() as conn:
            names = conn.execute(sa.text("select name from registered_models")).scalars().all()
            aliases = conn.execute(sa.text("select alias from registered_model_aliases")).all()
    finally:
        engine.dispose()
    assert names == [MODEL_NAME]
    assert ("champion",) in aliases


def test_a_second_trainer_run_is_a_no_op_so_a_second_up_succeeds(running: RunningStack) -> None:
    """The one-shot's command again, unchanged data: nothing is trained, exit status 0."""
    process = running.stack.start("trainer")
    assert running.stack.wait_exit("trainer", 120) == 0
    running.stack.processes.pop("trainer")
    output = running.stack.log("trainer").read_text()[len(running.trainer_output) :]
    summary = _last_json(output)
    assert summary["ran"] is False
    assert process.returncode == 0


def _record(seed: int) -> dict[str, Any]:
    from features import ENTITY_ID, FEATURE_NAMES
    from pipeline import generate

    row = generate(1, seed).iloc[0]
    record = {}
    for column in (ENTITY_ID, *FEATURE_NAMES):
        value = row[column]
        value = value.item() if hasattr(value, "item") else value
        record[column] = None if isinstance(value, float) and math.isnan(value) else value
    return record


def test_the_service_answers_predict_with_the_champion(running: RunningStack) -> None:
    """``POST /predict`` scores a record with the registered champion."""
    response = httpx.post(
        f"{running.urls['serving']}/predict", json={"records": [_record(5)]}, timeout=10
    )
    assert response.status_code == 200, response.text
    [prediction] = response.json()["predictions"]
    assert prediction["variant"] == "champion"
    assert 0.0 <= prediction["probability"] <= 1.0


def test_prometheus_scrapes_the_service_and_the_controller(running: RunningStack) -> None:
    """``up == 1`` for both jobs, through Prometheus's HTTP API."""
    for job in ("mlplat-serving", "mlplat-controller"):
        query = f'up{{job="{job}"}} == 1'
        poll(query, partial(running.promql, query), deadline_s=30)


def test_alertmanager_delivers_canary_alerts_to_the_controller_and_others_to_the_relay(
    running: RunningStack,
) -> None:
    """The controller takes the bearer token from the file the entrypoint wrote; the relay logs."""

    def accepted() -> bool:
        metrics = running.get("controller", "/metrics").text
        match = re.search(
            r'^mlplat_controller_webhook_requests_total\{outcome="accepted"\} (\S+)', metrics, re.M
        )
        return match is not None and float(match.group(1)) >= 1

    poll("the controller accepted an Alertmanager notification", accepted, deadline_s=30)

    def relayed() -> list[dict[str, Any]]:
        return [
            n
            for n in running.get("alert-relay", "/notifications").json()
            if any(a["labels"]["alertname"] == "StackTestTicket" for a in n["alerts"])
        ]

    # The people's route waits its group_wait (30 s, as shipped) before the first delivery.
    poll("the relay received the ticket", relayed, deadline_s=60)
    assert "StackTestTicket" in running.stack.tail("alert-relay")


def _canary_seen(running: RunningStack, process_alive: Callable[[], bool]) -> dict[str, Any]:
    """Poll the controller's /status until it reports a live canary; return that report."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert process_alive(), f"bad-canary exited early:\n{running.stack.tail('bad-canary')}"
        response = running.get("controller", "/status")
        if response.status_code == 200:
            report: dict[str, Any] = response.json()
            deployment = report.get("deployment") or {}
            canary = report.get("canary") or {}
            if deployment.get("challenger") and canary.get("version") == deployment["challenger"]:
                return report
        time.sleep(1)
    raise AssertionError(f"the controller never saw a canary:\n{running.stack.tail('bad-canary')}")


def test_the_controller_judges_the_canary_make_bad_canary_ships(running: RunningStack) -> None:
    """The demo job trains a gate-passing candidate and ships it; service and controller see it."""
    process = running.stack.start("bad-canary")
    try:
        report = _canary_seen(running, lambda: process.poll() is None)
        version = report["canary"]["version"]
        assert report["deployment"]["canary_weight"] == pytest.approx(0.5)
        assert report["canary"]["state"] == "observing"
        poll(
            "the service serves the canary",
            lambda: running.get("serving", "/model").json()["canary"]["version"] == version,
            deadline_s=30,
        )
        poll(
            "Prometheus sees the controller observing the canary",
            lambda: running.promql(
                f'mlplat_canary_state{{model_version="{version}",state="observing"}} == 1'
            ),
            deadline_s=30,
        )
        log = running.stack.tail("bad-canary", 200)
        assert f"registered version {version} as challenger" in log
        assert "mlplat deploy canary --version" in log
    finally:
        running.stack.stop("bad-canary")


def test_traffic_flows_with_delayed_labels_into_the_inference_log(running: RunningStack) -> None:
    """Requests reach both variants, labels arrive late, and the log in PostgreSQL fills up."""

    def by_variant() -> dict[str, float]:
        rows = running.promql("sum by (variant) (mlplat_predictions_total)")
        return {r["metric"].get("variant", ""): float(r["value"][1]) for r in rows}

    poll("predictions of both variants", lambda: {"champion", "canary"} <= set(by_variant()), 30)
    poll(
        "labels arrived through POST /feedback",
        lambda: running.promql("sum(mlplat_feedback_total) > 0"),
        deadline_s=60,
    )
    engine = sa.create_engine(running.databases["inference"])
    try:
        with engine.connect() as conn:
            logged = conn.execute(sa.text("select count(*) from inference_log")).scalar_one()
    finally:
        engine.dispose()
    assert logged > 0
