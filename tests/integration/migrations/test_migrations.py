"""``mlplat db upgrade``: Alembic migrations of the events store and the inference log.

On real SQLite files and a real PostgreSQL database: the migrated schema is exactly the one
the services define (Alembic's own comparison finds no difference), tables a service created
are adopted instead of recreated, an older log gains the columns it lacks with its rows kept,
the feature contract's columns follow the contract, and a conflict changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from interfaces.inference_log import log_tables
from migrations import (
    EVENTS,
    INFERENCE_LOG,
    MigrationError,
    UpgradeReport,
    current_revision,
    upgrade,
)
from registry.event_store import EventStore
from registry.event_table import metadata as events_metadata
from serving.inference_log import InferenceLogStore

pytestmark = pytest.mark.integration

CREDIT_CONTRACT = Path(__file__).parents[3] / "examples" / "credit" / "contract.yml"


def _log_metadata() -> sa.MetaData:
    metadata = sa.MetaData()
    log_tables(metadata)
    return metadata


def _differences(url: str, metadata: sa.MetaData) -> list[Any]:
    """What Alembic finds between the database and the services' table definitions."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            # Only this schema's tables: the other schema and the version table may share it.
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "include_name": lambda name, kind, _: (
                        kind != "table" or name in metadata.tables
                    ),
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'store.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_a_fresh_database_gets_exactly_the_services_schema(database_url: str) -> None:
    """Both schemas on one empty database: no difference from the live table definitions."""
    events = upgrade(EVENTS, database_url)
    log = upgrade(INFERENCE_LOG, database_url)
    assert (events.before, events.after, events.adopted) == (None, EVENTS.head(), False)
    assert (log.before, log.after, log.adopted) == (None, INFERENCE_LOG.head(), False)
    assert "age" in log.columns.added
    assert _differences(database_url, events_metadata) == []
    assert _differences(database_url, _log_metadata()) == []
    again = upgrade(INFERENCE_LOG, database_url)
    assert not again.changed, "a second upgrade must change nothing"
    assert current_revision(EVENTS, database_url) == EVENTS.head()


def test_tables_a_service_created_are_adopted_with_their_rows(database_url: str) -> None:
    """The services' own create_schema first: upgrade stamps, recreates nothing, keeps rows."""
    if database_url.startswith("sqlite"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True)
    store = EventStore(database_url)
    store.create_schema()
    store.dispose()
    log = InferenceLogStore(database_url)
    log.create_schema()
    with log.engine.begin() as conn:
        conn.execute(log.feedback.insert().values(request_id="r1", row=0, label=1, received_ts=1.0))
    log.close()

    events = upgrade(EVENTS, database_url)
    adopted = upgrade(INFERENCE_LOG, database_url)
    assert (events.adopted, events.before) == (True, EVENTS.head())
    assert (adopted.adopted, adopted.before, adopted.columns.added) == (
        True,
        INFERENCE_LOG.head(),
        (),
    )
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from inference_feedback")).scalar() == 1
    engine.dispose()


