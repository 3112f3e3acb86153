"""The inference log's tables: what the service writes and the controller reads, defined once.

The service writes every scored row, every row a model failed on and every delayed label
(``serving/inference_log.py``); the canary judge and the drift checks read them
(``monitoring/sources/inference_log.py``). Both sides build their tables with
:func:`log_tables` and open the database with :func:`create_log_engine`, so a column the writer
adds is a column the reader knows.

Why a SQL table (SQLite by default, PostgreSQL by URL) rather than rolled Parquet files:

* ``POST /feedback`` needs a *point lookup* by request id, and the label must be joined and
  stored exactly once (a primary key refuses the duplicate). Parquet has neither indexes nor
  constraints; we would rebuild a database on top of it.
* The drift checks read *windows by time and variant*; an index on ``(ts)`` and ``(variant, ts)``
  serves that directly, and ``SELECT`` into pandas is one call.
* Several uvicorn workers write at once: SQLite in WAL mode with a busy timeout handles a few
  batched writers per second per process with no server to run; past one host, the same code
  takes a ``postgresql+psycopg://`` URL. Parquet would need one file per worker and compaction.
* The volume is modest (a batch insert of hundreds of rows takes milliseconds) and retention is
  a ``DELETE ... WHERE ts < ?`` away. If the log outgrows a database, export old partitions to
  Parquet for offline analysis; the serving path does not change.

Time is stored as Unix seconds (``ts``, a float): portable across both databases, cheap to
index and compare; the reader returns it as a timezone-aware ``timestamp`` column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from features import FEATURES, NumericFeature
from interfaces.database_url import normalise_url

__all__ = [
    "LogDatabase",
    "ADDED_COLUMNS",
    "CONNECT_TIMEOUT_SECONDS",
    "FailedRecord",
    "InferenceRecord",
    "LogTables",
    "create_log_engine",
    "default_log_url",
    "log_tables",
]

CONNECT_TIMEOUT_SECONDS: Final = 5
"""Longest wait for a connection to a PostgreSQL inference log."""

# Columns added after the first release: the writer's ``create_schema`` adds them to an older
# table (nullable, so rows written before have NULL there, which the judge reads as "not
# recorded"), and the reader checks for them before judging from the log.
ADDED_COLUMNS: Final[tuple[tuple[str, Any], ...]] = (
    ("routing_hash", sa.Float),
    ("latency_s", sa.Float),
)


def default_log_url(home: Path) -> str:
    """Where the inference log lives when no URL is set: ``<home>/inference-log.db`` (SQLite).

    One definition for the service that writes it, the controller that reads it and
    ``mlplat db upgrade`` that migrates it, so all three find the same file.
    """
    return f"sqlite:///{(home / 'inference-log.db').resolve()}"


@dataclass(frozen=True, slots=True)
class InferenceRecord:
    """One scored row, as logged.

    Attributes:
        ts: Unix time of the prediction.
        request_id: The request's id (the caller's ``X-Request-ID`` or a generated one).
        row: Position of the record in its request.
        variant: ``champion`` or ``canary``.
        model_version: Registry version that scored the row.
        probability: Predicted probability of default.
        prediction: 0 or 1 at the service's threshold.
        features: Feature values in contract order (``None`` = missing).
        routing_hash: The routing key's unsalted point of [0, 1)
            (:func:`interfaces.routing.key_hash`): the canary judge's cluster and baseline split.
        latency_s: Seconds the request took to score, as its client saw it.
    """

    ts: float
    request_id: str
    row: int
    variant: str
    model_version: int
    probability: float
    prediction: int
    features: Sequence[Any]
    routing_hash: float | None = None
    latency_s: float | None = None


@dataclass(frozen=True, slots=True)
class FailedRecord:
    """One row a model failed to score (the request was answered 500), as logged.

    The canary judge counts these as the variant's errors, in the same strata, clusters and
    slices as the rows that were scored.

    Attributes:
        ts: Unix time of the failure.
        request_id: The request's id.
        row: Position of the record in its request.
        variant: ``champion`` or ``canary``.
        model_version: Registry version that failed.
        routing_hash: The routing key's unsalted point of [0, 1).
        latency_s: Seconds until the failure was answered.
        slice_value: The record's value of the contract's slice column, if it had one.
    """

    ts: float
    request_id: str
    row: int
    variant: str
    model_version: int
    routing_hash: float | None
    latency_s: float | None
    slice_value: str | None


class LogTables(NamedTuple):
    """The log's three tables, bound to one ``MetaData``."""

    predictions: sa.Table
    feedback: sa.Table
    failures: sa.Table


def _feature_column(f: Any) -> sa.Column[Any]:
    if isinstance(f, NumericFeature):
        kind: Any = sa.Integer if f.kind == "int" else sa.Float
        return sa.Column(f.name, kind, nullable=True)
    return sa.Column(f.name, sa.String(64), nullable=True)


def log_tables(metadata: sa.MetaData) -> LogTables:
    """Define the log's tables on ``metadata``: scored rows, delayed labels, failed rows.

    ``inference_log`` holds one row per scored record with the contract's features (so the
    drift checks read what the model saw); ``inference_feedback`` one label per (request id,
    row), its primary key refusing a second one; ``inference_failures`` one row per record a
    model failed on.
    """
    predictions = sa.Table(
        "inference_log",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("variant", sa.String(16), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("prediction", sa.Integer, nullable=False),
        *(_feature_column(f) for f in FEATURES),
        *(sa.Column(name, kind, nullable=True) for name, kind in ADDED_COLUMNS),
        sa.Index("ix_inference_log_ts", "ts"),
        sa.Index("ix_inference_log_variant_ts", "variant", "ts"),
        sa.Index("ix_inference_log_request", "request_id", "row"),
    )
    failures = sa.Table(
        "inference_failures",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("variant", sa.String(16), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("routing_hash", sa.Float, nullable=True),
        sa.Column("latency_s", sa.Float, nullable=True),
        sa.Column("slice_value", sa.String(64), nullable=True),
        sa.Index("ix_inference_failures_ts", "ts"),
    )
    feedback = sa.Table(
        "inference_feedback",
        metadata,
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("row", sa.Integer, primary_key=True),
        sa.Column("label", sa.Integer, nullable=False),
        sa.Column("received_ts", sa.Float, nullable=False),
    )
    return LogTables(predictions, feedback, failures)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the drift job read while workers write; the busy timeout makes concurrent
    # writers from several workers wait for each other instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_log_engine(url: str) -> Engine:
    """Create an engine for the inference log; a SQLite file's directory is created."""
    url = normalise_url(url)
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        # libpq otherwise waits for the OS to give up on an unreachable host (minutes).
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)


class LogDatabase:
    """A connection to the inference log's database and its three tables.

    The service's writer (``serving/inference_log.py::InferenceLogStore``) and the controller's
    reader (``monitoring/sources/inference_log.py::InferenceLogReader``) both start from it.

    Args:
        url_or_engine: SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``) or an
            engine the caller owns (then :meth:`close` leaves it open).
    """

    def __init__(self, url_or_engine: str | Engine) -> None:
        self._owns_engine = not isinstance(url_or_engine, Engine)
        self.engine = (
            url_or_engine if isinstance(url_or_engine, Engine) else create_log_engine(url_or_engine)
        )
        self._metadata = sa.MetaData()
        self.predictions, self.feedback, self.failures = log_tables(self._metadata)

    def close(self) -> None:
        """Release the connection pool, if this object created it."""
        if self._owns_engine:
            self.engine.dispose()
