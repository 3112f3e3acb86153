"""The inference log: every prediction, written off the request path, read by the drift checks.

Write path: a request calls :meth:`InferenceLogger.log`, which appends to a bounded in-memory
buffer and returns at once (when the buffer is full the record is dropped and counted, and the
request still succeeds). A background task drains the buffer every ``flush_seconds`` (sooner
when it fills up) and writes each batch in one transaction from a worker thread.

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
index and compare; the readers return it as a timezone-aware ``timestamp`` column.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from features import FEATURE_NAMES, FEATURES, SEGMENT, NumericFeature

logger = logging.getLogger(__name__)

Outcome = Literal["tp", "fp", "tn", "fn"]


class InferenceLogError(Exception):
    """Base class of the inference log's domain errors."""


class UnknownPredictionError(InferenceLogError, LookupError):
    """No logged prediction has this request id and row."""


class DuplicateFeedbackError(InferenceLogError):
    """A label was already recorded for this request id and row."""


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


@dataclass(frozen=True)
class FeedbackJoin:
    """A delayed label joined to its prediction."""

    request_id: str
    row: int
    label: int
    probability: float
    prediction: int
    variant: str
    model_version: int

    @property
    def outcome(self) -> Outcome:
        """Confusion-matrix cell of this prediction."""
        if self.label == 1:
            return "tp" if self.prediction == 1 else "fn"
        return "fp" if self.prediction == 1 else "tn"


def _feature_column(f: Any) -> sa.Column[Any]:
    if isinstance(f, NumericFeature):
        kind: Any = sa.Integer if f.kind == "int" else sa.Float
        return sa.Column(f.name, kind, nullable=True)
    return sa.Column(f.name, sa.String(64), nullable=True)


# Columns added after the first release: ``create_schema`` adds them to an older table (nullable,
# so rows written before have NULL there, which the judge reads as "not recorded").
_ADDED_COLUMNS: Final[tuple[tuple[str, Any], ...]] = (
    ("routing_hash", sa.Float),
    ("latency_s", sa.Float),
)


def _tables(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table, sa.Table]:
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
        *(sa.Column(name, kind, nullable=True) for name, kind in _ADDED_COLUMNS),
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
    return predictions, feedback, failures


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


CONNECT_TIMEOUT_SECONDS = 5
"""Longest wait for a connection to a PostgreSQL inference log."""


def _as_ts(value: datetime | float, name: str) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware (e.g. datetime.now(UTC)), got {value}")
        return value.timestamp()
    return float(value)


