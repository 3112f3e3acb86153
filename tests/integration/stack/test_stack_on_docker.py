"""``make up`` on a real Docker engine: the README's stack, checked the way a user would check it.

A copy of the repository (:func:`tests.integration.stack.project.snapshot`) gets a filled-in
``.env``; the project image is built from the real Dockerfile (``docker-compose build``, with
``GIT_COMMIT`` and, behind a TLS-intercepting proxy, ``EXTRA_CA_CERT``), and ``make up`` starts
the real ``docker-compose.yml``. The registry images are Debian-built stand-ins tagged as the
compose file names them (``standins/README.md``), and ``no-grafana.yml`` leaves Grafana out: the
only override. Then, in order: every service healthy; MLflow's champion and its artifacts;
``/predict`` with the OpenAPI example; Prometheus targets and rules; Alertmanager routing both
ways and the relay; the MLflow drill; ``make bad-canary`` to its rollback; the Prometheus drill
with a canary live; every Grafana dashboard query against the live Prometheus; restarts of the
services with a tmpfs; ``make down`` and ``make up`` on the kept volumes; ``down -v``.

Everything the commands print goes to ``test-artifacts/stack/`` (with ``timings.json``); when a
test fails, every service's log and ``ps`` are kept there too, for CI to upload.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import require_tool
from tests.integration.stack.compose import (
    REPO,
    Service,
    filled_env_file,
    resolved_services,
)
from tests.integration.stack.engine import docker_engine
from tests.integration.stack.outside import poll
from tests.integration.stack.project import (
    Project,
    extra_ca_pem,
    git_commit,
    only_run,
    snapshot,
)
from tests.integration.stack.standins import ensure_standins, python_base_image
from tests.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

ARTIFACTS = REPO / "test-artifacts" / "stack"
PROJECT_NAME = "mlplat-stack-test"
"""Its own compose project: containers, volumes and the network never touch a user's stack."""
IMAGE = "mlplat:0.1.0"
MODEL_NAME = "credit-default"
LEFT_OUT = {"grafana"}
PORT_VARIABLES = {
    "mlflow": "MLFLOW_PORT",
    "serving": "SERVING_PORT",
    "controller": "CONTROLLER_PORT",
    "prometheus": "PROMETHEUS_PORT",
    "alertmanager": "ALERTMANAGER_PORT",
    "alert-relay": "ALERT_RELAY_PORT",
    "grafana": "GRAFANA_PORT",
}
"""Each published port moves to a free one through ``.env``, as the README allows."""
HEALTHY_DEADLINE_S = 360.0
BUILD_TIMEOUT_S = 1500.0
BAD_CANARY_TIMEOUT_S = 1500.0
GRAFANA_RATE_INTERVAL = "1m"
"""What Grafana makes ``$__rate_interval`` at a 15 s scrape interval: four scrapes."""
RANGE_STEP_S = 15


@dataclass
class Live:
    """The running stack as the tests see it."""

    project: Project
    services: dict[str, Service]
    urls: dict[str, str]
    env: dict[str, str]
    commit: str
    started_at: float
    timings: dict[str, float] = field(default_factory=dict)
    failures_before: int = 0
    session: Any = None
    rejected: list[int] = field(default_factory=list)
    demo: subprocess.Popen[bytes] | None = None
    demo_started: float = 0.0

    def get(self, service: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.urls[service]}{path}", timeout=15.0, **kwargs)

    def status(self) -> dict[str, Any]:
        """The controller's last cycle report."""
        response = self.get("controller", "/status")
        response.raise_for_status()
        report: dict[str, Any] = response.json()
        return report

    def promql(self, query: str, **params: Any) -> dict[str, Any]:
        """One instant query; the whole answer (status, data, warnings)."""
        response = self.get("prometheus", "/api/v1/query", params={"query": query, **params})
        answer: dict[str, Any] = response.json()
        return answer

    def controller_metric(self, name: str, labels: str) -> float | None:
        """A sample of the controller's own ``/metrics`` (readable while Prometheus is down)."""
        pattern = rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$"
        match = re.search(pattern, self.get("controller", "/metrics").text, re.M)
        return float(match.group(1)) if match else None

    def mlflow_as(self, user: str, monkeypatch: pytest.MonkeyPatch) -> Any:
        """An MLflow client logged in as one of the stack's users."""
        from mlflow import MlflowClient

        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", self.env[f"MLFLOW_{user.upper()}_PASSWORD"])
        return MlflowClient(tracking_uri=self.urls["mlflow"], registry_uri=self.urls["mlflow"])

    def keep_logs_if_failed(self) -> None:
        """Keep every service's log in the artifacts folder if a test of this module failed."""
        if self.session is not None and self.session.testsfailed > self.failures_before:
            self.project.keep_service_logs()

    def timed(self, what: str, since: float) -> float:
        self.timings[what] = round(time.monotonic() - since, 1)
        return self.timings[what]


