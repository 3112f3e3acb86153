"""The inference log's writer on PostgreSQL: same schema and writes as on SQLite.

The controller's reader on PostgreSQL is tested in
``tests/integration/monitoring/test_inference_log_reader_postgres.py``.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from serving.inference_log import (
    DuplicateFeedbackError,
    InferenceLogStore,
    InferenceRecord,
    UnknownPredictionError,
)
from serving.reconcile import SMOKE_ROW

pytestmark = pytest.mark.integration


def test_predictions_and_feedback_round_trip_through_postgresql(postgres_url: str) -> None:
    """The inference log on PostgreSQL stores predictions (nulls too) and joins feedback once."""
    store = InferenceLogStore(postgres_url)
    try:
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
        assert store.count() == 2
        t = store.predictions
        with store.engine.connect() as conn:
            stored = conn.execute(
                sa.select(t.c.request_id, t.c.debt_to_income).order_by(t.c.ts)
            ).all()
        assert [(r.request_id, r.debt_to_income is None) for r in stored] == [
            ("pg-1", True),
            ("pg-2", False),
        ]
        assert store.join_feedback("pg-2", 0, 1).outcome == "fn"
        with pytest.raises(DuplicateFeedbackError):
            store.join_feedback("pg-2", 0, 1)
        with pytest.raises(UnknownPredictionError):
            store.join_feedback("pg-3", 0, 1)
        with store.engine.connect() as conn:
            labels = conn.execute(sa.select(store.feedback.c.request_id, store.feedback.c.label))
            assert [tuple(r) for r in labels] == [("pg-2", 1)]
    finally:
        store.close()