class InferenceLogReader:
    """Read access to the inference log, for the drift checks and the quality judge.

    Args:
        url_or_engine: SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``) or an
            engine the caller owns.
    """

    def __init__(self, url_or_engine: str | Engine) -> None:
        if isinstance(url_or_engine, Engine):
            self.engine = url_or_engine
            self._owns_engine = False
        else:
            self.engine = create_log_engine(url_or_engine)
            self._owns_engine = True
        self._metadata = sa.MetaData()
        self.predictions, self.feedback, self.failures = _tables(self._metadata)

    def create_schema(self) -> None:
        """Create the tables and indexes if they are missing (safe to race from many workers)."""
        for attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    for table in (self.predictions, self.feedback, self.failures):
                        conn.execute(sa.schema.CreateTable(table, if_not_exists=True))
                        for index in table.indexes:
                            conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))
                    self._add_missing_columns(conn)
                return
            except (OperationalError, IntegrityError, ProgrammingError):
                # Another worker created the same object between our check and our create.
                if attempt == 2:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _add_missing_columns(self, conn: sa.Connection) -> None:
        """Add the columns a table created by an older release lacks (nullable, no rewrite)."""
        present = {c["name"] for c in sa.inspect(conn).get_columns(self.predictions.name)}
        for name, kind in _ADDED_COLUMNS:
            if name not in present:
                column_type = kind().compile(dialect=conn.dialect)
                conn.execute(
                    sa.text(
                        f'ALTER TABLE "{self.predictions.name}" ADD COLUMN "{name}" {column_type}'
                    )
                )

    def close(self) -> None:
        """Release the connection pool, if this reader created it."""
        if self._owns_engine:
            self.engine.dispose()

    def window(
        self,
        start: datetime | float,
        end: datetime | float,
        variant: str | None = None,
    ) -> pd.DataFrame:
        """Return the predictions logged in ``[start, end)``.

        Args:
            start: Inclusive lower bound (aware datetime or Unix seconds).
            end: Exclusive upper bound.
            variant: Only this variant (``champion`` or ``canary``) when given.

        Returns:
            Columns ``timestamp`` (UTC), ``request_id``, ``row``, ``variant``, ``model_version``,
            ``probability``, ``prediction`` and the contract features in contract order,
            sorted by time.
        """
        t = self.predictions
        query = sa.select(
            t.c.ts,
            t.c.request_id,
            t.c.row,
            t.c.variant,
            t.c.model_version,
            t.c.probability,
            t.c.prediction,
            *(t.c[name] for name in FEATURE_NAMES),
        ).where(t.c.ts >= _as_ts(start, "start"), t.c.ts < _as_ts(end, "end"))
        if variant is not None:
            query = query.where(t.c.variant == variant)
        return _with_timestamp(self._read(query.order_by(t.c.ts, t.c.id)), "ts", "timestamp")

    def labeled(
        self,
        start: datetime | float,
        end: datetime | float,
        variant: str | None = None,
    ) -> pd.DataFrame:
        """Return predictions made in ``[start, end)`` whose true label has arrived.

        Returns:
            Columns ``timestamp``, ``request_id``, ``row``, ``variant``, ``model_version``,
            ``probability`` (the score), ``prediction``, ``label`` and ``label_timestamp``.
        """
        t, f = self.predictions, self.feedback
        query = (
            sa.select(
                t.c.ts,
                t.c.request_id,
                t.c.row,
                t.c.variant,
                t.c.model_version,
                t.c.probability,
                t.c.prediction,
                f.c.label,
                f.c.received_ts,
            )
            .join(f, sa.and_(f.c.request_id == t.c.request_id, f.c.row == t.c.row))
            .where(t.c.ts >= _as_ts(start, "start"), t.c.ts < _as_ts(end, "end"))
        )
        if variant is not None:
            query = query.where(t.c.variant == variant)
        frame = _with_timestamp(
            self._read(query.order_by(t.c.ts, t.c.id)), "received_ts", "label_timestamp"
        )
        return _with_timestamp(frame, "ts", "timestamp")

    def has_judge_columns(self) -> bool:
        """Whether the table records what the canary judge reads (routing hash, latency).

        A table an older release created lacks them until a current service (or
        :meth:`create_schema`) adds them; the judge then judges from counters instead.
        """
        inspector = sa.inspect(self.engine)
        if not inspector.has_table(self.predictions.name):
            return False
        present = {c["name"] for c in inspector.get_columns(self.predictions.name)}
        return all(name in present for name, _ in _ADDED_COLUMNS) and inspector.has_table(
            self.failures.name
        )

    def judge_rows(self, start: datetime | float, end: datetime | float) -> pd.DataFrame:
        """Every row scored or failed in ``[start, end)``, as the canary judge reads them.

        Call :meth:`has_judge_columns` first.

        Returns:
            Columns ``ts`` (Unix seconds), ``variant``, ``model_version``, ``routing_hash``,
            ``latency_s``, ``failed`` (bool), ``slice`` (the contract's slice column, as text)
            and ``probability`` (NaN on failed rows), unsorted.
        """
        t, f = self.predictions, self.failures
        lo, hi = _as_ts(start, "start"), _as_ts(end, "end")
        scored = sa.select(
            t.c.ts,
            t.c.variant,
            t.c.model_version,
            t.c.routing_hash,
            t.c.latency_s,
            t.c[SEGMENT].label("slice"),
            t.c.probability,
        ).where(t.c.ts >= lo, t.c.ts < hi)
        failed = sa.select(
            f.c.ts,
            f.c.variant,
            f.c.model_version,
            f.c.routing_hash,
            f.c.latency_s,
            f.c.slice_value.label("slice"),
        ).where(f.c.ts >= lo, f.c.ts < hi)
        with self.engine.connect() as conn:
            ok = pd.read_sql(scored, conn).assign(failed=False)
            bad = pd.read_sql(failed, conn).assign(failed=True, probability=np.nan)
        frames = [frame for frame in (ok, bad) if len(frame)]
        if not frames:
            return ok.iloc[0:0]
        return pd.concat(frames, ignore_index=True)

    def judge_labels(self, start: datetime | float, end: datetime | float) -> pd.DataFrame:
        """Labelled predictions made in ``[start, end)``, as the canary judge reads them.

        Returns:
            Columns ``ts``, ``variant``, ``model_version``, ``routing_hash``, ``slice``,
            ``probability``, ``label`` and ``received_ts`` (Unix seconds the label arrived).
        """
        t, f = self.predictions, self.feedback
        query = (
            sa.select(
                t.c.ts,
                t.c.variant,
                t.c.model_version,
                t.c.routing_hash,
                t.c[SEGMENT].label("slice"),
                t.c.probability,
                f.c.label,
                f.c.received_ts,
            )
            .join(f, sa.and_(f.c.request_id == t.c.request_id, f.c.row == t.c.row))
            .where(t.c.ts >= _as_ts(start, "start"), t.c.ts < _as_ts(end, "end"))
        )
        with self.engine.connect() as conn:
            return pd.read_sql(query, conn)

    def _read(self, query: sa.Select[Any]) -> pd.DataFrame:
        # Before the service has logged anything the tables may not exist: that is an empty
        # window, not an error for the drift job.
        if not sa.inspect(self.engine).has_table(self.predictions.name):
            return pd.DataFrame({c.name: [] for c in query.selected_columns})
        with self.engine.connect() as conn:
            return pd.read_sql(query, conn)

    def count(self) -> int:
        """Return the number of logged predictions."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(self.predictions)).scalar_one()
            )


def _with_timestamp(frame: pd.DataFrame, source: str, target: str) -> pd.DataFrame:
    stamped = pd.to_datetime(frame[source], unit="s", utc=True)
    position = frame.columns.get_loc(source)
    return frame.drop(columns=[source]).assign(**{target: stamped})[
        [*frame.columns[:position], target, *frame.columns[position + 1 :]]
    ]


_LOGGED_COLUMNS = (
    "ts",
    "request_id",
    "row",
    "variant",
    "model_version",
    "probability",
    "prediction",
    *FEATURE_NAMES,
    *(name for name, _ in _ADDED_COLUMNS),
)
_FAILURE_COLUMNS = (
    "ts",
    "request_id",
    "row",
    "variant",
    "model_version",
    "routing_hash",
    "latency_s",
    "slice_value",
)


def _insert_sql(table: str, columns: Sequence[str], paramstyle: str) -> str:
    if paramstyle == "qmark":
        marks = ["?"] * len(columns)
    elif paramstyle == "format":
        marks = ["%s"] * len(columns)
    elif paramstyle == "numeric":
        marks = [f":{i}" for i in range(1, len(columns) + 1)]
    elif paramstyle == "named":
        marks = [f":{c}" for c in columns]
    else:  # pyformat
        marks = [f"%({c})s" for c in columns]
    quoted = ", ".join(f'"{c}"' for c in columns)
    return f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join(marks)})'


class InferenceLogStore(InferenceLogReader):
    """The inference log with write access: batches of predictions and the feedback join."""

    def __init__(self, url_or_engine: str | Engine) -> None:
        super().__init__(url_or_engine)
        dialect = self.engine.dialect
        self._positional = dialect.paramstyle in ("qmark", "format", "numeric")
        # Statements built once and handed to the driver: SQLAlchemy Core's executemany costs
        # ~35 us per row in type processing, the driver path a few.
        self._insert = _insert_sql(self.predictions.name, _LOGGED_COLUMNS, dialect.paramstyle)
        self._insert_failure = _insert_sql(self.failures.name, _FAILURE_COLUMNS, dialect.paramstyle)

    def write(self, records: Sequence[InferenceRecord | FailedRecord]) -> None:
        """Insert ``records`` (scored rows and failed rows) in one transaction."""
        if not records:
            return
        rows = [
            (
                r.ts,
                r.request_id,
                r.row,
                r.variant,
                r.model_version,
                r.probability,
                r.prediction,
                *r.features,
                r.routing_hash,
                r.latency_s,
            )
            for r in records
            if isinstance(r, InferenceRecord)
        ]
        failed = [
            (
                r.ts,
                r.request_id,
                r.row,
                r.variant,
                r.model_version,
                r.routing_hash,
                r.latency_s,
                r.slice_value,
            )
            for r in records
            if isinstance(r, FailedRecord)
        ]
        with self.engine.begin() as conn:
            self._execute(conn, self._insert, _LOGGED_COLUMNS, rows)
            self._execute(conn, self._insert_failure, _FAILURE_COLUMNS, failed)

    def _execute(
        self,
        conn: sa.Connection,
        statement: str,
        columns: Sequence[str],
        rows: list[tuple[Any, ...]],
    ) -> None:
        if not rows:
            return
        if self._positional:
            conn.exec_driver_sql(statement, rows)
        else:
            conn.exec_driver_sql(statement, [dict(zip(columns, row, strict=True)) for row in rows])

    def join_feedback(self, request_id: str, row: int, label: int) -> FeedbackJoin:
        """Store the true label of a logged prediction, once, and return the joined pair.

        The lookup and the insert are one transaction: the label is recorded if and only if the
        prediction exists and had no label yet.

        Raises:
            UnknownPredictionError: No prediction was logged for ``(request_id, row)``.
            DuplicateFeedbackError: A label for it was already recorded.
        """
        t = self.predictions
        query = (
            sa.select(t.c.probability, t.c.prediction, t.c.variant, t.c.model_version)
            .where(t.c.request_id == request_id, t.c.row == row)
            .order_by(t.c.ts.desc())
            .limit(1)
        )
        try:
            with self.engine.begin() as conn:
                found = conn.execute(query).first()
                if found is None:
                    raise UnknownPredictionError(
                        f"no prediction was logged for request_id {request_id!r}, row {row}"
                    )
                conn.execute(
                    self.feedback.insert().values(
                        request_id=request_id, row=row, label=label, received_ts=time.time()
                    )
                )
        except IntegrityError:
            raise DuplicateFeedbackError(
                f"a label was already recorded for request_id {request_id!r}, row {row}"
            ) from None
        return FeedbackJoin(
            request_id=request_id,
            row=row,
            label=label,
            probability=float(found.probability),
            prediction=int(found.prediction),
            variant=str(found.variant),
            model_version=int(found.model_version),
        )


class InferenceLogger:
    """Bounded buffer in front of an :class:`InferenceLogStore`, drained in the background.

    Args:
        store: Where records go.
        max_queue: Records buffered before new ones are dropped.
        flush_seconds: Longest time a record waits in the buffer.
        flush_rows: Buffer size that triggers an early flush.
        on_drop: Called with the number of records dropped (metrics).
        on_write: Called with (records written, records still buffered) after each write.
        on_write_failure: Called when a batch could not be written.
        schema_ready: Whether the store's tables are known to exist; when not (the store was
            down at startup), each write first tries to create them.
    """

    def __init__(
        self,
        store: InferenceLogStore,
        *,
        max_queue: int = 10_000,
        flush_seconds: float = 0.5,
        flush_rows: int = 1_000,
        on_drop: Callable[[int], None] | None = None,
        on_write: Callable[[int, int], None] | None = None,
        on_write_failure: Callable[[], None] | None = None,
        schema_ready: bool = True,
    ) -> None:
        self.store = store
        self._schema_ready = schema_ready
        self.max_queue = max_queue
        self.flush_seconds = flush_seconds
        self.flush_rows = min(flush_rows, max_queue)
        self.dropped = 0
        self.written = 0
        self._on_drop = on_drop
        self._on_write = on_write
        self._on_write_failure = on_write_failure
        self._buffer: list[InferenceRecord | FailedRecord] = []
        self._wakeup = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def queued(self) -> int:
        """Records waiting to be written."""
        return len(self._buffer)

    def log(self, record: InferenceRecord | FailedRecord) -> bool:
        """Buffer one record without blocking; return False when it was dropped (buffer full)."""
        if len(self._buffer) >= self.max_queue:
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop(1)
            return False
        self._buffer.append(record)
        if len(self._buffer) >= self.flush_rows:
            self._wakeup.set()
        return True

    def start(self) -> None:
        """Start the drain task on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="inference-log")

    async def stop(self) -> None:
        """Write what is buffered and stop the drain task."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Write everything buffered now (and wait for a write already in progress)."""
        async with self._write_lock:
            batch, self._buffer = self._buffer, []
            if not batch:
                return
            try:
                if not self._schema_ready:
                    await asyncio.to_thread(self.store.create_schema)
                    self._schema_ready = True
                await asyncio.to_thread(self.store.write, batch)
            except Exception:
                # The log is best effort: losing a batch must not take the service down, but
                # the records it held are lost, and counted as dropped like a full buffer's.
                logger.exception("inference log: failed to write %d records", len(batch))
                self.dropped += len(batch)
                if self._on_drop is not None:
                    self._on_drop(len(batch))
                if self._on_write_failure is not None:
                    self._on_write_failure()
                return
            self.written += len(batch)
            if self._on_write is not None:
                self._on_write(len(batch), len(self._buffer))

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.flush_seconds)
            await self.flush()
