"""The controller on a real registry (local SQLite MLflow store), with fake metrics and log.

Each test gets its own registered model and event log; the MLflow store (seconds to migrate)
is shared by the module. The judge is the real one where the numbers matter, and a stub that
answers a fixed verdict where only the controller's reaction to a verdict is pinned.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from mlflow import MlflowClient
from prometheus_client import CollectorRegistry

from benchmarks.log_traffic import Traffic, World, as_records
from interfaces.routing import Variant
from mlplat.monitor import monitor
from monitoring.app import create_app
from monitoring.cli import EXIT_HELD
from monitoring.controller import AlertNotice, Controller, RetrainDecision, RetrainRequest
from monitoring.drift import DriftConfig, DriftDetector
from monitoring.judge import CanaryJudge, JudgeConfig, JudgeResult, Verdict
from monitoring.judge.counters import VariantCounts
from monitoring.metrics import ControllerMetrics
from monitoring.settings import MonitorSettings
from monitoring.settings import get_settings as monitor_settings
from monitoring.sources import (
    InferenceLogReader,
    InferenceLogSource,
    ReferenceNotFound,
    RunArtifacts,
    ScrapeSource,
    SourceName,
    SourceUnavailable,
)
from pipeline.data import default_probability, generate
from pipeline.scenarios import apply_scenario
from registry import Action, EventStatus, EventStore, ModelRegistry, RegistryUnavailable
from registry import get_settings as registry_settings
from serving.app import create_app as serving_app
from serving.deployment import DesiredState
from serving.inference_log import InferenceLogStore
from serving.reconcile import SMOKE_ROW
from serving.schemas import EXAMPLE_RECORD
from serving.settings import ServingSettings

with warnings.catch_warnings():
    # starlette 1.x asks for httpx2; httpx still works. Narrow to this import.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.unit

TOKEN = "unit-test-webhook-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WINDOW = 60.0
_models = itertools.count(1)


class SimulatedCrash(BaseException):
    """Stands in for the process dying: not an ``Exception``, so nothing on the way catches it."""


# --- stores ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One migrated MLflow SQLite store for the module (migrating takes seconds)."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_experiment("monitoring", artifact_location=(root / "artifacts").as_uri())
    return uri


@pytest.fixture(scope="module")
def mlflow_client(mlflow_uri: str) -> MlflowClient:
    """A client on the module's store (each new client re-checks the schema: share one)."""
    return MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)


@dataclass
class Stores:
    """A registered model of its own: champion v1, and v2 as a 20 % canary."""

    client: MlflowClient
    registry: ModelRegistry
    events_url: str
    model: str
    champion: int
    canary: int
    run_ids: dict[int, str]

    def reopen(self) -> ModelRegistry:
        """The registry as a restarted process opens it."""
        return ModelRegistry(self.client, EventStore(self.events_url), self.model, "controller")

    def events(self, action: Action) -> list[Any]:
        return [
            e
            for e in self.registry.events.history(self.model, 100)
            if e.action is action and e.status is EventStatus.APPLIED
        ]


@pytest.fixture
def stores(mlflow_client: MlflowClient, tmp_path: Path) -> Stores:
    client = mlflow_client
    experiment = client.get_experiment_by_name("monitoring")
    assert experiment is not None
    model = f"credit-monitor-{next(_models)}"
    events_url = f"sqlite:///{tmp_path / 'events.db'}"
    events = EventStore(events_url)
    events.create_schema()
    registry = ModelRegistry(client, events, model, "controller")
    run_ids: dict[int, str] = {}
    for _ in range(2):
        run = client.create_run(experiment.experiment_id)
        version = registry.register(
            f"runs:/{run.info.run_id}/model", run.info.run_id, {"gate_verdict": "passed"},
            reason="trained",
        )  # fmt: skip
        run_ids[version] = run.info.run_id
    registry.bootstrap(1, reason="first champion")
    registry.start_canary(2, 0.2, reason="gate passed")
    return Stores(client, registry, events_url, model, 1, 2, run_ids)


# --- fakes ----------------------------------------------------------------------------------------


class Clock:
    """A settable clock anchored to real time (event times come from the real clock)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def after_canary_start(self, stores: Stores, seconds: float) -> None:
        start = stores.registry.state().challenger_since
        assert start is not None
        self.now = start + timedelta(seconds=seconds)


@dataclass
class FakeMetrics:
    """Counts the test sets; raises when ``down``."""

    name: SourceName = "scrape"
    champion: VariantCounts = field(default_factory=lambda: VariantCounts(5000, 5))
    canary: VariantCounts = field(default_factory=lambda: VariantCounts(1000, 1))
    down: bool = False
    calls: int = 0

    def counts(
        self, champion: int, canary: int, since: datetime, at: datetime
    ) -> dict[Variant, VariantCounts]:
        self.calls += 1
        if self.down:
            raise SourceUnavailable("scrape", "cannot scrape http://serving:8000/metrics")
        return {"champion": self.champion, "canary": self.canary}

    def close(self) -> None:
        pass


@dataclass
class FakeLog:
    """Scores and labels per variant; drift windows per variant; raises when ``down``."""

    windows: dict[Variant, pd.DataFrame] = field(default_factory=dict)
    down: bool = False

    def _check(self) -> None:
        if self.down:
            raise SourceUnavailable(
                "inference_log", "cannot read sqlite:///log.db", "stale_metrics"
            )

    def scores(
        self, variant: Variant, version: int, start: datetime, end: datetime
    ) -> npt.NDArray[np.float64]:
        self._check()
        return np.random.default_rng(version).uniform(0, 1, 600)

    def labelled(
        self, variant: Variant, version: int, start: datetime, end: datetime
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        self._check()
        return np.array([0.2, 0.8]), np.array([0, 1])

    def window(
        self, variant: Variant, version: int, start: datetime, end: datetime, max_rows: int
    ) -> pd.DataFrame:
        self._check()
        return self.windows.get(variant, pd.DataFrame()).tail(max_rows)

    def close(self) -> None:
        pass


class StubJudge(CanaryJudge):
    """The real judge's numbers with a verdict the test chooses."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(JudgeConfig())
        self.verdict = verdict
        self.windows: list[int] = []

    def evaluate(self, *args: Any, **kwargs: Any) -> JudgeResult:
        real = super().evaluate(*args, **kwargs)
        self.windows.append(real.window)
        return real.model_copy(update={"verdict": self.verdict, "reason": f"stub: {self.verdict}"})


def no_reference(version: int) -> DriftDetector:
    raise ReferenceNotFound(f"model version {version} has no reference sample in this test")


class QuickReportDetector(DriftDetector):
    """A real detector whose HTML report is a stub (Evidently's report is tested elsewhere)."""

    def write_html_report(
        self, current: pd.DataFrame, path: Path, title: str | None = None
    ) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"<html>{title}: {len(current)} rows</html>", encoding="utf-8")
        return path


