"""The inference log's writer: every prediction, logged off the request path.

Write path: a request calls :meth:`InferenceLogger.log`, which appends to a bounded in-memory
buffer and returns at once (when the buffer is full the record is dropped and counted, and the
request still succeeds). A background task drains the buffer every ``flush_seconds`` (sooner
when it fills up) and writes each batch in one transaction from a worker thread
(:meth:`InferenceLogStore.write`). ``POST /feedback`` joins a delayed label to its prediction
(:meth:`InferenceLogStore.join_feedback`).

The tables, the row types and how the database is opened are shared with the reader the
controller uses (``monitoring/sources/inference_log.py``) and live in
``interfaces/inference_log.py``, with the reasons the log is a SQL table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from features import FEATURE_NAMES
from interfaces.inference_log import (
    ADDED_COLUMNS,
    FailedRecord,
    InferenceRecord,
    LogDatabase,
)

__all__ = [
    "DuplicateFeedbackError",
    "FailedRecord",
    "FeedbackJoin",
    "InferenceLogError",
    "InferenceLogStore",
    "InferenceLogger",
    "InferenceRecord",
    "Outcome",
    "UnknownPredictionError",
]

logger = logging.getLogger(__name__)

Outcome = Literal["tp", "fp", "tn", "fn"]


class InferenceLogError(Exception):
    """Base class of the inference log's domain errors."""


class UnknownPredictionError(InferenceLogError, LookupError):
    """No logged prediction has this request id and row."""


class DuplicateFeedbackError(InferenceLogError):
    """A label was already recorded for this request id and row."""


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


_LOGGED_COLUMNS = (
    "ts",
    "request_id",
    "row",
    "variant",
    "model_version",
    "probability",
    "prediction",
    *FEATURE_NAMES,
    *(name for name, _ in ADDED_COLUMNS),
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


class InferenceLogStore(LogDatabase):
    """The inference log with write access: batches of predictions and the feedback join.

    Args:
        url_or_engine: SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``) or an
            engine the caller owns.
    """

    def __init__(self, url_or_engine: str | Engine) -> None:
        super().__init__(url_or_engine)
        dialect = self.engine.dialect
        self._positional = dialect.paramstyle in ("qmark", "format", "numeric")
        # Statements built once and handed to the driver: SQLAlchemy Core's executemany costs
        # ~35 us per row in type processing, the driver path a few.
        self._insert = _insert_sql(self.predictions.name, _LOGGED_COLUMNS, dialect.paramstyle)
        self._insert_failure = _insert_sql(self.failures.name, _FAILURE_COLUMNS, dialect.paramstyle)

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
        for name, kind in ADDED_COLUMNS:
            if name not in present:
                column_type = kind().compile(dialect=conn.dialect)
                conn.execute(
                    sa.text(
                        f'ALTER TABLE "{self.predictions.name}" ADD COLUMN "{name}" {column_type}'
                    )
                )

    def count(self) -> int:
        """Return the number of logged predictions."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(self.predictions)).scalar_one()
            )

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

    def take_batch(self) -> list[InferenceRecord | FailedRecord]:
        """Take every buffered record, leaving the buffer empty: the next batch to write."""
        batch, self._buffer = self._buffer, []
        return batch

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
            batch = self.take_batch()
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
