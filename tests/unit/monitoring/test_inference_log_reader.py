"""The controller's reader of the inference log: windows, labels and the judge's rows.

Rows are written with the service's writer (``serving/inference_log.py``), as in production.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from features import FEATURE_NAMES, SEGMENT
from interfaces.inference_log import FailedRecord, InferenceRecord
from monitoring.sources.inference_log import InferenceLogReader
from serving.inference_log import InferenceLogStore
from serving.reconcile import SMOKE_ROW

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path: Path) -> InferenceLogStore:
    store = InferenceLogStore(f"sqlite:///{tmp_path / 'log' / 'inference.db'}")
    store.create_schema()
    return store


def _record(request_id: str, ts: float = 1_000.0, variant: str = "champion") -> InferenceRecord:
    return InferenceRecord(ts, request_id, 0, variant, 1, 0.7, 1, SMOKE_ROW)


def test_window_filters_by_time_and_variant_and_returns_contract_columns(
    store: InferenceLogStore,
) -> None:
    """A window is ``[start, end)``, optionally one variant, with the features in order."""
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
    """A datetime without a time zone is refused, naming the argument."""
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        InferenceLogReader(store.engine).window(datetime(2024, 1, 1), 2e9)


def test_labeled_joins_each_label_to_its_prediction(store: InferenceLogStore) -> None:
    """A label recorded by the feedback join shows beside its prediction's score and variant."""
    store.write([_record("r1", ts=500.0), _record("r2", ts=600.0)])
    store.join_feedback("r1", 0, 0)
    labeled = InferenceLogReader(store.engine).labeled(0.0, 1_000.0)
    assert labeled[["request_id", "probability", "label", "variant"]].values.tolist() == [
        ["r1", 0.7, 0, "champion"]
    ]


def test_a_reader_before_anything_was_logged_sees_empty_windows(tmp_path: Path) -> None:
    """Before the service created the tables, windows are empty (with their columns)."""
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

    reader = InferenceLogReader(store.engine)
    assert reader.has_judge_columns()
    rows = reader.judge_rows(900.0, 1_100.0).sort_values("ts").reset_index(drop=True)
    assert list(rows["failed"]) == [False, True]
    assert list(rows["routing_hash"]) == [0.25, 0.75]
    assert list(rows["latency_s"]) == [0.031, 0.5]
    assert rows["slice"][0] == SMOKE_ROW[FEATURE_NAMES.index(SEGMENT)]
    assert rows["slice"][1] == "affluent"
    assert rows["probability"][0] == 0.4
    assert np.isnan(rows["probability"][1])
    assert list(reader.window(900.0, 1_100.0)["request_id"]) == ["ok-1"]  # drift sees no failure


def test_a_table_from_an_older_release_is_judged_from_counters_until_upgraded(
    tmp_path: Path,
) -> None:
    """Without the judge's columns the reader says so; once the service adds them, it reads."""
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
    reader.close()
    store.close()
