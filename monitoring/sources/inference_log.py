"""The inference log, read: windows for the drift checks, scores, labels and the judge's rows.

The service writes the log (``serving/inference_log.py``); its tables are defined once, for
both sides, in ``interfaces/inference_log.py``. :class:`InferenceLogReader` runs the queries;
:class:`InferenceLogSource` is what the controller reads through (a
:class:`~monitoring.sources.base.LogSource` and a
:class:`~monitoring.sources.base.JudgeLogSource`), turning a database it cannot read into
:class:`~monitoring.sources.base.SourceUnavailable`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa

from features import FEATURE_NAMES, SEGMENT
from interfaces.inference_log import ADDED_COLUMNS, LogDatabase
from interfaces.routing import Variant
from monitoring.metrics import HOLD_REASONS, HoldReason
from monitoring.sources.base import JudgeLogInputs, SourceName, SourceUnavailable

__all__ = ["InferenceLogReader", "InferenceLogSource"]


def _as_ts(value: datetime | float, name: str) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware (e.g. datetime.now(UTC)), got {value}")
        return value.timestamp()
    return float(value)


def _slice_column(table: sa.Table) -> sa.ColumnElement[Any]:
    """The contract's slice column, or a null slice when the contract names none."""
    return table.c[SEGMENT] if SEGMENT else sa.null()


class InferenceLogReader(LogDatabase):
    """Read access to the inference log, for the drift checks and the quality judge.

    Args:
        url_or_engine: SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``) or an
            engine the caller owns.
    """

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

        A table an older release created lacks them until a current service adds them
        (``serving/inference_log.py::InferenceLogStore.create_schema``); the judge then judges
        from counters instead.
        """
        inspector = sa.inspect(self.engine)
        if not inspector.has_table(self.predictions.name):
            return False
        present = {c["name"] for c in inspector.get_columns(self.predictions.name)}
        return all(name in present for name, _ in ADDED_COLUMNS) and inspector.has_table(
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
            _slice_column(t).label("slice"),
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
                _slice_column(t).label("slice"),
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


class InferenceLogSource:
    """The inference log the service writes, as the controller reads it.

    Args:
        reader: The log's reader (SQLite or PostgreSQL).

    Every method raises :class:`SourceUnavailable` when the database cannot be read (down, or
    locked past its timeout); a log the service has not written yet reads as empty.
    """

    name: SourceName = "inference_log"

    def __init__(self, reader: InferenceLogReader) -> None:
        self.reader = reader
        # The baseline period ends where a canary started, so its rows never change.
        self._baseline: tuple[tuple[float, float], pd.DataFrame] | None = None

    def __repr__(self) -> str:
        return f"InferenceLogSource({self.reader.engine.url!r})"

    def close(self) -> None:
        """Release the reader's connections."""
        self.reader.close()

    def _unavailable(self, exc: Exception) -> SourceUnavailable:
        cause = str(exc).splitlines()[0][:200]
        return SourceUnavailable(
            "inference_log",
            f"cannot read {self.reader.engine.url.render_as_string(hide_password=True)} ({cause})",
            _LOG_HOLD_REASON,
        )

    def scores(
        self, variant: Variant, version: int, start: datetime, end: datetime
    ) -> npt.NDArray[np.float64]:
        """See :meth:`LogSource.scores`."""
        t = self.reader.predictions
        # Only the one column: a canary's lifetime of rows is cheap this way, not as a frame.
        query = sa.select(t.c.probability).where(
            t.c.ts >= start.timestamp(),
            t.c.ts < end.timestamp(),
            t.c.variant == variant,
            t.c.model_version == version,
        )
        try:
            # Like the reader: before the service logged anything there is no table, and that
            # is an empty window (the judge then lacks the sample to promote), not an outage.
            if not sa.inspect(self.reader.engine).has_table(t.name):
                return np.asarray([], dtype=np.float64)
            with self.reader.engine.connect() as conn:
                values = conn.execute(query).scalars().all()
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise self._unavailable(exc) from exc
        return np.asarray(values, dtype=np.float64)

    def labelled(
        self, variant: Variant, version: int, start: datetime, end: datetime
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """See :meth:`LogSource.labelled`."""
        try:
            frame = self.reader.labeled(start, end, variant)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise self._unavailable(exc) from exc
        frame = frame[frame["model_version"] == version]
        return (
            frame["probability"].to_numpy(dtype=np.float64),
            frame["label"].to_numpy(dtype=np.int64),
        )

    def judge_inputs(
        self, started: datetime, now: datetime, baseline_seconds: float
    ) -> JudgeLogInputs | None:
        """See :meth:`JudgeLogSource.judge_inputs`; the baseline is read once per canary."""
        try:
            if not self.reader.has_judge_columns():
                return None
            rows = self.reader.judge_rows(started, now)
            labels = self.reader.judge_labels(started, now)
            key = (started.timestamp(), baseline_seconds)
            if self._baseline is None or self._baseline[0] != key:
                since = started.timestamp() - baseline_seconds
                self._baseline = (key, self.reader.judge_rows(since, started))
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise self._unavailable(exc) from exc
        return JudgeLogInputs(rows, labels, self._baseline[1])

    def window(
        self, variant: Variant, version: int, start: datetime, end: datetime, max_rows: int
    ) -> pd.DataFrame:
        """See :meth:`LogSource.window`."""
        try:
            frame = self.reader.window(start, end, variant)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise self._unavailable(exc) from exc
        frame = frame[frame["model_version"] == version]
        return frame.tail(max_rows).reset_index(drop=True)


def _log_hold_reason() -> HoldReason:
    # monitoring/metrics.py has no reason of its own for the inference log yet; until it has
    # one, a log outage is reported as data the judge cannot trust.
    wanted = "inference_log_unreachable"
    return wanted if wanted in HOLD_REASONS else "stale_metrics"


_LOG_HOLD_REASON: Final[HoldReason] = _log_hold_reason()