def _running(services: dict[str, Service]) -> dict[str, Service]:
    """The services ``up`` starts: no profile, not left out."""
    return {n: s for n, s in services.items() if not s.profiles and n not in LEFT_OUT}


def _unhealthy(live: Live) -> dict[str, str]:
    """Services not (yet) healthy, or one-shots not exited 0, with their state."""
    containers = live.project.containers()
    waiting = {}
    for name, service in _running(live.services).items():
        state = (containers.get(name) or {}).get("State") or {}
        if service.one_shot:
            done = state.get("Status") == "exited" and state.get("ExitCode") == 0
            now = f"{state.get('Status')} ({state.get('ExitCode')})"
        else:
            now = (state.get("Health") or {}).get("Status", str(state.get("Status")))
            done = now == "healthy"
        if not done:
            waiting[name] = now
    return waiting


def _wait_healthy(live: Live, deadline_s: float = HEALTHY_DEADLINE_S) -> None:
    started = time.monotonic()
    while (waiting := _unhealthy(live)) and time.monotonic() - started < deadline_s:
        failed = {n: s for n, s in waiting.items() if s.startswith("exited") or s == "unhealthy"}
        assert not failed, f"services failed: {failed}"
        time.sleep(2)
    assert not waiting, f"not healthy after {deadline_s:.0f} s: {waiting}"


def _registry_images(services: dict[str, Service]) -> dict[str, str]:
    """The images the stack pulls (and the Dockerfile's base), by service."""
    images = {n: s.image for n, s in _running(services).items() if not s.built}
    images["Dockerfile: PYTHON_IMAGE"] = python_base_image()
    return images


def _write_timings(live_timings: dict[str, float], outcomes: list[Any]) -> None:
    payload = {
        "seconds": live_timings,
        "images": [{"tag": o.tag, "action": o.action, "seconds": round(o.seconds, 1)}
                   for o in outcomes],
    }  # fmt: skip
    (ARTIFACTS / "timings.json").write_text(json.dumps(payload, indent=2) + "\n")


@pytest.fixture(scope="module")
def machine_lock() -> Iterator[None]:
    """One stack test per machine at a time (skipped locally, failed in CI, if one runs)."""
    with only_run():
        yield


