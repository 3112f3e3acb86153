"""Real processes racing alias moves, and a real process dying mid-move.

The race (:mod:`benchmarks.race.harness`) runs four worker processes that promote, roll back, start
canaries, change weights and reject at once, with random stalls injected at every step of every
move; after each round MLflow and the event log must agree with no event attributed to "outside
mlplat". A few rounds per backend here (the CI budget); ``mlplat bench registry-race`` runs 500.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from benchmarks.race.harness import RaceConfig, run_race
from registry import (
    Action,
    DeploymentState,
    EventStatus,
    RegistrySettings,
    ensure_experiment,
    open_registry,
)
from tests.integration.conftest import MlflowServerFactory, PostgresDatabaseFactory

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROUNDS = 6


def _assert_no_divergence(config: RaceConfig) -> None:
    result = run_race(config)
    assert result.divergences == [], result.divergences
    assert len(result.round_seconds) == ROUNDS
    errors = {k: n for k, n in result.outcomes.items() if ":error:" in k}
    assert errors == {}
    assert any(k.endswith(":moved") for k in result.outcomes)


def test_racing_processes_on_sqlite_never_diverge(tmp_path: Path) -> None:
    """SQLite MLflow store + SQLite event log, shared by four processes: zero divergences."""
    _assert_no_divergence(
        RaceConfig(
            tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
            events_url=f"sqlite:///{tmp_path / 'events.db'}",
            home=tmp_path,
            rounds=ROUNDS,
            max_stall_s=0.05,
            seed=1,
        )
    )


def test_racing_processes_on_postgres_never_diverge(
    tmp_path: Path,
    postgres_database: PostgresDatabaseFactory,
    mlflow_server: MlflowServerFactory,
) -> None:
    """``mlflow server`` on PostgreSQL + PostgreSQL event log: zero divergences."""
    server = mlflow_server(postgres_database(), tmp_path / "artifacts")
    _assert_no_divergence(
        RaceConfig(
            tracking_uri=server,
            events_url=postgres_database(),
            home=tmp_path,
            rounds=ROUNDS,
            max_stall_s=0.05,
            seed=2,
        )
    )


_DIE_MID_PROMOTE = """
import sys
from registry import RegistrySettings, open_registry
settings = RegistrySettings(
    home=sys.argv[1], tracking_uri=sys.argv[4], events_url=sys.argv[5], actor="doomed",
    lock_lease_seconds=float(sys.argv[3]),
    failpoints="registry.after_alias_write=exit",
)
open_registry(settings).promote(int(sys.argv[2]), reason="dies after the alias write")
"""


def test_a_killed_movers_half_done_move_is_finished_only_after_its_lease(tmp_path: Path) -> None:
    """A process killed after its alias write: untouched while its lease runs, then completed."""
    lease_s = 4.0
    settings = RegistrySettings(
        home=tmp_path,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        events_url=f"sqlite:///{tmp_path / 'events.db'}",
        actor="it",
    )
    registry = open_registry(settings)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    experiment = ensure_experiment(client, settings.experiment_name, None)
    runs = [client.create_run(experiment) for _ in range(2)]
    v1, v2 = (
        registry.register(f"runs:/{r.info.run_id}/model", r.info.run_id, {}, reason="trained")
        for r in runs
    )
    registry.bootstrap(v1, reason="first")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLAT_", "MLFLOW_"))}
    died = subprocess.run(
        [
            sys.executable,
            "-c",
            _DIE_MID_PROMOTE,
            str(tmp_path),
            str(v2),
            str(lease_s),
            settings.tracking_uri,
            settings.events_url,
        ],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert died.returncode == 137, died.stderr.decode()[-2000:]
    [pending] = registry.events.pending(registry.model_name)
    assert (registry.events.lock_holder(registry.model_name).owner or "").startswith("doomed#")

    assert registry.reconcile() == []  # its lease still runs: it might be alive, hands off
    assert registry.events.pending(registry.model_name) == [pending]

    deadline = time.monotonic() + 3 * lease_s
    repaired = registry.reconcile()
    while not repaired and time.monotonic() < deadline:
        time.sleep(0.2)
        repaired = registry.reconcile()
    assert [(e.id, e.status) for e in repaired] == [(pending.id, EventStatus.APPLIED)]
    assert registry.state() == DeploymentState(champion=v2, previous_champion=v1)
    actions = [e.action for e in registry.history()]
    assert Action.EXTERNAL not in actions


_OPEN_FRESH_STORE = """
import sys
from registry import RegistrySettings, open_registry
open_registry(RegistrySettings(home=sys.argv[1], actor=sys.argv[2]))
print("opened")
"""


def test_first_runs_racing_on_a_fresh_sqlite_store_all_open_it(tmp_path: Path) -> None:
    """Three processes creating the same fresh MLflow SQLite store: no migration traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLAT_", "MLFLOW_"))}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_FRESH_STORE, str(tmp_path / "home"), f"run-{i}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(3)
    ]
    outputs = [p.communicate(timeout=180) for p in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()[-3000:]
        assert b"Traceback" not in err
        assert out.strip() == b"opened"
