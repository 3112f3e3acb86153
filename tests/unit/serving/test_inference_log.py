"""The inference log: bounded buffer, background writes, windows and the feedback join."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from features import FEATURE_NAMES, SEGMENT
from serving.inference_log import (
    DuplicateFeedbackError,
    FailedRecord,
    InferenceLogger,
    InferenceLogReader,
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
    async def scenario() -> None:
        logger = InferenceLogger(store, flush_seconds=60)
        logger.start()
        logger.log(_record("r1"))
        logger.log(_record("r2"))
        await logger.stop()

    asyncio.run(scenario())
    assert store.count() == 2


def test_window_filters_by_time_and_variant_and_returns_contract_columns(
    store: InferenceLogStore,
) -> None:
    store.write(
        [
            _record("early", ts=100.0),
            _record("a", ts=200.0),
            _record("b", ts=250.0, variant="canary"),
            _record("late", ts=300.0),
        ]
    )
    reader = InferenceLogReader(store.engine)
    frame = reader.window(150.0, 300.0)
    assert list(frame["request_id"]) == ["a", "b"]
    assert list(frame.columns[-len(FEATURE_NAMES) :]) == list(FEATURE_NAMES)
    assert str(frame["timestamp"].dt.tz) == "UTC"
    canary = reader.window(
        datetime.fromtimestamp(0, UTC), datetime.fromtimestamp(1e6, UTC), "canary"
    )
    assert list(canary["request_id"]) == ["b"]


def test_naive_datetimes_are_refused_by_name(store: InferenceLogStore) -> None:
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        store.window(datetime(2024, 1, 1), 2e9)


def test_feedback_joins_once_and_shows_in_labeled(store: InferenceLogStore) -> None:
    store.write([_record("r1", ts=500.0)])
    joined = store.join_feedback("r1", 0, 0)
    assert (joined.variant, joined.model_version, joined.outcome) == ("champion", 1, "fp")
    with pytest.raises(DuplicateFeedbackError, match="already recorded"):
        store.join_feedback("r1", 0, 1)
    labeled = store.labeled(0.0, 1_000.0)
    assert labeled[["request_id", "probability", "label", "variant"]].values.tolist() == [
        ["r1", 0.7, 0, "champion"]
    ]


def test_feedback_for_an_unknown_prediction_is_refused(store: InferenceLogStore) -> None:
    with pytest.raises(UnknownPredictionError, match="no prediction was logged for request_id 'x'"):
        store.join_feedback("x", 0, 1)
    assert store.labeled(0.0, 2e9).empty


def test_creating_the_schema_twice_is_harmless(store: InferenceLogStore) -> None:
    store.create_schema()
    assert store.count() == 0


def test_a_reader_before_anything_was_logged_sees_empty_windows(tmp_path: Path) -> None:
    reader = InferenceLogReader(f"sqlite:///{tmp_path / 'empty.db'}")
    window = reader.window(0.0, 2e9)
    assert window.empty
    assert "timestamp" in window.columns
    assert "credit_score" in window.columns
    assert reader.labeled(0.0, 2e9).empty
    reader.close()


def test_judge_rows_hold_routing_hash_latency_slice_and_failed_rows(
    store: InferenceLogStore,
) -> None:
    """Scored and failed rows come back together, with what the canary judge needs."""
    scored = InferenceRecord(1_000.0, "ok-1", 0, "canary", 2, 0.4, 0, SMOKE_ROW, 0.25, 0.031)
    failed = FailedRecord(1_001.0, "bad-1", 0, "canary", 2, 0.75, 0.5, "affluent")
    store.write([scored, failed])

    assert store.has_judge_columns()
    rows = store.judge_rows(900.0, 1_100.0).sort_values("ts").reset_index(drop=True)
    assert list(rows["failed"]) == [False, True]
    assert list(rows["routing_hash"]) == [0.25, 0.75]
    assert list(rows["latency_s"]) == [0.031, 0.5]
    assert rows["slice"][0] == SMOKE_ROW[FEATURE_NAMES.index(SEGMENT)]
    assert rows["slice"][1] == "affluent"
    assert rows["probability"][0] == 0.4
    assert np.isnan(rows["probability"][1])
    assert store.count() == 1  # a failure is not a prediction: drift and feedback never see it


def test_a_table_from_an_older_release_gains_the_judge_columns_on_create_schema(
    tmp_path: Path,
) -> None:
    """An existing log keeps its rows; the new columns are added empty; the judge can tell."""
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
    engine.dispose()
    reader = InferenceLogReader(url)
    assert not reader.has_judge_columns()  # the controller then judges from counters

    store = InferenceLogStore(url)
    store.create_schema()
    store.write([InferenceRecord(6.0, "new", 0, "champion", 1, 0.3, 0, SMOKE_ROW, 0.5, 0.01)])

    assert reader.has_judge_columns()
    rows = reader.judge_rows(0.0, 10.0).sort_values("ts").reset_index(drop=True)
    assert list(rows["routing_hash"].isna()) == [True, False]
    store.create_schema()  # and again: nothing to add
    assert store.count() == 2


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
