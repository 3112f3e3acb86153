"""The three ways the store benchmark keeps the event log, behind one small interface.

* ``sqlite`` — the real ``deployment_events`` table (:mod:`registry.event_table`) in SQLite with
  the engine the registry uses (WAL, ``synchronous=NORMAL``,
  :func:`registry.database.create_engine`);
* ``postgres_relational`` — the same table in PostgreSQL;
* ``postgres_jsonb`` — a document-style table, one JSONB document per event, with the indexes a
  competent engineer would add: expression B-tree indexes on ``doc->>'model_name'``/status/id and
  on ``doc->>'created_at'`` (ISO-8601 text in the ``C`` collation sorts chronologically), plus a
  GIN ``jsonb_path_ops`` index for ad-hoc containment queries.

Writes go one transaction per event, as :class:`registry.EventStore` writes (durability per
event), or batched; reads are the monitoring queries of :data:`QUERIES`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from benchmarks.report import BenchmarkError
from benchmarks.store.events import ISO, as_doc
from registry.database import normalise_url, write_transaction
from registry.event_table import deployment_events, metadata

__all__ = [
    "DOC_DDL",
    "QUERIES",
    "PostgresDocumentStore",
    "PostgresRelationalStore",
    "SqliteStore",
    "Store",
    "scratch_postgres",
    "server_version",
]

QUERIES = ("current_state", "history_100", "window_1h", "window_1d")
"""The monitoring read queries, in report order."""

_DOCS = "deployment_event_docs"
DOC_DDL = (
    f"CREATE TABLE {_DOCS} (id bigserial PRIMARY KEY, doc jsonb NOT NULL)",
    f"CREATE INDEX ix_docs_model_status_id ON {_DOCS} ((doc->>'model_name'), (doc->>'status'), id)",
    f"CREATE INDEX ix_docs_created_at ON {_DOCS} ((doc->>'created_at') COLLATE \"C\")",
    f"CREATE INDEX ix_docs_gin ON {_DOCS} USING gin (doc jsonb_path_ops)",
)
_DOC_QUERIES = {
    "current_state": f"SELECT id, doc FROM {_DOCS} WHERE doc->>'model_name' = :m "
    "AND doc->>'status' = 'applied' ORDER BY id DESC LIMIT 1",
    "history_100": f"SELECT id, doc FROM {_DOCS} WHERE doc->>'model_name' = :m "
    "ORDER BY id DESC LIMIT 100",
    "window": f"SELECT id, doc FROM {_DOCS} WHERE (doc->>'created_at') COLLATE \"C\" >= :s "
    "AND (doc->>'created_at') COLLATE \"C\" < :e ORDER BY id",
}


class Store:
    """One schema in one database: create it fresh, insert rows, run the monitoring queries."""

    name = ""
    schema = ""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def reset(self) -> None:
        """Drop and create the table: every size starts empty."""
        with self.engine.begin() as conn:
            metadata.drop_all(conn, checkfirst=True)
            metadata.create_all(conn)

    def insert_one(self, row: dict[str, Any]) -> None:
        """Write one event in its own transaction."""
        # As EventStore.record: one write transaction per event, id returned.
        with write_transaction(self.engine) as conn:
            conn.execute(deployment_events.insert().returning(deployment_events.c.id), row)

    def insert_many(self, rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` in one transaction (multi-row insert)."""
        with write_transaction(self.engine) as conn:
            conn.execute(deployment_events.insert(), rows)

    def analyze(self) -> None:
        """Refresh the planner's statistics after a load."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")

    def query(self, name: str, params: dict[str, Any]) -> int:
        """Run monitoring query ``name`` (one of :data:`QUERIES`); return the rows it read."""
        t = deployment_events.c
        if name == "current_state":
            q = (
                sa.select(deployment_events)
                .where(t.model_name == params["m"], t.status == "applied")
                .order_by(t.id.desc())
                .limit(1)
            )
        elif name == "history_100":
            q = (
                sa.select(deployment_events)
                .where(t.model_name == params["m"])
                .order_by(t.id.desc())
                .limit(100)
            )
        else:
            q = (
                sa.select(deployment_events)
                .where(t.created_at >= params["s"], t.created_at < params["e"])
                .order_by(t.id)
            )
        with self.engine.connect() as conn:
            return len(conn.execute(q).all())

    def size_bytes(self) -> int:
        """Bytes on disk, indexes included."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT pg_total_relation_size('deployment_events')")
                ).scalar_one()
            )


class SqliteStore(Store):
    """The registry's own table and engine on SQLite."""

    name = "sqlite"
    schema = "relational"

    def __init__(self, engine: Engine, path: Path) -> None:
        super().__init__(engine)
        self.path = path

    def size_bytes(self) -> int:
        """Bytes of the database file, after folding the write-ahead log into it."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return self.path.stat().st_size


class PostgresRelationalStore(Store):
    """The registry's own table on PostgreSQL."""

    name = "postgres_relational"
    schema = "relational"

    def analyze(self) -> None:
        """Refresh the planner's statistics after a load, and the visibility map."""
        # VACUUM cannot run in a transaction; it also sets the visibility map, as autovacuum
        # would have done on a long-lived table.
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")


class PostgresDocumentStore(PostgresRelationalStore):
    """One JSONB document per event, with expression and GIN indexes."""

    name = "postgres_jsonb"
    schema = "document"

    def reset(self) -> None:
        """Drop and create the table: every size starts empty."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_DOCS}")
            for ddl in DOC_DDL:
                conn.exec_driver_sql(ddl)

    def _insert(self) -> sa.TextClause:
        return sa.text(f"INSERT INTO {_DOCS} (doc) VALUES (CAST(:doc AS jsonb))")

    def insert_one(self, row: dict[str, Any]) -> None:
        """Write one event in its own transaction."""
        doc = {"doc": json.dumps(as_doc(row))}
        with write_transaction(self.engine) as conn:
            conn.execute(
                sa.text(f"INSERT INTO {_DOCS} (doc) VALUES (CAST(:doc AS jsonb)) RETURNING id"),
                doc,
            )

    def insert_many(self, rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` in one transaction (multi-row insert)."""
        docs = [{"doc": json.dumps(as_doc(r))} for r in rows]
        with write_transaction(self.engine) as conn:
            conn.execute(self._insert(), docs)

    def query(self, name: str, params: dict[str, Any]) -> int:
        """Run monitoring query ``name``; return the rows it read."""
        sql = _DOC_QUERIES["window" if name.startswith("window") else name]
        if "s" in params:
            params = {"s": params["s"].strftime(ISO), "e": params["e"].strftime(ISO)}
        with self.engine.connect() as conn:
            return len(conn.execute(sa.text(sql), params).all())

    def size_bytes(self) -> int:
        """Bytes on disk, indexes included."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.text(f"SELECT pg_total_relation_size('{_DOCS}')")).scalar_one()
            )


@contextmanager
def scratch_postgres(admin_url: str) -> Iterator[str]:
    """A fresh database ``mlplat_bench_<random>`` on the server, dropped afterwards."""
    admin = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"mlplat_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.SQLAlchemyError as exc:
        admin.dispose()
        raise BenchmarkError(
            f"postgres_url: cannot create a scratch database ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0]})"
        ) from exc
    try:
        yield (
            sa.engine.make_url(normalise_url(admin_url))
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def server_version(engine: Engine) -> str:
    """The PostgreSQL server's version string."""
    with engine.connect() as conn:
        return str(conn.exec_driver_sql("SHOW server_version").scalar_one())
