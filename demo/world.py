"""The demo's world: a fresh store, the real service, the real controller, real traffic.

:class:`DemoWorld` wires the platform's own pieces on one machine, on loopback:

* a fresh store under ``<out>/store`` (SQLite MLflow, local artifacts, SQLite event log and
  inference log), so the demo is repeatable and never touches ``./.mlplat``;
* the inference service, ``mlplat serve``, as a child process;
* the monitoring controller, built by ``monitoring/wiring.py::build_controller`` with the service's
  own ``/metrics`` as its metrics source (no Prometheus) and the inference log, driven by calling
  :meth:`~monitoring.controller.Controller.run_once` on a short cycle in a background thread,
  every :class:`~monitoring.controller.CycleReport` kept;
* load from ``mlplat traffic`` child processes, with delayed labels;
* a sampler that reads the service's ``/metrics`` and the controller's drift gauges once a
  second for the timeline.

It is a context manager: leaving it (normally, on an exception or on Ctrl-C) stops the traffic,
the threads and the service, in that order, and waits for each.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Self, TypeVar

import httpx
from prometheus_client import CollectorRegistry

from ci.deploy import start_canary
from ci.triggers import drift
from demo.config import DemoConfig
from demo.paths import DemoPaths
from demo.processes import (
    ChildProcess,
    DemoProcessError,
    Loop,
    child_environment,
    free_port,
    mlplat_command,
)
from demo.samples import (
    Sample,
    TrafficStats,
    champion_drift_score,
    parse_service_metrics,
    traffic_stats,
)
from demo.training import DemoTrainer
from monitoring import Controller, ControllerMetrics, CycleReport, build_controller
from registry import DeploymentEvent, ModelRegistry, RegistrySettings, open_registry

__all__ = ["DemoProcessError", "DemoTimeout", "DemoWorld"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

MODEL_NAME = "credit-default"
SERVE_ATTEMPTS = 3
"""Starts of the service before a lost port is an error (:meth:`DemoWorld.wait_until_serving`)."""


class DemoTimeout(TimeoutError):  # noqa: N818 - reads as what happened
    """A wait ran out; the message says what was awaited."""


@dataclass
class DemoWorld:
    """The running platform of one demo run (see the module docstring).

    Args:
        config: The demo's knobs.
        paths: Where it writes.
        started_wall: Unix time the demo started (the timeline's zero).
    """

    config: DemoConfig
    paths: DemoPaths
    started_wall: float = field(default_factory=time.time)
    registry: ModelRegistry = field(init=False)
    registry_settings: RegistrySettings = field(init=False)
    trainer: DemoTrainer = field(init=False)
    controller: Controller | None = field(default=None, init=False)
    serving_url: str = field(default="", init=False)
    _serving: ChildProcess | None = field(default=None, init=False)
    _traffic: ChildProcess | None = field(default=None, init=False)
    _traffic_runs: int = field(default=0, init=False)
    _admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24), init=False)
    _reports: list[CycleReport] = field(default_factory=list, init=False)
    _samples: list[Sample] = field(default_factory=list, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _loops: list[Loop] = field(default_factory=list, init=False)
    _http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=5.0), init=False)
    stats: TrafficStats = field(default_factory=TrafficStats, init=False)

    # -- setup ---------------------------------------------------------------------------

    def open_store(self) -> None:
        """Create the empty store and open the registry (creates the MLflow schema)."""
        store = self.paths.store.absolute()
        self.registry_settings = RegistrySettings(
            home=store,
            tracking_uri=f"sqlite:///{store / 'mlflow.db'}",
            events_url=f"sqlite:///{store / 'events.db'}",
            artifact_root=store / "artifacts",
            model_name=MODEL_NAME,
            experiment_name=MODEL_NAME,
            actor="mlplat-demo",
        )
        self.registry = open_registry(self.registry_settings)
        self.trainer = DemoTrainer(
            self.registry, self.registry_settings, self.config.pipeline_config()
        )

    @property
    def inference_log_url(self) -> str:
        """The inference log the service writes and the controller reads."""
        return f"sqlite:///{self.paths.store.absolute() / 'inference-log.db'}"

    def _child_env(self) -> dict[str, str]:
        s = self.registry_settings
        return child_environment(
            os.environ,
            {
                "MLPLAT_HOME": str(s.home),
                "MLFLOW_TRACKING_URI": s.tracking_uri,
                "MLPLAT_EVENTS_URL": s.events_url,
                "MLPLAT_MODEL_NAME": s.model_name,
                "MLPLAT_EXPERIMENT_NAME": s.experiment_name,
                "MLPLAT_SERVING_ENVIRONMENT": "dev",
                "MLPLAT_SERVING_ADMIN_TOKEN": self._admin_token,
                "MLPLAT_SERVING_RECONCILE_INTERVAL_SECONDS": f"{self.config.serving_reconcile_s}",
                "MLPLAT_SERVING_INFERENCE_LOG_URL": self.inference_log_url,
                "MLPLAT_SERVING_INFERENCE_LOG_FLUSH_SECONDS": "0.25",
                "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            },
        )

    def start_serving(self) -> None:
        """Start ``mlplat serve`` on a free port; it loads the champion once there is one."""
        port = free_port()
        self.serving_url = f"http://127.0.0.1:{port}"
        self._serving = ChildProcess(
            "mlplat serve",
            mlplat_command("serve", "--port", str(port), "--log-level", "warning"),
            self._child_env(),
            self.paths.logs / "serving.log",
        )
        self._serving.start()

    def wait_until_serving(self) -> float:
        """Wait until the service answers ``/ready`` (a champion is loaded); return seconds.

        The port was free when it was picked, but the probe had to let go of it before the
        service could bind it, so another process may have taken it meanwhile. The service then
        exits with "address already in use": it is started again on a new port, up to
        :data:`SERVE_ATTEMPTS` times.

        Raises:
            DemoProcessError: The service exited or did not get ready in time.
        """
        for attempt in range(1, SERVE_ATTEMPTS + 1):
            assert self._serving is not None, "start_serving first"
            try:
                return self._serving.wait_until_ready(
                    f"{self.serving_url}/ready", self.config.startup_timeout_s
                )
            except DemoProcessError:
                if attempt == SERVE_ATTEMPTS or not self._serving.lost_its_port():
                    raise
                logger.warning("%s lost its port to another process; new port", self._serving)
                self.start_serving()
        raise AssertionError("unreachable: the last attempt returns or raises")

    def start_controller(self) -> None:
        """Build the real controller from settings and drive it on the demo's cycle."""
        settings = self.config.monitor_settings(
            home=self.paths.store.absolute(),
            serving_url=self.serving_url,
            inference_log_url=self.inference_log_url,
            report_dir=self.paths.reports.absolute(),
        )
        controller_registry = self.registry_settings.model_copy(
            update={"actor": "mlplat-controller (demo)"}
        )
        self.controller = build_controller(
            settings,
            controller_registry,
            metrics=ControllerMetrics(CollectorRegistry(auto_describe=True)),
            retrain_rule=drift,
        )
        loop = Loop("mlplat-demo-controller", self._cycle, self.config.controller_interval_s)
        self._loops.append(loop)
        loop.start()

    def start_sampler(self) -> None:
        """Sample the service's and the controller's metrics once a second."""
        loop = Loop("mlplat-demo-sampler", self._sample, 1.0)
        self._loops.append(loop)
        loop.start()

    # -- the loops -----------------------------------------------------------------------

    def _cycle(self) -> None:
        assert self.controller is not None
        report = self.controller.run_once()
        with self._lock:
            self._reports.append(report)

    def _sample(self) -> None:
        if not self.serving_url:
            return
        try:
            response = self._http.get(f"{self.serving_url}/metrics")
            response.raise_for_status()
            drift = champion_drift_score(self.controller)
            sample = parse_service_metrics(response.text, self.elapsed(), drift)
        except (httpx.HTTPError, ValueError) as exc:
            logger.debug("sampler: no sample this second: %s", exc)
            return
        with self._lock:
            self._samples.append(sample)
            recent = [s for s in self._samples if s.t >= sample.t - 5.0]
        self.stats = traffic_stats(recent)

    # -- what scenarios use --------------------------------------------------------------

    def elapsed(self, at: datetime | float | None = None) -> float:
        """Seconds since the demo started, now or at ``at`` (a datetime or a Unix time)."""
        if at is None:
            return time.time() - self.started_wall
        stamp = at.timestamp() if isinstance(at, datetime) else at
        return stamp - self.started_wall

    def reports(self, since: int = 0) -> list[CycleReport]:
        """The controller's cycle reports from index ``since`` on."""
        with self._lock:
            return list(self._reports[since:])

    def report_count(self) -> int:
        """How many cycle reports there are (an index for :meth:`reports`)."""
        with self._lock:
            return len(self._reports)

    def samples(self) -> list[Sample]:
        """Every sample so far, oldest first."""
        with self._lock:
            return list(self._samples)

    def start_traffic(self, scenario: str | None = None, magnitude: float | None = None) -> None:
        """Start ``mlplat traffic`` (stopping any running one) with the demo's rate and labels."""
        self.stop_traffic()
        c = self.config
        self._traffic_runs += 1
        args = [
            "traffic", "--url", self.serving_url, "--rate", f"{c.traffic_rate:g}",
            "--duration", f"{c.startup_timeout_s + 4 * c.scenario_timeout_s:g}",
            "--seed", str(c.traffic_seed + self._traffic_runs),
            "--label-delay", f"{c.label_delay_s:g}", "--label-fraction", f"{c.label_fraction:g}",
            "--concurrency", str(c.traffic_concurrency),
        ]  # fmt: skip
        if scenario is not None:
            args += ["--scenario", scenario]
            if magnitude is not None:
                args += ["--magnitude", f"{magnitude:g}"]
        name = f"traffic-{self._traffic_runs}"
        self._traffic = ChildProcess(
            f"mlplat traffic ({scenario or 'clean'})",
            mlplat_command(*args),
            self._child_env(),
            self.paths.logs / f"{name}.log",
        )
        self._traffic.start()

    def stop_traffic(self) -> None:
        """Stop the running traffic, if any (labels still in flight are dropped)."""
        if self._traffic is not None:
            self._traffic.stop()
            self._traffic = None

    def predictions_total(self) -> float:
        """Rows the service has scored since it started (0 if it cannot be read)."""
        try:
            response = self._http.get(f"{self.serving_url}/metrics")
            sample = parse_service_metrics(response.text, 0.0)
        except (httpx.HTTPError, ValueError):
            return 0.0
        return sum(sample.predictions.values())

    def wait_for_traffic(self, timeout_s: float) -> float:
        """Wait until the service scores new rows; return the Unix time they were first seen.

        Raises:
            DemoTimeout: No new rows within ``timeout_s``.
            DemoProcessError: The service or the traffic generator exited.
        """
        before = self.predictions_total()
        return self.wait(
            lambda: time.time() if self.predictions_total() > before else None,
            timeout_s,
            "the traffic generator's first requests",
            poll_s=0.2,
        )

    def start_canary(self, version: int, reason: str) -> DeploymentEvent:
        """Ship ``version`` as the canary through the deploy guardrails, and tell the service.

        Raises:
            InvalidMoveError: The guardrails refused (``ci/deploy.py::start_canary``).
        """
        event = start_canary(
            self.registry, version, self.config.canary_weight, reason=reason,
            evidence="mlplat demo",
        )  # fmt: skip
        if event is None:
            raise RuntimeError(f"version {version} already runs as the canary")
        self.reload_serving()
        return event

    def reload_serving(self) -> None:
        """Ask the service to read the registry now rather than at its next poll."""
        with contextlib.suppress(httpx.HTTPError):
            self._http.post(
                f"{self.serving_url}/admin/reload",
                headers={"Authorization": f"Bearer {self._admin_token}"},
            )

    def check_children(self) -> None:
        """Raise if the service or the traffic generator died.

        Raises:
            DemoProcessError: One exited; the message quotes its log.
        """
        for child in (self._serving, self._traffic):
            if child is not None:
                child.check_alive()

    def wait(
        self, probe: Callable[[], T | None], timeout_s: float, what: str, poll_s: float = 0.25
    ) -> T:
        """Poll ``probe`` until it returns something other than ``None``.

        Raises:
            DemoTimeout: It did not within ``timeout_s``.
            DemoProcessError: A child process died meanwhile.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            found = probe()
            if found is not None:
                return found
            self.check_children()
            if time.monotonic() > deadline:
                raise DemoTimeout(f"no {what} within {timeout_s:g} s")
            time.sleep(poll_s)

    # -- teardown ------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop traffic, the loops, the service; release connections. Safe to call twice.

        Every step runs even if an earlier one fails or a second Ctrl-C arrives; the first
        such exception is raised once all steps have had their turn.
        """
        first: BaseException | None = None
        for step in (self.stop_traffic, self._stop_loops, self._close_controller,
                     self._stop_serving, self._http.close):  # fmt: skip
            try:
                step()
            except BaseException as exc:
                logger.warning("cleanup step %s failed: %r", step.__name__, exc)
                first = first or exc
        if first is not None:
            raise first

    def _stop_loops(self) -> None:
        while self._loops:
            self._loops.pop().stop()

    def _close_controller(self) -> None:
        if self.controller is not None:
            self.controller.close()

    def _stop_serving(self) -> None:
        if self._serving is not None:
            self._serving.stop()