def scored(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return frame.assign(**{column: default_probability(frame)})


@pytest.fixture(scope="module")
def detector() -> QuickReportDetector:
    """A detector on a generated reference; calibrations are cached across the module's tests."""
    reference = scored(generate(2_000, seed=1), "prediction")
    return QuickReportDetector(reference, DriftConfig(calibration_chunks=30))


def settings_for(tmp_path: Path, **changes: Any) -> MonitorSettings:
    values: dict[str, Any] = {
        "home": tmp_path / "home",
        "environment": "dev",
        "webhook_token": TOKEN,
        "judge_window_seconds": WINDOW,
        "min_canary_seconds": 120.0,
        "min_canary_requests": 100,
        "drift_interval_seconds": 3600.0,
        "drift_report_dir": tmp_path / "reports",
        **changes,
    }
    return MonitorSettings(**values)


@dataclass
class Rig:
    """A controller and everything around it."""

    controller: Controller
    stores: Stores
    clock: Clock
    metrics: FakeMetrics
    log: FakeLog
    judge: CanaryJudge
    gauges: ControllerMetrics
    retrains: list[RetrainRequest]
    attached: list[tuple[int, Path]]

    def sample(self, name: str, **labels: str) -> float | None:
        return self.gauges.registry.get_sample_value(name, labels)

    def restarted(self, registry: ModelRegistry | None = None) -> Controller:
        """A new controller process on the same stores (nothing carried over in memory)."""
        c = self.controller
        return Controller(
            registry or self.stores.reopen(), self.metrics, self.log, self.judge,
            c.drift_detector_factory, self.gauges, self.clock, c.settings,
            retrain_trigger=c.retrain_trigger, attach_report=c.attach_report,
        )  # fmt: skip


@pytest.fixture
def rig_factory(stores: Stores, tmp_path: Path) -> Callable[..., Rig]:
    def build(
        judge: CanaryJudge | None = None,
        detector_factory: Callable[[int], DriftDetector] = no_reference,
        **setting_changes: Any,
    ) -> Rig:
        clock, metrics, log = Clock(), FakeMetrics(), FakeLog()
        gauges = ControllerMetrics(CollectorRegistry())
        retrains: list[RetrainRequest] = []
        attached: list[tuple[int, Path]] = []

        def retrain(request: RetrainRequest) -> RetrainDecision:
            retrains.append(request)
            return RetrainDecision(True, "drift: test trigger fires")

        def attach(version: int, path: Path) -> str:
            attached.append((version, path))
            return f"runs:/run-of-{version}/drift/{path.name}"

        judge = judge or CanaryJudge(JudgeConfig())
        controller = Controller(
            stores.registry, metrics, log, judge, detector_factory, gauges, clock,
            settings_for(tmp_path, **setting_changes), retrain_trigger=retrain,
            attach_report=attach,
        )  # fmt: skip
        return Rig(controller, stores, clock, metrics, log, judge, gauges, retrains, attached)

    return build


# --- verdicts and their actions -------------------------------------------------------------------


def test_a_canary_whose_error_rate_regresses_is_rejected_with_one_event_holding_the_verdict(
    rig_factory: Callable[..., Rig],
) -> None:
    """A canary whose error rate regresses is rolled back once; its event holds the verdict."""
    rig = rig_factory()
    rig.metrics.canary = VariantCounts(1000, 80)
    rig.clock.after_canary_start(rig.stores, WINDOW + 1)

    report = rig.controller.run_once()

    assert report.canary is not None
    assert report.canary.verdict is Verdict.ROLLBACK
    assert report.canary.action == "rejected"
    state = rig.stores.registry.state()
    assert state.challenger is None
    assert state.canary_weight == 0.0
    assert state.champion == 1
    assert rig.stores.registry.version(2).rejected
    (event,) = rig.stores.events(Action.REJECT)
    assert event.id == report.canary.event_id
    assert event.actor == "controller"
    assert event.reason.startswith("canary judge: roll back: error_rate")
    assert event.details["decided_by"] == "judge"
    assert event.details["counts"] == {
        "champion": {"requests": 5000, "errors": 5},
        "canary": {"requests": 1000, "errors": 80},
    }
    judgement = event.details["judgement"]
    assert isinstance(judgement, dict)
    assert judgement["verdict"] == "rollback"
    error_rate = next(s for s in judgement["signals"] if s["name"] == "error_rate")
    assert error_rate["decision"] == "worse"
    assert error_rate["ci_low"] > 0.001
    assert rig.sample("mlplat_canary_verdicts_total", verdict="rollback") == 1.0
    assert rig.sample("mlplat_canary_state", model_version="2", state="rolled_back") == 1.0

    again = rig.controller.run_once()
    assert again.canary is None
    assert len(rig.stores.events(Action.REJECT)) == 1


def test_promotes_only_after_the_minimum_time_and_sample(rig_factory: Callable[..., Rig]) -> None:
    """A healthy canary is promoted only once both its minimum time and sample are reached."""
    rig = rig_factory(StubJudge(Verdict.PROMOTE), min_canary_seconds=150.0)
    rig.clock.after_canary_start(rig.stores, WINDOW + 1)
    early = rig.controller.run_once()
    assert early.canary is not None
    assert early.canary.verdict is Verdict.PROMOTE
    assert early.canary.action is None
    assert "it has served 61 of the 150 s required" in early.canary.reason

    rig.metrics.canary = VariantCounts(50, 0)
    rig.clock.after_canary_start(rig.stores, 3 * WINDOW + 1)
    small = rig.controller.run_once()
    assert small.canary is not None
    assert small.canary.action is None
    assert "it has answered 50 of 100 requests" in small.canary.reason
    assert rig.stores.events(Action.PROMOTE) == []

    rig.metrics.canary = VariantCounts(1000, 0)
    rig.clock.after_canary_start(rig.stores, 4 * WINDOW + 1)
    report = rig.controller.run_once()
    assert report.canary is not None
    assert report.canary.action == "promoted"
    state = rig.stores.registry.state()
    assert (state.champion, state.challenger, state.previous_champion) == (2, None, 1)
    (event,) = rig.stores.events(Action.PROMOTE)
    assert event.details["outcome"] == "promoted"
    assert event.details["window"] == 4
    assert rig.sample("mlplat_canary_state", model_version="2", state="promoted") == 1.0


def test_inconclusive_pauses_the_canary_at_weight_zero_and_a_restart_still_reports_it_paused(
    rig_factory: Callable[..., Rig],
) -> None:
    """A canary the judge cannot decide is paused at weight 0; a restart still reports it."""
    rig = rig_factory(StubJudge(Verdict.INCONCLUSIVE))
    rig.clock.after_canary_start(rig.stores, WINDOW + 1)
    report = rig.controller.run_once()
    assert report.canary is not None
    assert report.canary.action == "paused"
    state = rig.stores.registry.state()
    assert state.challenger == 2
    assert state.canary_weight == 0.0
    assert not rig.stores.registry.version(2).rejected
    (pause,) = [e for e in rig.stores.events(Action.CANARY) if e.state.canary_weight == 0.0]
    assert pause.details["outcome"] == "paused"
    assert pause.reason.startswith("canary paused for a person to decide")

    rig.gauges.set_canary_state(None, None)
    rig.restarted().run_once()
    assert rig.sample("mlplat_canary_state", model_version="2", state="paused") == 1.0
    assert len([e for e in rig.stores.events(Action.CANARY) if e.state.canary_weight == 0]) == 1


def test_continue_changes_nothing_and_the_judge_looks_once_per_window(
    rig_factory: Callable[..., Rig],
) -> None:
    """While the evidence says continue, nothing moves and the judge looks once per window."""
    judge = StubJudge(Verdict.CONTINUE)
    rig = rig_factory(judge)
    before = rig.stores.registry.history()
    rig.clock.after_canary_start(rig.stores, WINDOW / 2)
    first = rig.controller.run_once()
    assert first.canary is not None
    assert "first judge window not complete" in first.canary.reason
    rig.clock.after_canary_start(rig.stores, WINDOW + 1)
    rig.controller.run_once()
    rig.clock.after_canary_start(rig.stores, WINDOW + 30)
    rig.controller.run_once()
    rig.clock.after_canary_start(rig.stores, 2 * WINDOW + 1)
    rig.controller.run_once()
    assert judge.windows == [1, 2]
    assert rig.stores.registry.history() == before
    assert rig.sample("mlplat_canary_state", model_version="2", state="observing") == 1.0
    assert rig.sample("mlplat_canary_verdicts_total", verdict="continue") == 2.0


# --- fail-safe ------------------------------------------------------------------------------------


@pytest.mark.parametrize("down", ["metrics", "log"])
def test_a_missing_source_makes_the_controller_hold_and_never_promote(
    rig_factory: Callable[..., Rig], down: str
) -> None:
    """Without its metrics source the controller holds and says why; it never promotes blind."""
    judge = StubJudge(Verdict.PROMOTE)
    rig = rig_factory(judge, min_canary_seconds=0.0)
    rig.metrics.down = down == "metrics"
    rig.log.down = down == "log"
    rig.clock.after_canary_start(rig.stores, 10 * WINDOW)
    report = rig.controller.run_once()
    assert report.held
    assert judge.windows == []
    assert rig.stores.events(Action.PROMOTE) == []
    assert rig.stores.registry.state().challenger == 2
    expected = "prometheus_unreachable" if down == "metrics" else "stale_metrics"
    assert report.hold_reasons == (expected,)
    assert "cannot judge canary 2" in report.held_because[0]
    assert rig.sample("mlplat_controller_holding", reason=expected) == 1.0

    rig.metrics.down = rig.log.down = False
    recovered = rig.controller.run_once()
    assert not recovered.held
    assert rig.sample("mlplat_controller_holding", reason=expected) == 0.0
    assert rig.stores.registry.state().champion == 2


def test_an_unreachable_registry_makes_the_controller_hold_and_say_why(
    rig_factory: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the registry down the controller holds and names the registry as the reason."""
    rig = rig_factory(StubJudge(Verdict.ROLLBACK))

    def down() -> None:
        raise RegistryUnavailable("http://mlflow:5000", "connection refused or host unreachable")

    monkeypatch.setattr(rig.stores.registry, "reconcile", down)
    report = rig.controller.run_once()
    assert report.hold_reasons == ("registry_unreachable",)
    assert "MLflow registry at http://mlflow:5000 is unavailable" in report.held_because[0]
    assert report.deployment is None
    assert rig.stores.events(Action.REJECT) == []
    assert rig.sample("mlplat_controller_holding", reason="registry_unreachable") == 1.0
    assert json.loads(json.dumps(report.to_dict()))["held"] is True


def test_a_rollback_that_fails_holds_and_is_retried_at_the_next_cycle(
    rig_factory: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rollback the registry refuses to carry out is held and retried at the next cycle."""
    judge = StubJudge(Verdict.ROLLBACK)
    rig = rig_factory(judge)
    registry = rig.stores.registry
    real_reject = registry.reject

    def mlflow_down(*args: Any, **kwargs: Any) -> Any:
        raise RegistryUnavailable("http://mlflow:5000", "request timed out")

    monkeypatch.setattr(registry, "reject", mlflow_down)
    rig.clock.after_canary_start(rig.stores, WINDOW + 1)
    failed = rig.controller.run_once()
    assert failed.hold_reasons == ("action_failed",)
    assert "could not reject canary 2" in failed.held_because[0]
    assert rig.stores.events(Action.REJECT) == []

    monkeypatch.setattr(registry, "reject", real_reject)
    rig.clock.after_canary_start(rig.stores, WINDOW + 5)  # same window
    retried = rig.controller.run_once()
    assert retried.canary is not None
    assert retried.canary.action == "rejected"
    assert judge.windows == [1, 1]
    assert len(rig.stores.events(Action.REJECT)) == 1


# --- restarts -------------------------------------------------------------------------------------


def test_killed_right_after_the_rollback_a_restarted_controller_writes_no_second_event(
    rig_factory: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A controller restarted after its rollback landed writes no second rollback event."""
    rig = rig_factory(StubJudge(Verdict.ROLLBACK))
    registry = rig.stores.registry
    real_reject = registry.reject

    def reject_then_die(*args: Any, **kwargs: Any) -> Any:
        real_reject(*args, **kwargs)
        raise SimulatedCrash("killed after the registry move, before the controller's bookkeeping")

    monkeypatch.setattr(registry, "reject", reject_then_die)
    rig.clock.after_canary_start(rig.stores, WINDOW + 1)
    with pytest.raises(SimulatedCrash):
        rig.controller.run_once()

    report = rig.restarted().run_once()
    assert report.canary is None
    assert len(rig.stores.events(Action.REJECT)) == 1
    assert rig.stores.reopen().state().challenger is None
    assert rig.sample("mlplat_canary_state", model_version="2", state="rolled_back") == 1.0


class CrashingClient:
    """An MLflow client that dies on its first write: a process killed inside the move."""

    def __init__(self, client: MlflowClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not name.startswith(("set_", "delete_")):
            return attribute

        def die(*args: Any, **kwargs: Any) -> Any:
            raise SimulatedCrash(f"killed before {name}{args}")

        return die


def test_killed_inside_the_rollback_a_restarted_controller_completes_it_once(
    rig_factory: Callable[..., Rig],
) -> None:
    """A controller killed inside a rollback completes it once after a restart."""
    rig = rig_factory(StubJudge(Verdict.ROLLBACK))
    stores = rig.stores
    dying = ModelRegistry(
        CrashingClient(stores.client),  # type: ignore[arg-type]
        EventStore(stores.events_url),
        stores.model,
        "controller",
    )
    rig.clock.after_canary_start(stores, WINDOW + 1)
    with pytest.raises(SimulatedCrash):
        rig.restarted(dying).run_once()
    assert [e.action for e in stores.registry.events.pending(stores.model)] == [Action.REJECT]

    report = rig.restarted().run_once()
    assert report.canary is None
    (event,) = stores.events(Action.REJECT)
    assert event.status_reason == "interrupted move completed by reconcile"
    assert event.details["judgement"]["verdict"] == "rollback"
    assert stores.registry.version(2).rejected
    assert stores.registry.state().challenger is None


# --- without Prometheus ---------------------------------------------------------------------------


class Scorer:
    """Scores 0.3; the defective version fails a batch holding any purpose but the example's."""

    def __init__(self, defective: bool) -> None:
        self.defective = defective

    def predict_proba(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:  # noqa: N803
        if self.defective and (X["loan_purpose"] != EXAMPLE_RECORD["loan_purpose"]).any():
            raise ValueError("found unknown categories in column loan_purpose")
        return np.tile([0.7, 0.3], (len(X), 1))


@dataclass
class FollowRegistry:
    """The service's model source: the test's registry, and a :class:`Scorer` per version."""

    registry: ModelRegistry

    def desired(self) -> DesiredState:
        state = self.registry.state()
        return DesiredState(state.champion, state.challenger, state.canary_weight)

    def load(self, version: int) -> Scorer:
        return Scorer(defective=version == 2)


def test_without_prometheus_the_services_own_metrics_and_log_roll_a_failing_canary_back(
    stores: Stores, tmp_path: Path
) -> None:
    """The embedded path (the demo): ScrapeSource on /metrics, the inference log, the judge."""
    stores.registry.set_canary_weight(0.5, reason="more traffic for a small sample")
    serving = ServingSettings(
        environment="dev", home=tmp_path / "serving", inference_log_flush_seconds=0.05,
        reconcile_interval_seconds=3600,
    )  # fmt: skip
    app = serving_app(serving, model_source=FollowRegistry(stores.registry))
    purposes = ("debt_consolidation", "car", "medical", "business")
    with TestClient(app) as service:
        gauges = ControllerMetrics(CollectorRegistry())
        clock = Clock()
        log = InferenceLogSource(InferenceLogReader(serving.resolved_inference_log_url))
        controller = Controller(
            stores.registry, ScrapeSource(service, ["http://testserver/metrics"]), log,
            CanaryJudge(JudgeConfig(error_rate_min_requests=50, latency_min_samples=20,
                                    psi_min_samples=50)),
            no_reference, gauges, clock, settings_for(tmp_path),
        )  # fmt: skip
        clock.after_canary_start(stores, 1)
        assert controller.run_once().canary is not None  # the scrape's zero
        answered = 0
        for i in range(700):
            record = {**EXAMPLE_RECORD, "customer_id": f"c-{i}", "loan_purpose": purposes[i % 4]}
            answered += service.post("/predict", json={"records": [record]}).status_code == 200
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while log.reader.count() < answered:
            assert datetime.now(UTC) < deadline, "the service did not flush its inference log"
            time.sleep(0.02)  # the poll interval; the deadline bounds the wait
        clock.after_canary_start(stores, WINDOW + 1)
        report = controller.run_once()
    assert report.canary is not None
    assert report.canary.verdict is Verdict.ROLLBACK
    assert report.canary.action == "rejected"
    (event,) = stores.events(Action.REJECT)
    assert event.details["metrics_source"] == "scrape"
    assert event.details["evidence_source"] == "inference log"
    counts = event.details["counts"]
    assert isinstance(counts, dict)
    assert counts["canary"]["errors"] > 0
    assert counts["champion"]["errors"] == 0
    assert stores.registry.state().challenger is None


# --- evidence from the inference log --------------------------------------------------------------


@dataclass
class LoggedWorld:
    """Rows of a canary's life (and a baseline before it) in a real SQLite inference log."""

    store: InferenceLogStore
    rows: pd.DataFrame
    start: float

    def count_up_to(self, rig: Rig, now: datetime) -> None:
        """Set the fake counters to what the service would have counted by ``now``."""
        seen = self.rows[(self.rows["ts"] >= self.start) & (self.rows["ts"] < now.timestamp())]
        for variant in ("champion", "canary"):
            mine = seen[seen["variant"] == variant]
            setattr(rig.metrics, variant, VariantCounts(len(mine), int(mine["failed"].sum())))


def _logged_world(
    rig: Rig, tmp_path: Path, traffic: Traffic, windows: int, *, seed: int
) -> LoggedWorld:
    """A real SQLite inference log holding ``windows`` of the canary's traffic and a baseline."""
    start = rig.stores.registry.state().challenger_since
    assert start is not None
    world = World(traffic, seed=seed)
    frame = pd.concat(
        [
            world.rows(start.timestamp() - 60 * WINDOW, 60, canary=False),
            world.rows(start.timestamp(), windows),
        ]
    )
    store = InferenceLogStore(f"sqlite:///{tmp_path / f'judged-{seed}.db'}")
    store.create_schema()
    store.write(as_records(frame, list(SMOKE_ROW)))
    return LoggedWorld(store, frame, start.timestamp())


def _judge_windows(rig: Rig, controller: Controller, world: LoggedWorld, windows: int) -> list[Any]:
    reports = []
    for k in range(1, windows + 1):
        rig.clock.after_canary_start(rig.stores, k * WINDOW + 1)
        world.count_up_to(rig, rig.clock.now)
        report = controller.run_once()
        reports.append(report)
        if report.canary is None or report.canary.action is not None:
            break
    return reports


def _controller_on(rig: Rig, log: InferenceLogSource) -> Controller:
    c = rig.controller
    return Controller(
        rig.stores.registry, rig.metrics, log, rig.judge, c.drift_detector_factory, rig.gauges,
        rig.clock, c.settings,
    )  # fmt: skip


def test_clustered_identical_traffic_from_the_log_is_not_rolled_back(
    rig_factory: Callable[..., Rig], tmp_path: Path
) -> None:
    """A few hundred heterogeneous customers, identical variants: the loop keeps observing."""
    rig = rig_factory(min_canary_seconds=10 * WINDOW, min_canary_requests=10**6)
    traffic = Traffic(customer_error_sd=1.2, customer_latency_sd=0.6)
    world = _logged_world(rig, tmp_path, traffic, 12, seed=21)
    controller = _controller_on(rig, InferenceLogSource(InferenceLogReader(world.store.engine)))

    reports = _judge_windows(rig, controller, world, 12)

    verdicts = [r.canary.verdict for r in reports if r.canary is not None]
    assert Verdict.ROLLBACK not in verdicts
    assert rig.stores.registry.state().challenger == 2
    assert not any("cumulative counters" in note for r in reports for note in r.notes)


def test_a_canary_with_three_more_points_of_errors_in_the_log_is_rolled_back_from_it(
    rig_factory: Callable[..., Rig], tmp_path: Path
) -> None:
    """The event says the evidence came from the inference log, and which signal decided."""
    rig = rig_factory()
    world = _logged_world(rig, tmp_path, Traffic(canary_error=0.03), 12, seed=22)
    controller = _controller_on(rig, InferenceLogSource(InferenceLogReader(world.store.engine)))

    reports = _judge_windows(rig, controller, world, 12)

    assert reports[-1].canary is not None
    assert reports[-1].canary.action == "rejected"
    (event,) = rig.stores.events(Action.REJECT)
    assert event.details["evidence_source"] == "inference log"
    assert "error_rate" in event.details["signals"]


def test_a_log_table_from_an_older_release_is_judged_from_the_counters_and_says_so(
    rig_factory: Callable[..., Rig], tmp_path: Path
) -> None:
    """No per-row routing data: the cumulative counters decide, and the cycle notes why."""
    rig = rig_factory()
    store = InferenceLogStore(f"sqlite:///{tmp_path / 'old.db'}")
    store.create_schema()
    engine = store.engine
    with engine.begin() as conn:  # back to the tables an older release created
        conn.execute(sa.text("ALTER TABLE inference_log DROP COLUMN routing_hash"))
        conn.execute(sa.text("ALTER TABLE inference_log DROP COLUMN latency_s"))
        conn.execute(sa.text("DROP TABLE inference_failures"))
    rig.metrics.canary = VariantCounts(1000, 80)
    controller = _controller_on(rig, InferenceLogSource(InferenceLogReader(engine)))
    rig.clock.after_canary_start(rig.stores, WINDOW + 1)

    report = controller.run_once()

    assert report.canary is not None
    assert report.canary.action == "rejected"
    assert any("predates per-row routing data" in note for note in report.notes)
    (event,) = rig.stores.events(Action.REJECT)
    source = event.details["evidence_source"]
    assert isinstance(source, str)
    assert source.startswith("cumulative counters")


def test_a_log_holding_far_fewer_rows_than_the_counters_is_not_trusted(
    rig_factory: Callable[..., Rig], tmp_path: Path
) -> None:
    """Writes lagging or lost: the counters decide rather than a partial log."""
    rig = rig_factory()
    world = _logged_world(rig, tmp_path, Traffic(), 2, seed=23)
    controller = _controller_on(rig, InferenceLogSource(InferenceLogReader(world.store.engine)))
    rig.clock.after_canary_start(rig.stores, WINDOW + 1)
    world.count_up_to(rig, rig.clock.now)
    rig.metrics.canary = VariantCounts(rig.metrics.canary.requests * 3, 0)

    report = controller.run_once()

    assert any("writes lagging or lost" in note for note in report.notes)


# --- drift ----------------------------------------------------------------------------------------


def test_champion_input_drift_asks_for_a_retrain_exports_scores_and_never_rolls_back(
    rig_factory: Callable[..., Rig], detector: QuickReportDetector
) -> None:
    """Drift on the champion's inputs asks for a retrain and exports scores; it never rolls back."""
    rig = rig_factory(StubJudge(Verdict.CONTINUE), detector_factory=lambda version: detector)
    shifted = apply_scenario(generate(1_000, seed=5), "covariate-shift", 1.0, seed=5)
    rig.log.windows = {
        "champion": scored(shifted, "probability"),
        "canary": scored(generate(300, seed=6), "probability"),
    }
    rig.clock.after_canary_start(rig.stores, WINDOW + 1)

    report = rig.controller.run_once()

    champion = next(d for d in report.drift if d.variant == "champion")
    assert champion.status == "drift"
    assert champion.recommendation is not None
    assert "retrain" in champion.recommendation["actions"]  # type: ignore[operator]
    assert champion.report_path is not None
    assert Path(champion.report_path).is_file()
    (request,) = rig.retrains
    assert request.model_version == 1
    assert request.drifted_features == champion.drifted_features
    assert request.evidence == champion.report_path
    assert champion.retrain is not None
    assert champion.retrain["fire"] is True
    assert rig.sample("mlplat_drift_retrain_triggers_total") == 1.0
    feature = champion.drifted_features[0]
    score = rig.sample(
        "mlplat_feature_drift_score", feature=feature, variant="champion", model_version="1"
    )
    assert score is not None
    assert score > 0
    canary = next(d for d in report.drift if d.variant == "canary")
    assert canary.status in {"ok", "drift"}
    assert rig.stores.events(Action.REJECT) == []
    assert rig.stores.registry.state().challenger == 2


def test_the_report_of_a_judged_canary_is_written_and_attached_to_its_version(
    rig_factory: Callable[..., Rig], detector: QuickReportDetector
) -> None:
    """A judged canary's report is written to disk and attached to its model version."""
    rig = rig_factory(StubJudge(Verdict.ROLLBACK), detector_factory=lambda version: detector)
    rig.log.windows = {"canary": scored(generate(300, seed=8), "probability")}
    rig.clock.after_canary_start(rig.stores, WINDOW + 1)
    report = rig.controller.run_once()
    ((version, path),) = rig.attached
    assert version == 2
    assert path.is_file()
    assert path.name.startswith(f"{rig.stores.model}-v2-canary-")
    assert any("attached at runs:/run-of-2/drift/" in note for note in report.notes)


def test_run_artifacts_read_the_reference_and_attach_reports_in_mlflow(
    stores: Stores, tmp_path: Path
) -> None:
    """The MLflow artifacts source reads a run's reference sample and attaches reports to it."""
    artifacts = RunArtifacts(stores.client, stores.registry)
    with pytest.raises(ReferenceNotFound, match=r"has no reference/reference\.parquet"):
        artifacts.reference(2)
    reference = scored(generate(50, seed=3), "prediction")
    local = tmp_path / "reference.parquet"
    reference.to_parquet(local, index=False)
    stores.client.log_artifact(stores.run_ids[2], str(local), "reference")
    pd.testing.assert_frame_equal(artifacts.reference(2), reference)

    report = tmp_path / "v2.html"
    report.write_text("<html></html>", encoding="utf-8")
    where = artifacts.attach(2, report)
    assert where == f"runs:/{stores.run_ids[2]}/drift/v2.html"
    listed = [f.path for f in stores.client.list_artifacts(stores.run_ids[2], "drift")]
    assert listed == ["drift/v2.html"]


# --- the alert path -------------------------------------------------------------------------------


class RecordingJudge(CanaryJudge):
    """The real judge, recording the window index of every look."""

    def __init__(self) -> None:
        super().__init__(JudgeConfig())
        self.windows: list[int] = []

    def evaluate(self, *args: Any, **kwargs: Any) -> JudgeResult:
        result = super().evaluate(*args, **kwargs)
        self.windows.append(result.window)
        return result


def alert_payload(
    starts_at: datetime,
    status: str = "firing",
    component: str = "canary",
    alertname: str = "CanaryDegraded",
    fingerprint: str = "c0ffee1234",
    **labels: str,
) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": f'{{}}/{{component="canary"}}:{{alertname="{alertname}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "controller",
        "groupLabels": {"alertname": alertname},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": status,
                "labels": {
                    "alertname": alertname,
                    "component": component,
                    "signal": "error_rate",
                    "job": "mlplat-serving",
                    **labels,
                },
                "annotations": {"summary": "The canary is worse than the champion (error_rate)"},
                "startsAt": starts_at.isoformat(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=canary",
                "fingerprint": fingerprint,
            }
        ],
    }


def breaker_payload(starts_at: datetime, **labels: str) -> dict[str, Any]:
    values = {"breaker": "true", "signal": "server_error_share", "model_version": "2", **labels}
    return alert_payload(
        starts_at, alertname="CanaryCircuitBreaker", fingerprint="b4d1dea5", **values
    )


@pytest.fixture
def app_rig(rig_factory: Callable[..., Rig]) -> Iterator[tuple[Rig, TestClient]]:
    rig = rig_factory(RecordingJudge())
    app = create_app(rig.controller.settings, rig.controller, run_loop=False)
    with TestClient(app) as client:
        yield rig, client


def canary_start(rig: Rig) -> datetime:
    start = rig.stores.registry.state().challenger_since
    assert start is not None
    return start


def looks(rig: Rig) -> list[int]:
    judge = rig.judge
    assert isinstance(judge, RecordingJudge)
    return judge.windows


def test_webhook_refuses_a_missing_or_wrong_token(app_rig: tuple[Rig, TestClient]) -> None:
    """The Alertmanager webhook answers 401 without a token and 403 with a wrong one."""
    rig, client = app_rig
    body = alert_payload(canary_start(rig) + timedelta(seconds=30))
    missing = client.post("/alertmanager/webhook", json=body)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    wrong = client.post(
        "/alertmanager/webhook", json=body, headers={"Authorization": "Bearer not-the-token"}
    )
    assert wrong.status_code == 403
    assert rig.sample("mlplat_controller_webhook_requests_total", outcome="unauthorized") == 2.0
    assert rig.stores.registry.state().challenger == 2
    assert looks(rig) == []


def test_webhook_explains_a_malformed_payload(app_rig: tuple[Rig, TestClient]) -> None:
    """A malformed notification is a 422 that says what is wrong with it."""
    rig, client = app_rig
    response = client.post(
        "/alertmanager/webhook", json={"version": "4", "status": "firing"}, headers=AUTH
    )
    assert response.status_code == 422
    assert "alerts: Field required" in response.json()["detail"]
    not_json = client.post("/alertmanager/webhook", content=b"{", headers=AUTH)
    assert not_json.status_code == 422
    assert rig.sample("mlplat_controller_webhook_requests_total", outcome="invalid") == 2.0


def test_an_alert_on_a_healthy_canary_asks_the_judge_and_moves_nothing_when_it_says_continue(
    app_rig: tuple[Rig, TestClient],
) -> None:
    """CanaryDegraded is a reason to look, not a verdict: the judge says continue, nothing moves."""
    rig, client = app_rig
    before = rig.stores.registry.history()
    rig.clock.after_canary_start(rig.stores, WINDOW + 10)
    body = alert_payload(canary_start(rig) + timedelta(seconds=30), model_version="2")

    response = client.post("/alertmanager/webhook", json=body, headers=AUTH)

    assert response.status_code == 200
    (outcome,) = response.json()["outcomes"]
    assert outcome["outcome"] == "judged: continue"
    assert (outcome["action"], outcome["decided_by"]) == ("unchanged", "judge")
    assert outcome["window"] == 1
    assert outcome["event_id"] is None
    assert rig.stores.registry.history() == before
    assert rig.sample("mlplat_canary_verdicts_total", verdict="continue") == 1.0
    assert rig.sample("mlplat_controller_alerts_total", decided_by="judge", action="unchanged") == 1

    # A repeat within the same window is not another look (at most one extra look per window)...
    again = client.post("/alertmanager/webhook", json=body, headers=AUTH).json()["outcomes"][0]
    assert again["action"] == "ignored"
    assert "window 1 was already looked at on an alert" in again["reason"]
    # ...and the loop's own schedule is untouched: it still judges window 1, then window 2.
    rig.controller.run_once()
    rig.clock.after_canary_start(rig.stores, 2 * WINDOW + 5)
    rig.controller.run_once()
    third = client.post("/alertmanager/webhook", json=body, headers=AUTH).json()["outcomes"][0]
    assert (third["outcome"], third["window"]) == ("judged: continue", 2)
    assert looks(rig) == [1, 1, 2, 2]
    assert rig.stores.registry.history() == before


def test_an_alert_on_a_degraded_canary_rolls_it_back_through_the_judge(
    app_rig: tuple[Rig, TestClient],
) -> None:
    """The judge, asked by the alert mid-window, rolls back; the event says who and why."""
    rig, client = app_rig
    rig.metrics.canary = VariantCounts(1000, 80)
    rig.clock.after_canary_start(rig.stores, WINDOW / 2)  # the first window is not complete
    body = alert_payload(canary_start(rig) + timedelta(seconds=10), model_version="2")

    response = client.post("/alertmanager/webhook", json=body, headers=AUTH)

    assert response.status_code == 200
    (outcome,) = response.json()["outcomes"]
    assert outcome["outcome"] == "judged: rollback"
    assert (outcome["action"], outcome["decided_by"], outcome["window"]) == (
        "rolled_back", "judge", 1,
    )  # fmt: skip
    assert "error_rate" in outcome["signals"]
    (event,) = rig.stores.events(Action.REJECT)
    assert event.id == outcome["event_id"]
    assert event.reason.startswith("canary judge (looked on alert CanaryDegraded): roll back")
    assert event.details["decided_by"] == "judge"
    assert event.details["triggered_by"] == "alert CanaryDegraded"
    assert event.details["window"] == 1
    signals = event.details["signals"]
    assert isinstance(signals, list)
    assert "error_rate" in signals
    alerts = event.details["alerts"]
    assert isinstance(alerts, list)
    (alert,) = alerts
    assert isinstance(alert, dict)
    assert alert["fingerprint"] == "c0ffee1234"
    assert event.evidence is not None
    assert "CanaryDegraded" in event.evidence
    assert "http://prometheus:9090/graph" in event.evidence
    assert rig.stores.registry.version(2).rejected
    assert looks(rig) == [1]

    repeat = client.post("/alertmanager/webhook", json=body, headers=AUTH)
    assert repeat.json()["outcomes"][0]["action"] == "ignored"
    assert len(rig.stores.events(Action.REJECT)) == 1
    assert (
        rig.sample("mlplat_controller_alerts_total", decided_by="judge", action="rolled_back") == 1
    )


def test_the_loop_records_which_window_triggered_its_judgement(
    rig_factory: Callable[..., Rig],
) -> None:
    """Loop verdicts say ``triggered_by: window k`` and name the deciding signals."""
    rig = rig_factory()
    rig.metrics.canary = VariantCounts(1000, 80)
    rig.clock.after_canary_start(rig.stores, WINDOW + 1)
    report = rig.controller.run_once()
    assert report.canary is not None
    assert report.canary.triggered_by == "window 1"
    (event,) = rig.stores.events(Action.REJECT)
    assert event.details["triggered_by"] == "window 1"
    assert event.details["signals"] == list(report.canary.signals)
    assert "error_rate" in report.canary.signals


def test_the_circuit_breaker_rolls_back_without_the_judge_even_while_the_controller_holds(
    app_rig: tuple[Rig, TestClient],
) -> None:
    """The circuit-breaker alert rolls a canary back without the judge, even while holding."""
    rig, client = app_rig
    rig.metrics.down = True
    rig.clock.after_canary_start(rig.stores, 5 * WINDOW)
    assert rig.controller.run_once().held

    response = client.post(
        "/alertmanager/webhook",
        json=breaker_payload(canary_start(rig) + timedelta(seconds=30)),
        headers=AUTH,
    )

    (outcome,) = response.json()["outcomes"]
    assert outcome["outcome"] == "circuit breaker: rolled_back"
    assert (outcome["decided_by"], outcome["signals"]) == (
        "circuit_breaker",
        ["server_error_share"],
    )
    assert looks(rig) == []
    assert rig.stores.registry.state().challenger is None
    (event,) = rig.stores.events(Action.REJECT)
    assert event.details["decided_by"] == "circuit_breaker"
    assert event.details["signals"] == ["server_error_share"]
    assert event.details["triggered_by"] == "alert CanaryCircuitBreaker"
    assert event.reason.startswith("circuit breaker CanaryCircuitBreaker tripped")
    assert event.evidence is not None
    assert "b4d1dea5" in event.evidence
    assert (
        rig.sample(
            "mlplat_controller_alerts_total", decided_by="circuit_breaker", action="rolled_back"
        )
        == 1
    )


def test_while_the_controller_holds_a_canary_alert_cannot_be_judged_and_moves_nothing(
    app_rig: tuple[Rig, TestClient],
) -> None:
    """Without its inputs the judge cannot look; the alert alone never rolls back."""
    rig, client = app_rig
    rig.log.down = True
    rig.clock.after_canary_start(rig.stores, 2 * WINDOW)
    rig.metrics.canary = VariantCounts(1000, 800)
    body = alert_payload(canary_start(rig) + timedelta(seconds=30), model_version="2")

    (outcome,) = client.post("/alertmanager/webhook", json=body, headers=AUTH).json()["outcomes"]

    assert (outcome["action"], outcome["decided_by"]) == ("held", "none")
    assert "the judge could not look at canary 2" in outcome["reason"]
    assert "inference_log" in outcome["reason"]
    assert rig.stores.registry.state().challenger == 2
    assert looks(rig) == []
    rig.log.down = False
    # The hold spent no look: once the log answers, the same window can be looked at.
    (retry,) = client.post("/alertmanager/webhook", json=body, headers=AUTH).json()["outcomes"]
    assert retry["outcome"] == "judged: rollback"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"status": "resolved"}, "resolved notifications change nothing"),
        ({"component": "serving"}, "not a canary alert"),
        ({"model_version": "7"}, "the alert is about version 7; the canary is 2"),
        ({"before": "yes"}, "before canary 2 took traffic"),
        ({"breaker": "yes", "model_version": "7"}, "the alert is about version 7"),
        ({"breaker": "yes", "model_version": ""}, "must name the model_version"),
        ({"breaker": "yes", "before": "yes"}, "before canary 2 took traffic"),
    ],
    ids=[
        "resolved", "other-component", "other-version", "started-before-the-canary",
        "breaker-other-version", "breaker-without-version", "breaker-started-before",
    ],
)  # fmt: skip
def test_alerts_that_are_not_about_the_live_canary_are_ignored(
    app_rig: tuple[Rig, TestClient], payload: dict[str, str], reason: str
) -> None:
    """Stale alerts (another version, an earlier canary) neither trip, nor ask the judge."""
    rig, client = app_rig
    rig.metrics.canary = VariantCounts(1000, 800)
    change = dict(payload)
    offset = -30 if change.pop("before", None) else 30
    starts_at = canary_start(rig) + timedelta(seconds=offset)
    rig.clock.after_canary_start(rig.stores, 2 * WINDOW)
    if change.pop("breaker", None):
        body = breaker_payload(starts_at, **change)
        if change.get("model_version") == "":
            del body["alerts"][0]["labels"]["model_version"]
    else:
        body = alert_payload(starts_at, **change)
    response = client.post("/alertmanager/webhook", json=body, headers=AUTH)
    assert response.status_code == 200
    (outcome,) = response.json()["outcomes"]
    assert outcome["action"] == "ignored"
    assert reason in outcome["reason"]
    assert rig.stores.registry.state().challenger == 2
    assert looks(rig) == []


