"""The pipeline as a user runs it: ``mlplat pipeline run`` in a fresh store, through the real CLI.

Each backend gets one store and one sequence of runs (bootstrap, a second snapshot, broken data, a
defective candidate); the tests then check each outcome, the exit codes, what MLflow holds and the
deployment events. The event store runs on SQLite and on the machine's PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SMALL_DATA = "data:\n  n_rows: 6000\n"


@dataclass
class Step:
    returncode: int
    summary: dict[str, Any]
    stderr: str


@dataclass
class Flow:
    env: dict[str, str]
    steps: dict[str, Step]


def mlplat(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlplat", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_step(env: dict[str, str], config: Path, *args: str) -> Step:
    done = mlplat(env, "pipeline", "run", "--json", "--config", str(config), *args)
    assert done.stdout.strip(), f"no JSON on stdout; stderr:\n{done.stderr}"
    return Step(done.returncode, json.loads(done.stdout), done.stderr)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def flow(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flow]:
    home = tmp_path_factory.mktemp(f"flow-{request.param}")
    config = home / "small.yml"
    config.write_text(SMALL_DATA)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLAT_", "MLFLOW_"))}
    env["MLPLAT_HOME"] = str(home / "store")
    env["MLPLAT_ACTOR"] = "pytest"
    admin_url = None
    database = None
    if request.param == "postgresql":
        admin_url = request.getfixturevalue("postgres_admin_url")
        database = f"mlplat_flow_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
        admin.dispose()
        env["MLPLAT_EVENTS_URL"] = (
            sa.engine.make_url(admin_url).set(database=database).render_as_string(False)
        )
    steps = {"bootstrap": run_step(env, config, "--seed", "42")}
    steps["second"] = run_step(env, config, "--seed", "7")
    steps["null-spike"] = run_step(env, config, "--seed", "11", "--scenario", "null-spike")
    steps["label-noise"] = run_step(env, config, "--seed", "13", "--scenario", "label-noise")
    yield Flow(env, steps)
    if admin_url and database:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


def test_first_run_on_an_empty_store_registers_version_1_as_champion(flow: Flow) -> None:
    """An empty registry has no champion to beat: the first model passing the floors is it."""
    step = flow.steps["bootstrap"]
    assert step.returncode == 0, step.stderr
    assert step.summary["outcome"] == "registered"
    assert step.summary["model_version"] == 1
    assert step.summary["alias"] == "champion"
    assert step.summary["gate"]["passed"] is True


def test_second_snapshot_becomes_challenger_through_the_gate(flow: Flow) -> None:
    """A clean new snapshot passes the gate against the champion and becomes challenger.

    Both snapshots come from the same world, so a rejection here would be a false alarm of the
    paired-bootstrap rule: the test pins that the gate does not reject on noise.
    """
    step = flow.steps["second"]
    assert step.returncode == 0, step.stderr
    assert step.summary["model_version"] == 2
    assert step.summary["alias"] == "challenger"
    gate = step.summary["gate"]
    assert gate["passed"] is True
    assert any("champion" in json.dumps(check) for check in gate["checks"]), "no comparison"


def test_null_spike_stops_at_validation_listing_failed_expectations(flow: Flow) -> None:
    """Broken data stops the run before training, exits 3 and names column, rule and value."""
    step = flow.steps["null-spike"]
    assert step.returncode == 3
    assert step.summary["outcome"] == "invalid-data"
    assert step.summary["failed_stage"] == "validate"
    assert step.summary["model_version"] is None
    assert any("debt_to_income" in reason for reason in step.summary["reasons"])
    assert "failed stage" in step.stderr


def test_label_noise_candidate_is_stopped_by_the_gate_with_its_reason(flow: Flow) -> None:
    """A defective candidate trains, loses to the champion, and nothing is registered."""
    step = flow.steps["label-noise"]
    assert step.returncode == 3
    assert step.summary["outcome"] == "rejected"
    assert step.summary["failed_stage"] == "gate"
    assert step.summary["reasons"], "a rejection must say why"


def test_every_alias_move_is_an_event(flow: Flow) -> None:
    """The event log shows the registration and the alias move of every registered version."""
    done = mlplat(flow.env, "pipeline", "history", "--json", "--limit", "100")
    assert done.returncode == 0, done.stderr
    events = json.loads(done.stdout)
    actions = [(e["action"], e["to_version"]) for e in events if e["status"] == "applied"]
    assert ("register", 1) in actions
    assert ("bootstrap", 1) in actions
    if flow.steps["second"].returncode == 0:
        assert ("register", 2) in actions
        assert ("challenger", 2) in actions
    assert all(e["actor"] == "pytest" for e in events)


def test_status_shows_the_aliases(flow: Flow) -> None:
    """``mlplat pipeline status`` reads the same state the registry holds."""
    done = mlplat(flow.env, "pipeline", "status")
    assert done.returncode == 0, done.stderr
    assert "champion   v1" in done.stdout


def test_unknown_scenario_is_a_clear_error_not_a_traceback(flow: Flow, tmp_path: Path) -> None:
    """A typo in a scenario name gets one line naming the valid scenarios, exit code 1."""
    done = mlplat(flow.env, "pipeline", "run", "--scenario", "null-spik")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "null-spike" in done.stderr
