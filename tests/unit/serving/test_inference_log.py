"""The inference log's writer: bounded buffer, background writes, schema and the feedback join.

What the controller reads back is tested with its reader, in
``tests/unit/monitoring/test_inference_log_reader.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa

from features import FEATURE_NAMES
from serving.inference_log import (
    DuplicateFeedbackError,
    FailedRecord,
    InferenceLogger,
    InferenceLogStore,
    InferenceRecord,
    UnknownPredictionError,
)
from serving.reconcile import SMOKE_ROW

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path: Path) -> InferenceLogStore:
    store = InferenceLogStore(f"sqlite:///{tmp_path / 'log' / 'inference.db'}")
    store.create_schema()
    return store


def _record(request_id: str, ts: float = 1_000.0, variant: str = "champion") -> InferenceRecord:
    return InferenceRecord(ts, request_id, 0, variant, 1, 0.7, 1, SMOKE_ROW)


def test_a_full_buffer_drops_and_counts_instead_of_blocking(store: InferenceLogStore) -> None:
    """A full log buffer drops and counts records instead of blocking the request."""
    dropped: list[int] = []

    async def scenario() -> None:
        logger = InferenceLogger(store, max_queue=3, flush_seconds=60, on_drop=dropped.append)
        accepted = [logger.log(_record(f"r{i}")) for i in range(5)]  # no drain task running
        assert accepted == [True, True, True, False, False]
        await logger.flush()

    asyncio.run(scenario())
    assert dropped == [1, 1]
    assert store.count() == 3


def test_the_drain_task_writes_without_being_asked(store: InferenceLogStore) -> None:
    """The background drain task writes buffered records without being asked."""

    async def scenario() -> None:
        logger = InferenceLogger(store, flush_seconds=0.01)
        logger.start()
        logger.log(_record("r1"))
        deadline = asyncio.get_running_loop().time() + 5
        while store.count() == 0:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        await logger.stop()

    asyncio.run(scenario())
    assert store.count() == 1


def test_stop_writes_what_is_still_buffered(store: InferenceLogStore) -> None:
    """Stopping the logger writes what is still buffered."""

    async def scenario() -> None:
        logger = InferenceLogger(store, flush_seconds=60)
        logger.start()
        logger.log(_record("r1"))
        logger.log(_record("r2"))
        await logger.stop()

    asyncio.run(scenario())
    assert store.count() == 2


def test_feedback_joins_once_and_is_stored(store: InferenceLogStore) -> None:
    """A label is joined to its prediction once; a second label for it is refused."""
    store.write([_record("r1", ts=500.0)])
    joined = store.join_feedback("r1", 0, 0)
    assert (joined.variant, joined.model_version, joined.outcome) == ("champion", 1, "fp")
    with pytest.raises(DuplicateFeedbackError, match="already recorded"):
        store.join_feedback("r1", 0, 1)
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(store.feedback)).all()
    assert [(r.request_id, r.row, r.label) for r in stored] == [("r1", 0, 0)]


def test_feedback_for_an_unknown_prediction_is_refused(store: InferenceLogStore) -> None:
    """Feedback for a prediction that was never logged is refused."""
    with pytest.raises(UnknownPredictionError, match="no prediction was logged for request_id 'x'"):
        store.join_feedback("x", 0, 1)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.feedback)).scalar() == 0


def test_creating_the_schema_twice_is_harmless(store: InferenceLogStore) -> None:
    """Creating the log's schema twice changes nothing and raises nothing."""
    store.create_schema()
    assert store.count() == 0


def test_a_table_from_an_older_release_gains_the_judge_columns_on_create_schema(
    tmp_path: Path,
) -> None:
    """An existing log keeps its rows; the new columns are added empty (NULL: not recorded)."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    old_columns = ", ".join(f'"{name}"' for name in FEATURE_NAMES)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE inference_log (id INTEGER PRIMARY KEY, ts FLOAT NOT NULL, "
                "request_id VARCHAR(128) NOT NULL, row INTEGER NOT NULL, "
                "variant VARCHAR(16) NOT NULL, model_version INTEGER NOT NULL, "
                f"probability FLOAT NOT NULL, prediction INTEGER NOT NULL, {old_columns})"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO inference_log (ts, request_id, row, variant, model_version, "
                "probability, prediction) VALUES (5.0, 'old', 0, 'champion', 1, 0.2, 0)"
            )
        )
    store = InferenceLogStore(engine)
    store.create_schema()
    store.write([InferenceRecord(6.0, "new", 0, "champion", 1, 0.3, 0, SMOKE_ROW, 0.5, 0.01)])

    present = {c["name"] for c in sa.inspect(engine).get_columns("inference_log")}
    assert {"routing_hash", "latency_s"} <= present
    assert sa.inspect(engine).has_table("inference_failures")
    with engine.connect() as conn:
        hashes = conn.execute(sa.text("SELECT routing_hash FROM inference_log ORDER BY ts")).all()
    assert [h for (h,) in hashes] == [None, 0.5]
    store.create_schema()  # and again: nothing to add
    assert store.count() == 2
    engine.dispose()


def test_a_batch_that_fails_to_write_is_counted_as_dropped(tmp_path: Path) -> None:
    """Records lost in a failed batch show in the dropped count, not only in the log."""
    store = InferenceLogStore(f"sqlite:///{tmp_path / 'nowhere' / 'x.db'}")  # no tables
    dropped: list[int] = []
    failures: list[int] = []

    async def scenario() -> None:
        logger = InferenceLogger(
            store, flush_seconds=60, on_drop=dropped.append,
            on_write_failure=lambda: failures.append(1),
        )  # fmt: skip
        for i in range(4):
            logger.log(_record(f"r{i}"))
        await logger.flush()
        assert logger.dropped == 4

    asyncio.run(scenario())
    assert dropped == [4]
    assert failures == [1]


def test_a_failed_row_goes_to_the_failures_table_not_the_predictions(
    store: InferenceLogStore,
) -> None:
    """A failure is not a prediction: drift and feedback never see it, the judge does."""
    scored = InferenceRecord(1_000.0, "ok-1", 0, "canary", 2, 0.4, 0, SMOKE_ROW, 0.25, 0.031)
    failed = FailedRecord(1_001.0, "bad-1", 0, "canary", 2, 0.75, 0.5, "affluent")
    store.write([scored, failed])

    assert store.count() == 1
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(store.failures)).all()
    assert [(r.request_id, r.routing_hash, r.latency_s, r.slice_value) for r in rows] == [
        ("bad-1", 0.75, 0.5, "affluent")
    ]
