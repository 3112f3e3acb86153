"""The closed loop on loopback ports: inference service, Prometheus, Alertmanager, controller.

Shared by the end-to-end tests of the alert path (``test_canary_rollback.py``,
``test_alert_path.py``). Everything runs as child processes in their own process groups, logged
to files, and stopped at the end of the test:

* the inference service (``python -m serving``) on a SQLite MLflow store, with a champion and
  the versions a test deploys as canaries (:class:`Deployed`);
* Prometheus with the shipped scrape jobs and recording rules, and the shipped alert rules
  changed only as a test says (:func:`render_rules`: a shorter ``for``, forced thresholds, an
  alert left out so that another one is what acts);
* Alertmanager with the shipped routes, pointed at the controller's webhook and a token file;
* the controller (``python -m mlplat monitor``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from features import FEATURE_NAMES, TARGET
from monitoring.alertmanager import render_alertmanager_config
from monitoring.prometheus import RULE_FILES, render_prometheus_config
from pipeline.config import ModelConfig
from pipeline.data import generate
from pipeline.model_io import log_model
from pipeline.train import build_model, fit
from registry import ModelRegistry, RegistrySettings, open_registry
from tests.conftest import require_tool
from tests.ports import free_port

TOKEN = "integration-webhook-token-0123456789abcdef"
START_DEADLINE_S = 120.0

RuleChange = Callable[[dict[str, Any]], None] | None
"""Changes one alert rule in place; ``None`` leaves the alert out of the rendered copy."""


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


def processes_in(tmp_path: Path) -> Iterator[Processes]:
    """A :class:`Processes` logging under ``tmp_path``, stopping everything it started."""
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
    """A registered model: champion ``champion``, and two versions that can be canaries.

    ``defective`` is trained on debt-consolidation loans only and its encoder refuses the other
    purposes, so most of its requests fail (a train/serve skew); ``healthy`` is a good model of
    its own. Neither serves until a test starts it as the canary.
    """

    registry: ModelRegistry
    client: MlflowClient
    champion: int
    defective: int
    healthy: int
    runs: Mapping[int, str]
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


def deploy(tmp_path: Path) -> Deployed:
    """Register a champion (serving) and the defective and healthy candidate versions."""
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
    config = ModelConfig(max_iter=20, early_stopping=False)
    try:
        # Each version's reference is drawn from what it was trained on: the defective one
        # only ever saw debt consolidations.
        sample = generate(2_000, seed=101)
        narrow = sample[sample["loan_purpose"] == "debt_consolidation"]
        versions: list[int] = []
        runs: dict[int, str] = {}
        for seed, model, reference in (
            (1, fit(generate(2_000, seed=1), config), sample.head(1_000)),
            (2, _defective_model(), narrow),
            (4, fit(generate(2_000, seed=4), config), sample.tail(1_000)),
        ):
            uri, run_id = _log_version(model, experiment.experiment_id, reference)
            lineage = {"gate_verdict": "passed", "data_digest": f"seed-{seed}"}
            version = registry.register(uri, run_id, lineage, reason="it: trained")
            versions.append(version)
            runs[version] = run_id
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    registry.bootstrap(versions[0], reason="it: first champion")
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
    return Deployed(registry, client, versions[0], versions[1], versions[2], runs, env)


# --- the stack ------------------------------------------------------------------------------------


def render_rules(directory: Path, changes: Mapping[str, RuleChange]) -> tuple[Path, ...]:
    """The shipped rule files, with the named alert rules changed or left out.

    Args:
        directory: Where the changed ``alerts.yml`` is written.
        changes: Alert name to a function changing its rule in place, or ``None`` to drop it.

    Returns:
        The shipped recording rules and the changed alert rules, for Prometheus.
    """
    recording, alerts = RULE_FILES
    config = yaml.safe_load(alerts.read_text(encoding="utf-8"))
    found: set[str] = set()
    for group in config["groups"]:
        kept = []
        for rule in group["rules"]:
            name = rule.get("alert")
            if name in changes:
                found.add(name)
                change = changes[name]
                if change is None:
                    continue
                change(rule)
            kept.append(rule)
        group["rules"] = kept
    assert found == set(changes), f"the shipped alerts.yml lacks {set(changes) - found}"
    copy = directory / "alerts.yml"
    copy.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return recording, copy


def wait_for(duration: str) -> RuleChange:
    """A rule change: persist for ``duration`` instead of the shipped ``for``."""

    def change(rule: dict[str, Any]) -> None:
        rule["for"] = duration

    return change


def substitute(*pairs: tuple[str, str], duration: str | None = None) -> RuleChange:
    """A rule change: replace text in the expression (each pair must match), and the ``for``."""

    def change(rule: dict[str, Any]) -> None:
        expr = rule["expr"]
        for old, new in pairs:
            assert old in expr, f"{old!r} is not in the expression of {rule['alert']}"
            expr = expr.replace(old, new)
        rule["expr"] = expr
        if duration is not None:
            rule["for"] = duration

    return change


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

    @classmethod
    def required(cls) -> Tools:
        """The Debian packages' binaries (skipped locally, a failure under CI=true, if missing)."""
        return cls(require_tool("prometheus"), require_tool("prometheus-alertmanager"))


def serves_canary(ports: Ports, version: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            view = httpx.get(f"http://127.0.0.1:{ports.serving}/model", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return False
        return bool(view.get("canary")) and view["canary"]["version"] == version

    return check


def start_stack(
    processes: Processes,
    tools: Tools,
    deployed: Deployed,
    ports: Ports,
    work: Path,
    rules: Sequence[Path],
    *,
    canary: int,
    repeat_interval: str = "1m",
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
            repeat_interval=repeat_interval,
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
            rule_files=rules,
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
    processes.until(
        "serving", serves_canary(ports, canary), START_DEADLINE_S,
        "service serving champion and canary",
    )  # fmt: skip
    return {
        **deployed.env,
        "MLPLAT_MONITOR_ENVIRONMENT": "production",
        "MLPLAT_MONITOR_WEBHOOK_TOKEN": TOKEN,
    }


def start_controller(
    processes: Processes,
    env: dict[str, str],
    ports: Ports,
    *,
    canary_live: bool = True,
    interval: float = 1.0,
) -> None:
    processes.start(
        "controller",
        [sys.executable, "-m", "mlplat", "monitor", "--host", "127.0.0.1",
         "--port", str(ports.controller), "--interval", f"{interval:g}",
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


def start_traffic(
    processes: Processes, deployed: Deployed, ports: Ports, out: Path, *, duration: int
) -> None:
    """Generated loan applications at 40 requests/s from 8 concurrent senders, 20 % labelled."""
    processes.start(
        "traffic",
        ["sh", "-c", f'exec "$0" -m mlplat traffic --url http://127.0.0.1:{ports.serving} '
         f"--rate 40 --duration {duration} --concurrency 8 --label-fraction 0.2 --json > {out}",
         sys.executable],
        deployed.env,
    )  # fmt: skip


def prometheus_query(ports: Ports, promql: str) -> list[dict[str, Any]]:
    """An instant query's vector."""
    body = httpx.get(
        f"http://127.0.0.1:{ports.prometheus}/api/v1/query", params={"query": promql}, timeout=5
    ).json()
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def controller_sample(ports: Ports, name: str, **labels: str) -> float:
    """One sample of the controller's own ``/metrics`` (0 when absent)."""
    text = httpx.get(f"http://127.0.0.1:{ports.controller}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0
