"""The inference log on PostgreSQL: same schema, same writes, same readers as on SQLite."""

from __future__ import annotations

import time

import pytest

from serving.inference_log import (
    DuplicateFeedbackError,
    InferenceLogStore,
    InferenceRecord,
    UnknownPredictionError,
)
from serving.reconcile import SMOKE_ROW

pytestmark = pytest.mark.integration


def test_predictions_and_feedback_round_trip_through_postgresql(postgres_url: str) -> None:
    """The inference log on PostgreSQL stores predictions, joins feedback once and reads windows."""
    store = InferenceLogStore(postgres_url)
    try:
        assert store.window(0.0, 2e9).empty  # readable before anything was logged
        store.create_schema()
        store.create_schema()
        now = time.time()
        row = list(SMOKE_ROW)
        row[6] = None  # debt_to_income missing
        store.write(
            [
                InferenceRecord(now, "pg-1", 0, "champion", 3, 0.8, 1, row),
                InferenceRecord(now + 1, "pg-2", 0, "canary", 4, 0.1, 0, SMOKE_ROW),
            ]
        )
        frame = store.window(now - 1, now + 10, variant="champion")
        assert frame["request_id"].tolist() == ["pg-1"]
        assert frame["debt_to_income"].isna().tolist() == [True]
        assert store.join_feedback("pg-2", 0, 1).outcome == "fn"
        with pytest.raises(DuplicateFeedbackError):
            store.join_feedback("pg-2", 0, 1)
        with pytest.raises(UnknownPredictionError):
            store.join_feedback("pg-3", 0, 1)
        labeled = store.labeled(now - 1, now + 10)
        assert labeled[["request_id", "variant", "model_version", "label"]].values.tolist() == [
            ["pg-2", "canary", 4, 1]
        ]
    finally:
        store.close()
