"""The controller's reader of the inference log on PostgreSQL: the same answers as on SQLite."""

from __future__ import annotations

import time

import pytest

from monitoring.sources.inference_log import InferenceLogReader
from serving.inference_log import InferenceLogStore, InferenceRecord
from serving.reconcile import SMOKE_ROW

pytestmark = pytest.mark.integration


def test_windows_and_labels_read_back_from_postgresql(postgres_url: str) -> None:
    """Empty before the service wrote; then windows by variant (nulls kept) and joined labels."""
    reader = InferenceLogReader(postgres_url)
    store = InferenceLogStore(postgres_url)
    try:
        assert reader.window(0.0, 2e9).empty  # readable before anything was logged
        assert not reader.has_judge_columns()
        store.create_schema()
        now = time.time()
        row = list(SMOKE_ROW)
        row[6] = None  # debt_to_income missing
        store.write(
            [
                InferenceRecord(now, "pg-1", 0, "champion", 3, 0.8, 1, row),
                InferenceRecord(now + 1, "pg-2", 0, "canary", 4, 0.1, 0, SMOKE_ROW, 0.5, 0.02),
            ]
        )
        store.join_feedback("pg-2", 0, 1)
        frame = reader.window(now - 1, now + 10, variant="champion")
        assert frame["request_id"].tolist() == ["pg-1"]
        assert frame["debt_to_income"].isna().tolist() == [True]
        labeled = reader.labeled(now - 1, now + 10)
        assert labeled[["request_id", "variant", "model_version", "label"]].values.tolist() == [
            ["pg-2", "canary", 4, 1]
        ]
        assert reader.has_judge_columns()
        rows = reader.judge_rows(now - 1, now + 10)
        assert sorted(rows["routing_hash"].dropna()) == [0.5]
    finally:
        reader.close()
        store.close()