def test_webhook_answers_503_when_the_registry_is_down_so_alertmanager_retries(
    app_rig: tuple[Rig, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the registry down the webhook answers 503, so Alertmanager retries the notification."""
    rig, client = app_rig
    body = alert_payload(canary_start(rig) + timedelta(seconds=30))

    def down() -> None:
        raise RegistryUnavailable("http://mlflow:5000", "connection refused")

    monkeypatch.setattr(rig.stores.registry, "state", down)
    response = client.post("/alertmanager/webhook", json=body, headers=AUTH)
    assert response.status_code == 503
    assert "MLflow registry at http://mlflow:5000 is unavailable" in response.json()["detail"]


def test_judge_endpoint_answers_argo_with_the_verdict_and_never_an_error_while_holding(
    rig_factory: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GET /judge answers Argo Rollouts' web provider, always with a verdict.

    Continue before a look, rollback after one (also from a restarted controller, read off the
    registry), 200 with ``holding`` while the registry is down.
    """
    rig = rig_factory()
    with TestClient(create_app(rig.controller.settings, rig.controller, run_loop=False)) as c:
        first = c.get("/judge", params={"champion": 1, "canary": 2}).json()
        assert (first["verdict"], first["reason"]) == ("continue", "not judged yet")

        rig.metrics.canary = VariantCounts(1000, 80)
        rig.clock.after_canary_start(rig.stores, WINDOW + 1)
        rig.controller.run_once()
        after = c.get("/judge", params={"champion": 1, "canary": 2}).json()
        assert after["verdict"] == "rollback"
        assert after["window"] == 1

        unknown = c.get("/judge", params={"champion": 1, "canary": 99}).json()
        assert unknown["verdict"] == "unknown"
        bad = c.get("/judge", params={"champion": 1, "canary": "two"})
        assert bad.status_code == 422

    restarted = rig.restarted()
    with TestClient(create_app(rig.controller.settings, restarted, run_loop=False)) as c:
        again = c.get("/judge", params={"champion": 1, "canary": 2}).json()
        assert again["verdict"] == "rollback"

        def down(version: int) -> None:
            raise RegistryUnavailable("http://mlflow:5000", "connection refused")

        monkeypatch.setattr(restarted.registry, "version", down)
        held = c.get("/judge", params={"champion": 1, "canary": 2})
        assert held.status_code == 200
        assert held.json()["verdict"] == "continue"
        assert "unavailable" in held.json()["holding"]


def test_webhook_without_a_configured_token_is_disabled(
    rig_factory: Callable[..., Rig],
) -> None:
    """Without a configured token the webhook is disabled rather than open."""
    rig = rig_factory(webhook_token=None)
    with TestClient(create_app(rig.controller.settings, rig.controller, run_loop=False)) as client:
        response = client.post("/alertmanager/webhook", json={}, headers=AUTH)
    assert response.status_code == 503
    assert "MLPLAT_MONITOR_WEBHOOK_TOKEN" in response.json()["detail"]


# --- the webhook's limits on what it reads ----------------------------------------------------


def test_webhook_refuses_a_body_over_the_limit_declared_or_streamed(
    rig_factory: Callable[..., Rig],
) -> None:
    """413 for a body over the limit, whether its Content-Length says so or it streams in."""
    rig = rig_factory(RecordingJudge(), webhook_max_body_bytes=2048)
    app = create_app(rig.controller.settings, rig.controller, run_loop=False)
    big = b"x" * 4096

    def chunks() -> Iterator[bytes]:
        # No Content-Length: only counting while reading can stop this one.
        for _ in range(64):
            yield b"y" * 512

    with TestClient(app) as client:
        declared = client.post("/alertmanager/webhook", content=big, headers=AUTH)
        streamed = client.post("/alertmanager/webhook", content=chunks(), headers=AUTH)
        anonymous = client.post("/alertmanager/webhook", content=big)
        small = client.post(
            "/alertmanager/webhook",
            json=alert_payload(canary_start(rig) + timedelta(seconds=30), status="resolved"),
            headers=AUTH,
        )
    assert declared.status_code == 413
    assert "declares 4096 bytes; the limit is 2048" in declared.json()["detail"]
    assert streamed.status_code == 413
    assert "over the limit of 2048 bytes" in streamed.json()["detail"]
    # Without a token nothing is read: the caller learns it is unauthenticated, nothing more.
    assert anonymous.status_code == 401
    assert small.status_code == 200
    assert rig.sample("mlplat_controller_webhook_requests_total", outcome="too_large") == 2.0


def test_webhook_gives_up_on_a_body_that_trickles_in(rig_factory: Callable[..., Rig]) -> None:
    """408 when the body does not arrive within the time limit (a slow client holds nothing)."""
    rig = rig_factory(RecordingJudge(), webhook_body_timeout_seconds=0.2)
    app = create_app(rig.controller.settings, rig.controller, run_loop=False)
    sent: list[MutableMapping[str, Any]] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/alertmanager/webhook", "raw_path": b"/alertmanager/webhook",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 9200),
        "headers": [(b"authorization", f"Bearer {TOKEN}".encode()), (b"host", b"controller")],
    }  # fmt: skip
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b'{"version": "4", ', "more_body": True}
        await asyncio.sleep(3600)  # the rest never comes
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def call() -> None:
        await asyncio.wait_for(app(scope, receive, send), timeout=10)

    asyncio.run(call())
    (start,) = [m for m in sent if m["type"] == "http.response.start"]
    assert start["status"] == 408
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert b"did not arrive within 0.2 s" in body
    assert rig.sample("mlplat_controller_webhook_requests_total", outcome="timeout") == 1.0


