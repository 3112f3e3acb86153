"""Bring a database to the newest schema with Alembic, adopting one the services created.

Two schemas, each its own Alembic script folder and version table, so they can live in one
database or in two: the deployment-events store (:data:`EVENTS`) and the inference log
(:data:`INFERENCE_LOG`). :func:`upgrade` runs inside one transaction per database:

1. A database whose tables exist but carry no version table — created by a service at start,
   before migrations existed or in compose, where the services still create their own tables —
   is *adopted*: its revision is read off the tables present (:attr:`Schema.baseline`) and
   stamped, so only what it lacks is applied.
2. Alembic upgrades to the head revision.
3. For the inference log, the feature contract's columns are reconciled
   (:mod:`migrations.contract_columns`): a new feature gets its column, a dropped one is kept
   and reported, a changed kind stops the upgrade with the column named.

A database that cannot be reached, or a script that fails, raises :class:`MigrationError` with
the schema, the URL (password masked) and the cause; nothing is half-applied on PostgreSQL,
where DDL is transactional.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from interfaces.database_url import normalise_url
from migrations.contract_columns import ColumnChanges, ContractColumnError, sync_feature_columns

__all__ = [
    "EVENTS",
    "INFERENCE_LOG",
    "SCHEMAS",
    "MigrationError",
    "Schema",
    "UpgradeReport",
    "current_revision",
    "upgrade",
]

_HERE = Path(__file__).parent
CONNECT_TIMEOUT_SECONDS = 5


class MigrationError(RuntimeError):
    """A schema could not be brought up to date; the message names the schema and the cause."""


@dataclass(frozen=True)
class Schema:
    """One database schema under migration.

    Attributes:
        name: What the CLI and the errors call it.
        folder: The Alembic script folder (its ``env.py`` and ``versions/``).
        version_table: Where the applied revision is recorded (distinct per schema, so both
            can share one database).
        baseline: Reads an unversioned database and returns the revision its tables already
            match, or ``None`` when it holds none of them (then everything is applied).
        contract_columns: Whether the feature contract's columns are reconciled after upgrade.
    """

    name: str
    folder: Path
    version_table: str
    baseline: Callable[[sa.Inspector], str | None]
    contract_columns: bool = False

    def script(self) -> ScriptDirectory:
        """The Alembic script directory of this schema."""
        return ScriptDirectory.from_config(self._config())

    def head(self) -> str:
        """The newest revision this release knows."""
        head = self.script().get_current_head()
        assert head is not None, f"{self.folder} holds no revision"
        return head

    def _config(self, connection: Connection | None = None) -> Config:
        config = Config()
        config.set_main_option("script_location", str(self.folder))
        config.attributes["connection"] = connection
        config.attributes["version_table"] = self.version_table
        return config


def _events_baseline(inspector: sa.Inspector) -> str | None:
    return "e0001" if inspector.has_table("deployment_events") else None


def _inference_log_baseline(inspector: sa.Inspector) -> str | None:
    if not inspector.has_table("inference_log"):
        return None
    columns = {c["name"] for c in inspector.get_columns("inference_log")}
    return "i0002" if {"routing_hash", "latency_s"} <= columns else "i0001"


EVENTS = Schema("events", _HERE / "events", "mlplat_events_version", _events_baseline)
INFERENCE_LOG = Schema(
    "inference-log",
    _HERE / "inference_log",
    "mlplat_inference_log_version",
    _inference_log_baseline,
    contract_columns=True,
)
SCHEMAS: dict[str, Schema] = {s.name: s for s in (EVENTS, INFERENCE_LOG)}


@dataclass(frozen=True)
class UpgradeReport:
    """What :func:`upgrade` found and did to one database.

    Attributes:
        schema: The schema's name.
        url: The database URL, password masked.
        before: The revision before (``None``: an empty or unversioned database).
        after: The revision now (the head).
        adopted: The tables existed without a version table and were stamped ``before``.
        columns: The contract's columns added and the extra ones kept (inference log only).
    """

    schema: str
    url: str
    before: str | None
    after: str
    adopted: bool
    columns: ColumnChanges = field(default_factory=ColumnChanges)

    @property
    def changed(self) -> bool:
        """Whether anything was written (a revision applied, a stamp or a column added)."""
        return self.before != self.after or self.adopted or bool(self.columns.added)


def _engine(url: str) -> sa.Engine:
    """An engine for ``url``; a SQLite file's folder is created, as the services do."""
    url = normalise_url(url)
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        # libpq otherwise waits for the OS to give up on an unreachable host (minutes).
        return sa.create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS})
    return sa.create_engine(url)


def _masked(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def current_revision(schema: Schema, url: str) -> str | None:
    """The revision recorded in the database at ``url`` (``None``: not under migration yet).

    Raises:
        MigrationError: The database cannot be reached.
    """
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": schema.version_table})
            return context.get_current_revision()
    except SQLAlchemyError as exc:
        raise MigrationError(f"{schema.name}: cannot read {_masked(url)}: {_cause(exc)}") from exc
    finally:
        engine.dispose()


def upgrade(schema: Schema, url: str) -> UpgradeReport:
    """Bring the database at ``url`` to ``schema``'s head (see the module docstring).

    Raises:
        MigrationError: The database cannot be reached, a script fails, or the contract's
            columns conflict with the table's; nothing of this call is kept on PostgreSQL.
    """
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            return _upgrade(schema, conn, _masked(url))
    except MigrationError:
        raise
    except ContractColumnError as exc:
        raise MigrationError(f"{schema.name} at {_masked(url)}: {exc}") from exc
    except SQLAlchemyError as exc:
        raise MigrationError(
            f"{schema.name}: cannot upgrade {_masked(url)}: {_cause(exc)}"
        ) from exc
    finally:
        engine.dispose()


def _upgrade(schema: Schema, conn: Connection, url: str) -> UpgradeReport:
    if conn.dialect.name == "postgresql":
        # Two upgrades at once (a Job retried while its first try still runs, init containers
        # of several pods) wait for each other instead of both creating the same table.
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": schema.version_table}
        )
    config = schema._config(conn)
    context = MigrationContext.configure(conn, opts={"version_table": schema.version_table})
    before = context.get_current_revision()
    adopted = False
    if before is None:
        before = schema.baseline(sa.inspect(conn))
        if before is not None:
            command.stamp(config, before)
            adopted = True
    command.upgrade(config, "head")
    columns = sync_feature_columns(conn) if schema.contract_columns else ColumnChanges()
    return UpgradeReport(schema.name, url, before, schema.head(), adopted, columns)


def _cause(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).strip().splitlines()[0]