def test_an_older_log_gains_the_columns_it_lacks_and_keeps_its_rows(tmp_path: Path) -> None:
    """A log at the first release (no routing hash, no latency) is brought to the head."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        config = INFERENCE_LOG._config(conn)
        command.upgrade(config, "i0001")
        conn.execute(sa.text(f"drop table {INFERENCE_LOG.version_table}"))
        conn.execute(
            sa.text(
                "insert into inference_log (ts, request_id, row, variant, model_version, "
                "probability, prediction) values (1.0, 'old', 0, 'champion', 1, 0.2, 0)"
            )
        )
    report = upgrade(INFERENCE_LOG, url)
    assert (report.adopted, report.before, report.after) == (True, "i0001", "i0002")
    with engine.connect() as conn:
        row = conn.execute(sa.text("select request_id, routing_hash from inference_log")).one()
    engine.dispose()
    assert tuple(row) == ("old", None)
    assert _differences(url, _log_metadata()) == []


def test_an_unreachable_database_is_a_migration_error_naming_it() -> None:
    """A closed port: MigrationError with the schema, the URL without its password."""
    url = "postgresql://mlplat:s3cret@127.0.0.1:9/nowhere"
    with pytest.raises(MigrationError) as caught:
        upgrade(EVENTS, url)
    message = str(caught.value)
    assert message.startswith("events: cannot upgrade postgresql://mlplat:***@127.0.0.1:9/nowhere")
    assert "s3cret" not in message


# -- the command, with another contract in force ---------------------------------------------


def _contract(tmp_path: Path, edit: Any) -> Path:
    spec = yaml.safe_load(CREDIT_CONTRACT.read_text())
    edit(spec)
    path = tmp_path / "contract.yml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _db(
    tmp_path: Path, *args: str, contract: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLAT_", "MLFLOW_"))}
    env["MLPLAT_HOME"] = str(tmp_path / "home")
    if contract is not None:
        env["MLPLAT_CONTRACT"] = str(contract)
    return subprocess.run(
        [sys.executable, "-m", "mlplat", "db", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _added_feature(spec: dict[str, Any]) -> None:
    spec["features"].append(
        {
            "name": "savings",
            "kind": "float",
            "minimum": 0,
            "maximum": 1e7,
            "unit": "USD",
            "description": "Savings",
        }
    )
    spec["example"]["savings"] = 100.0


def _dropped_feature(spec: dict[str, Any]) -> None:
    spec["features"] = [f for f in spec["features"] if f["name"] != "open_accounts"]
    spec["example"].pop("open_accounts")


def _changed_kind(spec: dict[str, Any]) -> None:
    for f in spec["features"]:
        if f["name"] == "age":
            f.clear()
            f.update(
                {
                    "name": "age",
                    "kind": "category",
                    "categories": ["young", "old"],
                    "description": "Age band",
                }
            )
    spec["example"]["age"] = "young"


def test_the_command_follows_a_contract_change(tmp_path: Path) -> None:
    """A new feature gets a column; a dropped one is kept and named; JSON says what changed."""
    first = _db(tmp_path, "upgrade")
    assert first.returncode == 0, first.stderr
    added = _db(
        tmp_path, "upgrade", "--schema", "inference-log", "--json",
        contract=_contract(tmp_path, _added_feature),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    [report] = json.loads(added.stdout)
    assert report["columns"] == {"added": ["savings"], "kept": []}
    assert report["changed"] is True
    dropped = _db(
        tmp_path, "upgrade", "--schema", "inference-log",
        contract=_contract(tmp_path, _dropped_feature),
    )  # fmt: skip
    assert dropped.returncode == 0, dropped.stderr
    assert "columns kept that the contract no longer names: open_accounts" in dropped.stdout


def test_a_changed_kind_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    """Age a number in the log, a category in the contract: exit 1, the column named, no trace."""
    assert _db(tmp_path, "upgrade").returncode == 0
    log = tmp_path / "home" / "inference-log.db"
    refused = _db(
        tmp_path, "upgrade", "--schema", "inference-log",
        contract=_contract(tmp_path, lambda s: (_changed_kind(s), _added_feature(s))),
    )  # fmt: skip
    assert refused.returncode == 1
    assert "age is a number in the log but a category in the contract" in refused.stderr
    assert "Traceback" not in refused.stderr
    engine = sa.create_engine(f"sqlite:///{log}")
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("inference_log")}
    engine.dispose()
    assert "savings" not in columns, "the refused upgrade must add nothing"


def test_current_says_where_each_database_stands(tmp_path: Path) -> None:
    """Before: not under migration; after: up to date, for both schemas."""
    before = _db(tmp_path, "current")
    assert before.returncode == 0, before.stderr
    assert before.stdout.count("not under migration") == 2
    assert _db(tmp_path, "upgrade").returncode == 0
    after = _db(tmp_path, "current")
    assert f"events: {EVENTS.head()} — up to date" in after.stdout
    assert f"inference-log: {INFERENCE_LOG.head()} — up to date" in after.stdout


def test_concurrent_upgrades_on_postgresql_apply_once(postgres_url: str) -> None:
    """Four upgrades at once (pods' init containers, a retried Job): one applies, three see it."""
    reports: list[UpgradeReport] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            reports.append(upgrade(INFERENCE_LOG, postgres_url))
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(r.before or "" for r in reports) == ["", *[INFERENCE_LOG.head()] * 3]
    assert sum(bool(r.columns.added) for r in reports) == 1