def test_an_alert_that_moved_the_canary_wakes_the_loop_for_its_report(
    rig_factory: Callable[..., Rig],
) -> None:
    """After a breaker rollback the loop cycles at once (not after its interval) and reports."""
    rig = rig_factory(RecordingJudge(), interval_seconds=3600.0)
    stop = threading.Event()
    thread = threading.Thread(target=rig.controller.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while rig.controller.last_report is None:
            assert time.monotonic() < deadline, "no first cycle within 20 s"
            time.sleep(0.02)  # the poll interval; the deadline bounds the wait
        first = rig.controller.last_report
        notice = AlertNotice(
            "firing",
            {"alertname": "CanaryCircuitBreaker", "component": "canary", "breaker": "true",
             "model_version": "2", "signal": "server_error_share"},
            {}, canary_start(rig) + timedelta(seconds=1), "b4d1dea5",
        )  # fmt: skip
        (outcome,) = rig.controller.handle_alerts([notice])
        assert outcome.action == "rolled_back"
        while rig.controller.last_report is first:
            assert time.monotonic() < deadline, "the loop did not wake up after the rollback"
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(timeout=10)
    report = rig.controller.last_report
    assert report is not None
    assert any("report" in note and "canary 2" in note for note in report.notes), report.notes


def test_metrics_health_and_status_endpoints(app_rig: tuple[Rig, TestClient]) -> None:
    """/metrics, /health and /status answer with the controller's state."""
    rig, client = app_rig
    assert client.get("/status").status_code == 404
    rig.controller.run_once()
    status = client.get("/status").json()
    assert status["model_name"] == rig.stores.model
    assert status["deployment"]["challenger"] == 2
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["last_cycle_at"] == status["finished_at"]
    text = client.get("/metrics").text
    assert "mlplat_controller_last_cycle_timestamp_seconds" in text
    assert 'mlplat_canary_state{model_version="2",state="observing"} 1.0' in text


def test_the_app_runs_the_controller_loop_in_the_background(
    rig_factory: Callable[..., Rig],
) -> None:
    """The app's lifespan runs the controller loop in the background and stops it on exit."""
    rig = rig_factory(interval_seconds=0.05)
    with TestClient(create_app(rig.controller.settings, rig.controller)) as client:
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while client.get("/status").status_code != 200:
            assert datetime.now(UTC) < deadline, "no cycle finished within 20 s"
            time.sleep(0.02)  # the poll interval; the deadline bounds the wait
    assert rig.controller.last_report is not None


def test_alert_notice_keeps_everything_for_the_event() -> None:
    """An alert notice keeps every field the deployment event needs."""
    notice = AlertNotice("firing", {"alertname": "X"}, {}, datetime(2026, 1, 1, tzinfo=UTC), "f")
    assert notice.name == "X"
    assert json.dumps(notice.to_dict())


# --- the command line -----------------------------------------------------------------------------


def test_monitor_once_prints_the_cycle_report_and_exits_3_when_it_holds(
    stores: Stores, mlflow_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlplat monitor --once` prints the cycle report and exits 3 when the controller holds."""
    monkeypatch.setenv("MLPLAT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.setenv("MLPLAT_EVENTS_URL", stores.events_url)
    monkeypatch.setenv("MLPLAT_MODEL_NAME", stores.model)
    monkeypatch.setenv("MLPLAT_EXPERIMENT_NAME", "monitoring")
    monkeypatch.setenv("MLPLAT_MONITOR_JUDGE_WINDOW_SECONDS", "0.001")
    monkeypatch.setenv("MLPLAT_MONITOR_INFERENCE_LOG_URL", f"sqlite:///{tmp_path / 'log.db'}")
    registry_settings.cache_clear()
    monitor_settings.cache_clear()
    try:
        result = CliRunner().invoke(monitor, ["--once", "--scrape", "http://127.0.0.1:9/metrics"])
    finally:
        registry_settings.cache_clear()
        monitor_settings.cache_clear()
    assert result.exit_code == EXIT_HELD, result.output
    report = json.loads(result.output)
    assert report["held"] is True
    assert report["deployment"]["challenger"] == 2
    assert "cannot scrape http://127.0.0.1:9/metrics" in report["held_because"][0]
    assert stores.registry.state().challenger == 2


def test_monitor_refuses_bad_settings_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad monitor settings are one message and a non-zero exit, not a traceback."""
    monitor_settings.cache_clear()
    result = CliRunner().invoke(monitor, ["--once", "--prometheus-url", "ftp://prometheus"])
    assert result.exit_code == 1
    assert "prometheus_url" in result.output
    assert "must be an http:// or https:// URL" in result.output
    both = CliRunner().invoke(
        monitor, ["--prometheus-url", "http://p:9090", "--scrape", "http://s"]
    )
    assert both.exit_code == 2
    assert "not both" in both.output
