"""A regressing canary, end to end: real service, Prometheus, Alertmanager and controller.

The stack, all on loopback ports:

* the inference service (``python -m serving``) on a SQLite MLflow store, champion v1 and a
  defective canary v2 at 50 % — a model trained on one loan purpose only, whose encoder refuses
  the others, so most of its requests fail with ``inference_failure`` (a train/serve skew);
* ``mlplat traffic`` sending generated loan applications at a bounded rate;
* Prometheus (the shipped scrape jobs and rules, rendered for these ports, 1 s intervals);
* Alertmanager (the shipped routes, rendered to the controller's webhook and a token file);
* the controller (``python -m mlplat monitor``), which is killed with SIGKILL mid-canary and
  started again before the traffic begins.

The shipped ``CanaryDegraded`` rule waits ``for: 1m``; here it waits 10 s (the rendered copy is
the only change) to keep the test near a minute: promtool tests pin the rule's timing. The
controller's own judge is given an hour-long window so it cannot act first: what rolls the
canary back here is the alert, through the webhook. The test asserts the rollback happens
within a deadline, writes exactly one ``reject`` event whose evidence names the alert, and that
the canary's drift report is attached to its MLflow run afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from features import FEATURE_NAMES, TARGET
from monitoring.alertmanager import render_alertmanager_config
from monitoring.prometheus import RULE_FILES, render_prometheus_config
from monitoring.sources import PrometheusSource
from pipeline.config import ModelConfig
from pipeline.data import generate
from pipeline.model_io import log_model
from pipeline.train import build_model, fit
from registry import Action, EventStatus, ModelRegistry, RegistrySettings, open_registry
from tests.conftest import require_tool
from tests.integration.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "integration-webhook-token-0123456789abcdef"
ALERT_FOR = "10s"
START_DEADLINE_S = 120.0
ROLLBACK_DEADLINE_S = 90.0
REPORT_DEADLINE_S = 120.0


# --- processes ------------------------------------------------------------------------------------


@dataclass
class Processes:
    """Starts processes in their own process groups, logs them, stops them all at the end."""

    logs: Path
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, command: Sequence[str], env: dict[str, str] | None = None) -> None:
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            self.running[name] = subprocess.Popen(
                list(command), stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )  # fmt: skip

    def tail(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def kill(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.running.pop(name, None)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass

    def until(self, name: str, ready: Callable[[], bool], deadline_s: float, what: str) -> None:
        """Poll ``ready`` until it holds, failing early if ``name`` exits."""
        deadline = time.monotonic() + deadline_s
        while not ready():
            process = self.running.get(name)
            if process is not None and process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{self.tail(name)}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"not within {deadline_s:.0f} s: {what}\n{name} log:\n{self.tail(name)}"
                )
            time.sleep(0.2)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(logs)
    try:
        yield procs
    finally:
        for name in list(procs.running)[::-1]:
            procs.kill(name)


def answers(url: str, status: int = 200) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == status
        except httpx.HTTPError:
            return False

    return check


# --- the registered models ------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    registry: ModelRegistry
    client: MlflowClient
    champion: int
    canary: int
    canary_run: str
    env: dict[str, str]


def _defective_model() -> Any:
    """A pipeline trained on debt-consolidation loans only, whose encoder refuses other purposes.

    It passes the service's smoke prediction (the example record is a debt consolidation) and
    fails on most real traffic: a train/serve skew, the kind of defect a canary exists to catch.
    """
    frame = generate(2_000, seed=3)
    narrow = frame[frame["loan_purpose"] == "debt_consolidation"]
    model = build_model(ModelConfig(max_iter=20, early_stopping=False))
    model.set_params(
        preprocess__categorical__categories="auto",
        preprocess__categorical__handle_unknown="error",
    )
    return model.fit(narrow[list(FEATURE_NAMES)], narrow[TARGET])


def _log_version(model: Any, experiment: str, sample: pd.DataFrame) -> tuple[str, str]:
    """Log ``model`` and its reference sample in a new run; return (model URI, run id)."""
    features = sample[list(FEATURE_NAMES)]
    reference = features.assign(prediction=model.predict_proba(features)[:, 1])
    with (
        mlflow.start_run(experiment_id=experiment) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        uri = log_model(model, features.head(5))
        path = Path(tmp) / "reference.parquet"
        reference.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path="reference")
    return uri, run.info.run_id


@pytest.fixture
def deployed(tmp_path: Path) -> Deployed:
    home = tmp_path / "home"
    name = f"credit-canary-{uuid.uuid4().hex[:8]}"
    settings = RegistrySettings(home=home, model_name=name, experiment_name=name, actor="it")
    registry = open_registry(settings)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    try:
        good = fit(generate(2_000, seed=1), ModelConfig(max_iter=20, early_stopping=False))
        versions = []
        runs = []
        # Each version's reference is drawn from what it was trained on: the defective one
        # only ever saw debt consolidations.
        sample = generate(2_000, seed=101)
        narrow = sample[sample["loan_purpose"] == "debt_consolidation"]
        for seed, model, reference in (
            (1, good, sample.head(1_000)),
            (2, _defective_model(), narrow),
        ):
            uri, run_id = _log_version(model, experiment.experiment_id, reference)
            lineage = {"gate_verdict": "passed", "data_digest": f"seed-{seed}"}
            versions.append(registry.register(uri, run_id, lineage, reason="it: trained"))
            runs.append(run_id)
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    registry.bootstrap(versions[0], reason="it: first champion")
    registry.start_canary(versions[1], 0.5, reason="it: gate passed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLAT_", "MLFLOW_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        {
            "MLFLOW_TRACKING_URI": settings.tracking_uri,
            "MLPLAT_HOME": str(home),
            "MLPLAT_MODEL_NAME": name,
            "MLPLAT_EXPERIMENT_NAME": name,
            "OMP_NUM_THREADS": "1",
        }
    )
    return Deployed(registry, client, versions[0], versions[1], runs[1], env)


# --- the stack ------------------------------------------------------------------------------------


def _rules_with_short_for(directory: Path) -> tuple[Path, ...]:
    """The shipped rule files, with CanaryDegraded's ``for`` shortened to :data:`ALERT_FOR`."""
    recording, alerts = RULE_FILES
    config = yaml.safe_load(alerts.read_text(encoding="utf-8"))
    found = [r for g in config["groups"] for r in g["rules"] if r.get("alert") == "CanaryDegraded"]
    assert len(found) == 1, "the shipped alerts.yml must define CanaryDegraded once"
    found[0]["for"] = ALERT_FOR
    copy = directory / "alerts.yml"
    copy.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return recording, copy


