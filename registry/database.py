"""Connecting to the events database: SQLite for one machine, PostgreSQL for a team.

The same SQLAlchemy Core code runs on both; what differs is set up here. SQLite gets WAL (so
serving can read while the controller writes) and BEGIN IMMEDIATE for write transactions;
PostgreSQL gets psycopg 3, a connect timeout and pre-ping. Driver errors become domain errors
that name the URL with its password hidden.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine

from interfaces.database_url import normalise_url
from registry.errors import EventStoreError, EventStoreUnavailable, redact_url

__all__ = [
    "create_engine",
    "normalise_url",
    "short_error",
    "translate_errors",
    "write_transaction",
]

_WRITE = "mlplat_write"


def short_error(exc: BaseException) -> str:
    """The first line of the driver's message, without SQLAlchemy's boilerplate."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0]


# SQLite's and PostgreSQL's words for a table that is not there (not a database that is not).
_MISSING_TABLE = re.compile(r"no such table|relation \S+ does not exist", re.IGNORECASE)


def create_engine(url: str) -> Engine:
    """An engine for ``url`` (already normalised), tuned for its backend.

    Raises:
        EventStoreUnavailable: If ``url`` is not a usable database URL.
    """
    try:
        parsed = sa.engine.make_url(url)
        if parsed.get_backend_name() == "sqlite":
            # pysqlite's own timeout is SQLite's busy timeout: writers wait for each other.
            engine = sa.create_engine(parsed, connect_args={"timeout": 30})
            _use_wal_and_explicit_transactions(engine)
            return engine
        connect_args = {"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {}
        return sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError, ValueError) as exc:
        raise EventStoreUnavailable(url, f"not a usable database URL ({short_error(exc)})") from exc


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE)."""
    with engine.connect() as conn:
        conn = conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Turn driver errors into domain errors that name the (password-free) URL."""
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
        if _MISSING_TABLE.search(str(exc.orig)):
            raise EventStoreError(
                f"the deployment_events table is missing in {redact_url(url)}; "
                "call EventStore.create_schema() (open_registry does) first"
            ) from exc
        raise EventStoreUnavailable(url, short_error(exc)) from exc
    except (sa.exc.InterfaceError, sa.exc.DisconnectionError) as exc:
        raise EventStoreUnavailable(url, short_error(exc)) from exc


def _use_wal_and_explicit_transactions(engine: Engine) -> None:
    """SQLite settings for several processes sharing one file.

    WAL lets readers (serving polling the state) run while a writer commits. SQLAlchemy takes
    over BEGIN so that write transactions can start with BEGIN IMMEDIATE: a read-then-write
    transaction that started deferred would fail with "database is locked" instead of waiting.
    """

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @sa_event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