@pytest.fixture(scope="module")
def live(
    machine_lock: None, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """The stack up on a real engine (started here if none answers); ``down -v`` at the end."""
    compose = require_tool("docker-compose")
    make = require_tool("make")
    require_tool("git")
    started = time.monotonic()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.iterdir():
        old.unlink()
    folder = tmp_path_factory.mktemp("stack-on-docker")
    tree = snapshot(folder / "mlplat")
    # `cp .env.example .env` and the secrets filled in; the ports follow just before `make up`.
    services = resolved_services(compose, filled_env_file(tree / ".env"))
    timings: dict[str, float] = {}
    outcomes: list[Any] = []
    with docker_engine(ARTIFACTS) as engine:
        timings["engine"] = round(time.monotonic() - started, 1)
        since = time.monotonic()
        images = _registry_images(services)
        outcomes = ensure_standins(engine.docker, images, ARTIFACTS / "standins.log")
        timings["stand_ins"] = round(time.monotonic() - since, 1)
        commit = git_commit()
        build_args = {"GIT_COMMIT": commit, "EXTRA_CA_CERT": extra_ca_pem()}
        project = Project(tree, PROJECT_NAME, compose, make, engine.docker, ARTIFACTS, build_args)
        running = Live(project, services, {}, {}, commit, time.time(), timings)
        running.failures_before = request.session.testsfailed
        running.session = request.session
        set_up = False
        try:
            # A stack left over by an interrupted run would keep its old volumes.
            project.run([compose, "down", "-v", "--remove-orphans"], "compose", 300)
            since = time.monotonic()
            project.dc("build", log="build", timeout=BUILD_TIMEOUT_S)
            running.timed("image_build", since)
            # Ports are picked last: a free port stays reserved for a minute only (tests/ports.py).
            ports = {variable: str(free_port()) for variable in PORT_VARIABLES.values()}
            env_file = filled_env_file(tree / ".env", ports)
            running.env = dict(
                line.split("=", 1) for line in env_file.read_text().splitlines()
                if re.match(r"^\w+=", line)
            )  # fmt: skip
            running.urls = {n: f"http://127.0.0.1:{ports[v]}" for n, v in PORT_VARIABLES.items()}
            since = time.monotonic()
            up = project.make_target("up", timeout=900)
            assert up.returncode == 0, f"make up failed:\n{up.stdout[-4000:]}"
            _wait_healthy(running)
            running.timed("make_up_to_healthy", since)
            running.started_at = time.time()
            set_up = True
            yield running
        finally:
            if running.demo is not None and running.demo.poll() is None:
                running.demo.terminate()  # a failed test left `make bad-canary` running
                running.demo.wait(timeout=60)
            if not set_up:
                project.keep_service_logs()
            else:
                running.keep_logs_if_failed()
            project.run([compose, "down", "-v", "--remove-orphans"], "compose", 300)
            timings["whole_test"] = round(time.monotonic() - started, 1)
            _write_timings(timings, outcomes)
            print(f"\nstack on docker, engine {engine.version}: {json.dumps(timings)}")


# --- the stack as `make up` leaves it ----------------------------------------------------------


def test_every_service_is_healthy_and_the_one_shots_exited_zero(live: Live) -> None:
    """Every long-running service passes its own healthcheck; mlflow-users and trainer exit 0."""
    assert _unhealthy(live) == {}
    containers = live.project.containers()
    assert set(containers) == set(_running(live.services)), "grafana must be the only one left out"
    for name in containers:
        published = live.services[name].published
        if published:  # every port on loopback only, moved where .env said
            bindings = containers[name]["NetworkSettings"]["Ports"][f"{published[0][2]}/tcp"]
            port = live.urls[name].rsplit(":", 1)[1]
            assert {(b["HostIp"], b["HostPort"]) for b in bindings} == {("127.0.0.1", port)}, name


def test_the_image_is_labelled_with_the_commit_and_runs_as_its_own_user(live: Live) -> None:
    """GIT_COMMIT reaches the image's revision label; the services run as mlplat, not root."""
    inspected = json.loads(
        live.project.run([live.project.docker, "image", "inspect", IMAGE], "image", 60).stdout
    )[0]
    assert inspected["Config"]["Labels"]["org.opencontainers.image.revision"] == live.commit
    assert inspected["Config"]["User"] == "mlplat:mlplat"
    assert live.project.exec("serving", "id", "-un").stdout.strip() == "mlplat"


def test_mlflow_holds_the_champion_the_trainer_registered_with_its_artifacts(
    live: Live, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Version 1 is champion, gate-passed, from this commit; run and model artifacts download."""
    import mlflow

    assert httpx.get(f"{live.urls['mlflow']}/api/2.0/mlflow/experiments/search").status_code == 401
    client = live.mlflow_as("serving", monkeypatch)
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert champion.version == "1"
    assert champion.tags["mlplat.gate_verdict"] == "passed"
    assert champion.tags["mlplat.code_version"] == live.commit

    def files(path: str | None = None) -> Iterator[str]:
        for item in client.list_artifacts(champion.run_id, path):
            yield from files(item.path) if item.is_dir else [item.path]

    artifacts = set(files())
    expected = {"validation/report.json", "evaluation/candidate.json", "gate/verdict.json",
                "reference/reference.parquet"}  # fmt: skip
    assert expected <= artifacts, artifacts
    # The model through the registry, as the service loads it (the autouse fixture of
    # tests/conftest.py puts MLflow's global URIs back afterwards).
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(live.urls["mlflow"])
    mlflow.set_registry_uri(live.urls["mlflow"])
    uri = f"models:/{MODEL_NAME}@champion"
    model = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path)))
    assert (model / "MLmodel").is_file()
    # On the mlflow-artifacts volume, written through the server.
    run = client.get_run(champion.run_id)
    stored = f"/mlartifacts/{run.info.experiment_id}/{run.info.run_id}/artifacts/gate/verdict.json"
    assert live.project.exec("mlflow", "test", "-s", stored).returncode == 0, stored


def _openapi_example(live: Live) -> dict[str, Any]:
    schema = live.get("serving", "/openapi.json").json()
    reference = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    name = reference["schema"]["$ref"].rsplit("/", 1)[-1]
    example: dict[str, Any] = schema["components"]["schemas"][name]["examples"][0]
    return example


def test_predict_answers_the_openapi_example_and_names_the_field_of_a_bad_record(
    live: Live,
) -> None:
    """The example body of /docs scores with the champion; a bad category gets 422 naming it."""
    example = _openapi_example(live)
    response = httpx.post(f"{live.urls['serving']}/predict", json=example, timeout=15)
    assert response.status_code == 200, response.text
    [prediction] = response.json()["predictions"]
    assert prediction["variant"] == "champion"
    assert prediction["model_version"] == 1
    broken = json.loads(json.dumps(example))
    broken["records"][0]["home_ownership"] = "castle"
    refused = httpx.post(f"{live.urls['serving']}/predict", json=broken, timeout=15)
    assert refused.status_code == 422
    assert "records[0].home_ownership" in refused.text


def _rule_names(path: Path) -> list[str]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return [r.get("record") or r["alert"] for g in groups for r in g["rules"]]


def test_prometheus_scrapes_both_targets_and_evaluates_every_rule(live: Live) -> None:
    """Targets mlplat-serving and mlplat-controller are up; every shipped rule loaded and ok."""

    def targets() -> bool:
        active = live.get("prometheus", "/api/v1/targets").json()["data"]["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in active} == {
            "mlplat-serving": "up", "mlplat-controller": "up"
        }  # fmt: skip

    poll("both targets up", targets, deadline_s=90, interval_s=2)
    rules_dir = live.project.tree / "monitoring" / "prometheus" / "rules"
    shipped = sorted(
        _rule_names(rules_dir / "recording.yml") + _rule_names(rules_dir / "alerts.yml")
    )

    def evaluated() -> list[dict[str, Any]]:
        groups = live.get("prometheus", "/api/v1/rules").json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        # Never evaluated yet: Go's zero time.
        return [] if any(r["lastEvaluation"].startswith("0001") for r in rules) else rules

    rules = poll("every rule evaluated", evaluated, deadline_s=90, interval_s=2)
    assert isinstance(rules, list)
    assert sorted(r["name"] for r in rules) == shipped
    assert [r["name"] for r in rules if r["health"] != "ok"] == []


def test_alertmanager_routes_canary_alerts_to_the_controller_and_the_rest_to_the_relay(
    live: Live,
) -> None:
    """Both routes resolve in amtool; posted alerts reach the controller and the relay's log."""
    config = "--config.file=/etc/alertmanager/alertmanager.yml"
    for labels, receiver in (
        (["component=canary", "alertname=CanaryDegraded"], "controller"),
        (["severity=ticket", "alertname=DriftTicket"], "oncall"),
        (["severity=page", "alertname=ServingDown"], "oncall"),
    ):
        done = live.project.exec(
            "alertmanager", "amtool", "config", "routes", "test", config, *labels
        )
        # amtool warns (on stderr, merged here) that --config.file wins over --alertmanager.url.
        answer = [line for line in done.stdout.splitlines() if line and not line.startswith("Warn")]
        assert answer == [receiver], (labels, done.stdout)
    now = datetime.now(UTC)
    window = {"startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=10)).isoformat()}
    alerts = [
        # About a version that does not exist: acknowledged, nothing moves.
        {"labels": {"alertname": "StackTestCanaryAlert", "component": "canary",
                    "signal": "error_rate", "severity": "page", "model_version": "999",
                    "job": "mlplat-serving"}, **window},
        {"labels": {"alertname": "StackTestTicket", "severity": "ticket", "job": "stack-test"},
         **window},
    ]  # fmt: skip
    posted = httpx.post(f"{live.urls['alertmanager']}/api/v2/alerts", json=alerts, timeout=15)
    assert posted.status_code == 200, posted.text
    poll(
        "the controller accepted Alertmanager's webhook",
        lambda: (live.controller_metric(
            "mlplat_controller_webhook_requests_total", 'outcome="accepted"') or 0) >= 1,
        deadline_s=60, interval_s=2,
    )  # fmt: skip

    def relayed() -> bool:
        notes = live.get("alert-relay", "/notifications").json()
        return any(
            a["labels"]["alertname"] == "StackTestTicket" for n in notes for a in n["alerts"]
        )

    # The people's route waits its group_wait (30 s) before the first delivery.
    poll("the relay received the ticket", relayed, deadline_s=120, interval_s=2)
    assert "StackTestTicket" in live.project.dc("logs", "--no-color", "alert-relay")
    assert "StackTestCanaryAlert" not in json.dumps(
        live.get("alert-relay", "/notifications").json()
    )


# --- the README's drills and demo ---------------------------------------------------------------


def _hold_reasons(live: Live) -> list[str]:
    reasons: list[str] = live.status().get("hold_reasons") or []
    return reasons


def test_the_mlflow_drill_keeps_serving_and_holds_the_controller_until_mlflow_returns(
    live: Live,
) -> None:
    """``stop mlflow``: /predict answers, /ready and the controller say why; ``start`` ends it."""
    example = _openapi_example(live)
    live.project.dc("stop", "mlflow", log="drill-mlflow")
    try:
        poll(
            "the controller holds: registry unreachable",
            lambda: "registry_unreachable" in _hold_reasons(live),
            deadline_s=90,
            interval_s=2,
        )
        poll("/ready reports the registry error",
             lambda: live.get("serving", "/ready").json().get("registry_error"), deadline_s=90,
             interval_s=2)  # fmt: skip
        assert (
            live.controller_metric("mlplat_controller_holding", 'reason="registry_unreachable"')
            == 1
        )
        response = httpx.post(f"{live.urls['serving']}/predict", json=example, timeout=15)
        assert response.status_code == 200, response.text
    finally:
        live.project.dc("start", "mlflow", log="drill-mlflow")
    poll("the hold ends", lambda: live.status()["held"] is False, deadline_s=180, interval_s=3)
    poll("/ready clears the registry error",
         lambda: live.get("serving", "/ready").json().get("registry_error") is None,
         deadline_s=120, interval_s=3)  # fmt: skip
    _wait_healthy(live, 180)


def test_the_prometheus_drill_holds_the_judge_of_make_bad_canarys_live_canary_until_it_returns(
    live: Live,
) -> None:
    """``make bad-canary`` ships a canary; ``stop prometheus`` holds its judge, ``start`` resumes.

    The README's drill ships its canary with ``bad_canary.py --no-wait``: the first two steps of
    ``make bad-canary``. Here the demo's own canary is the live one, so the stack trains one
    candidate instead of two; the demo then runs on to its verdict (the next test).
    """
    live.demo_started = time.monotonic()
    live.demo = live.project.start_make("bad-canary")
    demo = live.demo

    deadline = time.monotonic() + 600  # training the candidate takes most of it
    version = None
    while version is None:
        assert demo.poll() is None, "make bad-canary ended before its canary was judged"
        assert time.monotonic() < deadline, "the controller never observed the demo's canary"
        report = live.status()
        canary = report.get("canary") or {}
        challenger = report["deployment"]["challenger"]
        if challenger and canary.get("version") == challenger and canary["state"] == "observing":
            version = challenger
        time.sleep(3)
    since = time.monotonic()
    live.project.dc("stop", "prometheus", log="drill-prometheus")
    try:
        poll(
            "the controller holds: Prometheus unreachable",
            lambda: "prometheus_unreachable" in _hold_reasons(live),
            deadline_s=120,
            interval_s=2,
        )
        holding = live.controller_metric(
            "mlplat_controller_holding", 'reason="prometheus_unreachable"'
        )
        assert holding == 1
        report = live.status()
        assert report["deployment"]["challenger"] == version, "nothing moves on a guess"
        assert report["deployment"]["canary_weight"] == pytest.approx(0.5)
        assert any("prometheus" in why for why in report["held_because"])
    finally:
        live.project.dc("start", "prometheus", log="drill-prometheus")
    poll(
        "the hold ends",
        lambda: "prometheus_unreachable" not in _hold_reasons(live),
        deadline_s=180,
        interval_s=3,
    )
    assert live.status()["deployment"]["challenger"] == version, "the judge carries on"
    assert (
        live.controller_metric("mlplat_controller_holding", 'reason="prometheus_unreachable"') == 0
    )
    live.timed("prometheus_drill", since)


def test_make_bad_canary_ends_with_the_controller_rolling_the_canary_back(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's verdict is a rollback: the version rejected in MLflow, the champion unchanged."""
    assert live.demo is not None, "make bad-canary was not started"
    status = live.demo.wait(timeout=BAD_CANARY_TIMEOUT_S)
    seconds = live.timed("make_bad_canary_to_rollback", live.demo_started)
    output = (ARTIFACTS / "make-bad-canary.log").read_text(errors="replace")
    assert status == 0, output[-4000:]
    match = re.search(r"canary v(\d+) was rolled back", output)
    assert match, output[-4000:]
    version = int(match.group(1))
    live.rejected.append(version)
    client = live.mlflow_as("serving", monkeypatch)
    assert client.get_model_version(MODEL_NAME, str(version)).tags["mlplat.status"] == "rejected"
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == "1"
    model = live.get("serving", "/model").json()
    assert model["canary"] is None
    assert model["canary_weight"] == 0
    print(f"make bad-canary: rolled back v{version} after {seconds:.0f} s")


# --- Grafana's dashboard, on the live Prometheus -------------------------------------------------

MAY_BE_EMPTY = {
    "mlplat_model_load_failures_total": "counts failed model loads: none fails in a healthy run",
    'mlplat_feature_drift_score{variant="canary"}': (
        "the drift job runs every 300 s; a canary may not have been live during a run"
    ),
}
"""Queries that may return nothing in this run, and why; every other one must return data."""


def _dashboard_targets() -> Iterator[tuple[str, str, str, bool]]:
    """(dashboard file, panel title, expression, instant) of every query of every dashboard."""

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels") or [])

    for path in sorted((REPO / "monitoring" / "grafana" / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        variables = {v["name"]: [o["value"] for o in v.get("options", [])]
                     for v in (dashboard.get("templating") or {}).get("list", [])}  # fmt: skip
        for panel in panels(dashboard["panels"]):
            for target in panel.get("targets") or []:
                expr = target.get("expr", "").replace("$__rate_interval", GRAFANA_RATE_INTERVAL)
                used = [name for name in variables if f"${name}" in expr]
                values: list[dict[str, str]] = [{}]
                for name in used:
                    values = [{**v, name: option} for v in values for option in variables[name]]
                for chosen in values:
                    text = expr
                    for name, option in chosen.items():
                        text = text.replace(f"${name}", option)
                    assert "$" not in text, f"unresolved variable in {path.name}: {text}"
                    yield path.name, panel.get("title", ""), text, bool(target.get("instant"))


def test_every_grafana_dashboard_query_runs_on_the_live_prometheus(live: Live) -> None:
    """Each panel query (each variant) parses and runs; only the documented ones may be empty."""
    end = time.time()
    errors, empty = [], []
    for dashboard, title, expr, instant in _dashboard_targets():
        if instant:
            answer = live.promql(expr)
        else:
            answer = live.get("prometheus", "/api/v1/query_range", params={
                "query": expr, "start": live.started_at, "end": end, "step": RANGE_STEP_S,
            }).json()  # fmt: skip
        if answer.get("status") != "success":
            errors.append(f"{dashboard} / {title}: {expr}: {answer.get('error')}")
        elif not answer["data"]["result"] and not any(key in expr for key in MAY_BE_EMPTY):
            empty.append(f"{dashboard} / {title}: {expr}")
    assert errors == []
    assert empty == [], "panels with no data (add to MAY_BE_EMPTY only with a reason)"


# --- restarts, down and up, down -v -------------------------------------------------------------


def test_services_with_a_tmpfs_come_back_healthy_after_a_restart(live: Live) -> None:
    """A restarted container gets its tmpfs back writable by its non-root user."""
    live.project.dc("restart", "serving", "alertmanager", log="restart")
    _wait_healthy(live, 240)


def _deployment_events(live: Live) -> int:
    done = live.project.exec(
        "postgres", "psql", "-U", "mlplat", "-d", "events", "-tAc",
        "select count(*) from deployment_events",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    return int(done.stdout.strip().splitlines()[-1])


def test_make_down_then_make_up_keeps_models_events_metrics_and_silences(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the kept volumes: same champion, rejections, live canary, events, samples, silence."""
    before = live.status()["deployment"]
    events = _deployment_events(live)
    now = datetime.now(UTC)
    silence = httpx.post(f"{live.urls['alertmanager']}/api/v2/silences", json={
        "matchers": [{"name": "alertname", "value": "StackTestSilenced", "isRegex": False}],
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
        "createdBy": "stack test", "comment": "must survive make down / make up",
    }, timeout=15).json()["silenceID"]  # fmt: skip
    scraped_before = time.time()

    since = time.monotonic()
    down = live.project.make_target("down", timeout=300)
    assert down.returncode == 0, down.stdout
    assert live.project.containers() == {}
    assert len(live.project.volumes()) == len(yaml.safe_load(
        (live.project.tree / "docker-compose.yml").read_text())["volumes"])  # fmt: skip
    up = live.project.make_target("up", timeout=900)
    assert up.returncode == 0, up.stdout[-4000:]
    _wait_healthy(live)
    live.timed("make_down_then_up_to_healthy", since)

    trainer = live.project.dc("logs", "--no-color", "trainer")
    assert re.search(r'"ran":\s*false', trainer), "the second up retrains nothing"
    client = live.mlflow_as("serving", monkeypatch)
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == str(
        before["champion"]
    )
    for version in live.rejected:
        assert (
            client.get_model_version(MODEL_NAME, str(version)).tags["mlplat.status"] == "rejected"
        )
    poll("the controller reads the same deployment",
         lambda: live.status()["deployment"] == before, deadline_s=120, interval_s=3)  # fmt: skip
    assert _deployment_events(live) >= events
    old = live.promql('up{job="mlplat-serving"}', time=scraped_before - 30)
    assert old["data"]["result"], "Prometheus lost the samples scraped before make down"
    silences = httpx.get(f"{live.urls['alertmanager']}/api/v2/silence/{silence}", timeout=15)
    assert silences.status_code == 200
    assert silences.json()["status"]["state"] == "active"


def test_down_v_removes_every_container_and_volume(live: Live) -> None:
    """``docker-compose down -v`` leaves nothing of the project behind."""
    live.keep_logs_if_failed()
    live.project.dc("down", "-v", "--remove-orphans", log="down-v")
    assert live.project.containers() == {}
    assert live.project.volumes() == []
