"""The controller reading a real PostgreSQL inference log through a proxy the test cuts.

The unit tests stand the log in with a fake that raises; this one cuts the real connection
(black-holed or refusing) between :class:`monitoring.sources.inference_log.InferenceLogSource` and
PostgreSQL. With a judge that would roll the canary back, the controller must hold with
``inference_log_unreachable`` and touch nothing; once the log answers again it acts.

The measured cycle times are written to ``controller-log-outage-figures.json`` in the test's
temporary directory and printed.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
import sqlalchemy as sa
from mlflow import MlflowClient
from prometheus_client import CollectorRegistry

from interfaces.routing import Variant
from monitoring.controller import Controller
from monitoring.drift import DriftDetector
from monitoring.judge import CanaryJudge, JudgeConfig, JudgeResult, Verdict
from monitoring.judge.counters import VariantCounts
from monitoring.metrics import ControllerMetrics
from monitoring.settings import MonitorSettings
from monitoring.sources import (
    InferenceLogReader,
    InferenceLogSource,
    ReferenceNotFound,
    SourceName,
)
from registry import Action, EventStatus, EventStore, ModelRegistry
from serving.inference_log import InferenceLogStore, InferenceRecord
from serving.reconcile import SMOKE_ROW
from tests.integration.conftest import PostgresDatabaseFactory
from tests.integration.serving.tcpproxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WINDOW = 60.0


class RollbackJudge(CanaryJudge):
    """The real judge's numbers, always answering "roll back": any action would show."""

    def __init__(self) -> None:
        super().__init__(JudgeConfig())
        self.calls = 0

    def evaluate(self, *args: Any, **kwargs: Any) -> JudgeResult:
        self.calls += 1
        real = super().evaluate(*args, **kwargs)
        return real.model_copy(update={"verdict": Verdict.ROLLBACK, "reason": "test: roll back"})


class HealthyCounts:
    """Prometheus stand-in: plenty of traffic, no errors."""

    name: SourceName = "scrape"

    def counts(
        self, champion: int, canary: int, since: datetime, at: datetime
    ) -> dict[Variant, VariantCounts]:
        return {"champion": VariantCounts(5000, 0), "canary": VariantCounts(1000, 0)}

    def close(self) -> None:
        pass


def _no_reference(version: int) -> DriftDetector:
    raise ReferenceNotFound(f"model version {version} has no reference sample in this test")


@pytest.fixture
def proxied_log(postgres_database: PostgresDatabaseFactory) -> Iterator[tuple[TcpProxy, str]]:
    """A PostgreSQL inference log with rows of both variants, and a proxy in front of it."""
    url = postgres_database()
    store = InferenceLogStore(url)
    now = time.time()
    try:
        store.create_schema()
        store.write(
            [
                InferenceRecord(now - i, f"r-{i}", 0, variant, version, 0.3, 0, SMOKE_ROW)
                for i in range(40)
                for variant, version in (("champion", 1), ("canary", 2))
            ]
        )
    finally:
        store.close()
    target = sa.engine.make_url(url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    try:
        yield proxy, target.set(port=proxy.port).render_as_string(hide_password=False)
    finally:
        proxy.close()


@pytest.mark.parametrize("mode", ["blackhole", "refuse"])
def test_a_cut_inference_log_makes_the_controller_hold_and_act_only_once_it_is_back(
    mlflow_server_url: str,
    proxied_log: tuple[TcpProxy, str],
    tmp_path: Path,
    mode: Literal["blackhole", "refuse"],
) -> None:
    """Log cut: held as inference_log_unreachable, judge not asked, registry untouched."""
    proxy, log_url = proxied_log
    client = MlflowClient(tracking_uri=mlflow_server_url, registry_uri=mlflow_server_url)
    name = f"credit-log-outage-{uuid.uuid4().hex[:8]}"
    experiment = client.create_experiment(name)
    events = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    events.create_schema()
    registry = ModelRegistry(client, events, name, "controller")
    for _ in range(2):
        run = client.create_run(experiment)
        registry.register(
            f"runs:/{run.info.run_id}/model", run.info.run_id, {"gate_verdict": "passed"},
            reason="trained",
        )  # fmt: skip
    registry.bootstrap(1, reason="first champion")
    registry.start_canary(2, 0.2, reason="gate passed")
    started = registry.state().challenger_since
    assert started is not None
    judge = RollbackJudge()
    gauges = ControllerMetrics(CollectorRegistry())
    settings = MonitorSettings(
        home=tmp_path / "home", environment="dev", webhook_token="t" * 32,
        judge_window_seconds=WINDOW, min_canary_seconds=0.0, min_canary_requests=100,
        drift_interval_seconds=3600.0, drift_report_dir=tmp_path / "reports",
    )  # fmt: skip
    log = InferenceLogSource(InferenceLogReader(log_url))
    controller = Controller(
        registry, HealthyCounts(), log, judge, _no_reference, gauges,
        lambda: started + timedelta(seconds=WINDOW + 1), settings,
    )  # fmt: skip
    before = registry.history()
    try:
        proxy.cut(mode)
        try:
            cycle_started = time.monotonic()
            held = controller.run_once()
            cycle_s = time.monotonic() - cycle_started
        finally:
            proxy.restore()
        assert "inference_log_unreachable" in held.hold_reasons, held.to_dict()
        assert any("inference_log" in why for why in held.held_because), held.held_because
        assert judge.calls == 0
        assert registry.history() == before
        assert registry.state().challenger == 2
        sample = gauges.registry.get_sample_value
        assert sample("mlplat_controller_holding", {"reason": "inference_log_unreachable"}) == 1
        # The cycle answers in bounded time even when the database swallows packets.
        assert cycle_s < 30, f"a cycle took {cycle_s:.1f} s"

        acted_started = time.monotonic()
        acted = controller.run_once()
        acted_s = time.monotonic() - acted_started
    finally:
        log.close()
    assert "inference_log_unreachable" not in acted.hold_reasons, acted.to_dict()
    assert judge.calls >= 1
    rejected = [
        e
        for e in registry.history()
        if e.action is Action.REJECT and e.status is EventStatus.APPLIED
    ]
    assert [e.from_version for e in rejected] == [2], (acted.to_dict(), datetime.now(UTC))
    assert registry.state().challenger is None
    figures = {"held_cycle_s": round(cycle_s, 2), "cycle_after_restore_s": round(acted_s, 2)}
    (tmp_path / "controller-log-outage-figures.json").write_text(json.dumps(figures))
    print(f"\ncontroller, inference log {mode}: {figures}")