@dataclass(frozen=True)
class Ports:
    serving: int = field(default_factory=free_port)
    controller: int = field(default_factory=free_port)
    prometheus: int = field(default_factory=free_port)
    alertmanager: int = field(default_factory=free_port)


@dataclass(frozen=True)
class Tools:
    prometheus: str
    alertmanager: str


@pytest.fixture
def tools() -> Tools:
    """The Debian packages' binaries (skipped locally, a failure under CI=true, when missing)."""
    return Tools(require_tool("prometheus"), require_tool("prometheus-alertmanager"))


def start_stack(
    processes: Processes, tools: Tools, deployed: Deployed, ports: Ports, work: Path
) -> dict[str, str]:
    """Start service, Alertmanager, Prometheus; return the controller's environment."""
    serving_env = {
        **deployed.env,
        "MLPLAT_SERVING_ENVIRONMENT": "dev",
        "MLPLAT_SERVING_RECONCILE_INTERVAL_SECONDS": "1",
        "MLPLAT_SERVING_INFERENCE_LOG_FLUSH_SECONDS": "0.2",
    }
    processes.start(
        "serving",
        [sys.executable, "-m", "serving", "--host", "127.0.0.1", "--port", str(ports.serving),
         "--log-level", "warning"],
        serving_env,
    )  # fmt: skip

    token_file = work / "webhook-token"
    token_file.write_text(TOKEN, encoding="utf-8")
    am_config = work / "alertmanager.yml"
    am_config.write_text(
        render_alertmanager_config(
            f"http://127.0.0.1:{ports.controller}/alertmanager/webhook",
            token_file,
            oncall_webhook_url=f"http://127.0.0.1:{ports.controller}/nobody-listens",
            group_wait="1s",
            group_interval="5s",
            repeat_interval="1m",
        ),
        encoding="utf-8",
    )
    processes.start(
        "alertmanager",
        [tools.alertmanager, f"--config.file={am_config}", f"--storage.path={work / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{ports.alertmanager}", "--cluster.listen-address=",
         "--log.level=warn"],
    )  # fmt: skip

    prom_config = work / "prometheus.yml"
    prom_config.write_text(
        render_prometheus_config(
            [f"127.0.0.1:{ports.serving}"],
            [f"127.0.0.1:{ports.controller}"],
            [f"127.0.0.1:{ports.alertmanager}"],
            scrape_interval="1s",
            evaluation_interval="1s",
            rule_files=_rules_with_short_for(work),
        ),
        encoding="utf-8",
    )
    processes.start(
        "prometheus",
        [tools.prometheus, f"--config.file={prom_config}", f"--storage.tsdb.path={work / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{ports.prometheus}", "--log.level=warn"],
    )  # fmt: skip

    processes.until(
        "alertmanager", answers(f"http://127.0.0.1:{ports.alertmanager}/-/ready"),
        START_DEADLINE_S, "Alertmanager ready",
    )  # fmt: skip
    processes.until(
        "prometheus", answers(f"http://127.0.0.1:{ports.prometheus}/-/ready"),
        START_DEADLINE_S, "Prometheus ready",
    )  # fmt: skip

    def both_served() -> bool:
        try:
            view = httpx.get(f"http://127.0.0.1:{ports.serving}/model", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return False
        return bool(view.get("canary")) and view["canary"]["version"] == deployed.canary

    processes.until("serving", both_served, START_DEADLINE_S, "service serving champion and canary")
    return {
        **deployed.env,
        "MLPLAT_MONITOR_ENVIRONMENT": "production",
        "MLPLAT_MONITOR_WEBHOOK_TOKEN": TOKEN,
        # The judge's windows last an hour: within this test only the alert can roll back.
        "MLPLAT_MONITOR_JUDGE_WINDOW_SECONDS": "3600",
    }


def start_controller(
    processes: Processes, env: dict[str, str], ports: Ports, *, canary_live: bool = True
) -> None:
    processes.start(
        "controller",
        [sys.executable, "-m", "mlplat", "monitor", "--host", "127.0.0.1",
         "--port", str(ports.controller), "--interval", "1",
         "--prometheus-url", f"http://127.0.0.1:{ports.prometheus}", "--log-level", "info"],
        env,
    )  # fmt: skip

    def cycled() -> bool:
        try:
            status = httpx.get(f"http://127.0.0.1:{ports.controller}/status", timeout=2)
        except httpx.HTTPError:
            return False
        if status.status_code != 200:
            return False
        return not canary_live or status.json()["canary"] is not None

    processes.until("controller", cycled, START_DEADLINE_S, "controller cycling")


def test_a_regressing_canary_fires_the_alert_and_the_webhook_rolls_it_back(
    tools: Tools, processes: Processes, deployed: Deployed, tmp_path: Path
) -> None:
    ports = Ports()
    work = tmp_path / "stack"
    work.mkdir()
    controller_env = start_stack(processes, tools, deployed, ports, work)

    # Killed in the middle of the canary, and started again: it must pick up where it was.
    start_controller(processes, controller_env, ports)
    processes.kill("controller", signal.SIGKILL)
    start_controller(processes, controller_env, ports)

    traffic_out = work / "traffic.json"
    load_started = datetime.now(UTC)
    processes.start(
        "traffic",
        ["sh", "-c", f'exec "$0" -m mlplat traffic --url http://127.0.0.1:{ports.serving} '
         f"--rate 40 --duration 150 --concurrency 8 --label-fraction 0.2 --json > {traffic_out}",
         sys.executable],
        deployed.env,
    )  # fmt: skip

    registry = deployed.registry

    def rolled_back() -> bool:
        return registry.state().challenger is None

    processes.until("traffic", rolled_back, ROLLBACK_DEADLINE_S, "canary rolled back")
    rejects = [
        e
        for e in registry.history(50)
        if e.action is Action.REJECT and e.status is EventStatus.APPLIED
    ]
    assert len(rejects) == 1
    (event,) = rejects
    assert event.applied_at is not None
    seconds = (event.applied_at - load_started).total_seconds()
    print(f"\ntime to rollback after the load started: {seconds:.1f} s")
    (work / "time-to-rollback.json").write_text(json.dumps({"seconds": seconds}))
    assert event.from_version == deployed.canary
    assert event.details["decided_by"] == "alertmanager"
    assert event.evidence is not None
    assert "CanaryDegraded" in event.evidence
    assert f":{ports.prometheus}/graph?" in event.evidence  # the generatorURL
    alert = event.details["alert"]
    assert isinstance(alert, dict)
    labels = alert["labels"]
    assert isinstance(labels, dict)
    assert labels["signal"] == "error_rate"
    assert registry.version(deployed.canary).rejected
    state = registry.state()
    assert (state.champion, state.canary_weight) == (deployed.champion, 0.0)

    # The same numbers through the controller's PromQL: the canary failed, the champion did not.
    start = next(
        e.applied_at
        for e in registry.history(50)
        if e.action is Action.CANARY and e.to_version == deployed.canary
    )
    assert start is not None
    with httpx.Client(timeout=10) as http:
        source = PrometheusSource(http, f"http://127.0.0.1:{ports.prometheus}")
        counts = source.counts(deployed.champion, deployed.canary, start, datetime.now(UTC))
    assert counts["canary"].errors > 0
    assert counts["champion"].requests > 0
    assert counts["champion"].errors == 0

    # Prometheus scrapes the controller, which counted the authenticated notification.
    def accepted() -> bool:
        body = httpx.get(
            f"http://127.0.0.1:{ports.prometheus}/api/v1/query",
            params={"query": 'mlplat_controller_webhook_requests_total{outcome="accepted"} > 0'},
            timeout=5,
        ).json()
        return bool(body["data"]["result"])

    processes.until("controller", accepted, 30, "Prometheus sees an accepted webhook call")
    processes.kill("traffic")

    # The canary's drift report ends up with its training run.
    def attached() -> bool:
        return bool(deployed.client.list_artifacts(deployed.canary_run, "drift"))

    processes.until("controller", attached, REPORT_DEADLINE_S, "canary drift report attached")
    (artifact,) = deployed.client.list_artifacts(deployed.canary_run, "drift")
    assert artifact.path.endswith(".html")
    assert "canary" in artifact.path

    # Killing and restarting once more changes nothing: still one verdict, one event.
    processes.kill("controller", signal.SIGKILL)
    start_controller(processes, controller_env, ports, canary_live=False)
    final = [e for e in registry.history(50) if e.action is Action.REJECT]
    assert [e.id for e in final] == [event.id]
