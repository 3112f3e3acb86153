from __future__ import annotations

import json

import pandas as pd
import pytest
import skops.io
from sklearn.pipeline import Pipeline

from features import TARGET
from pipeline.config import EvaluationConfig
from pipeline.evaluate import Evaluation, evaluate
from pipeline.metrics import roc_auc

pytestmark = pytest.mark.unit

CFG = EvaluationConfig(latency_batch_rows=200, latency_repeats=2, behaviour_sample_rows=200)


@pytest.fixture(scope="module")
def result(small_model: Pipeline, small_split: tuple[pd.DataFrame, pd.DataFrame]) -> Evaluation:
    return evaluate(small_model, small_split[1], CFG)


def test_metrics_are_those_of_the_holdout_scores(
    result: Evaluation, small_model: Pipeline, small_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """The evaluation's AUC and row count are those of the model's scores on the holdout."""
    holdout = small_split[1]
    scores = small_model.predict_proba(holdout)[:, 1]
    assert result.metrics.auc == pytest.approx(roc_auc(holdout[TARGET], scores))
    assert result.metrics.rows == len(holdout)
    assert 0.70 < (result.metrics.auc or 0) < 0.9


def test_every_segment_gets_its_own_metrics(
    result: Evaluation, small_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """Every segment of the holdout gets its own metrics, covering every row once."""
    holdout = small_split[1]
    assert set(result.slices) == set(holdout["segment"])
    assert sum(m.rows for m in result.slices.values()) == len(holdout)


def test_latency_and_size_are_measured(result: Evaluation, small_model: Pipeline) -> None:
    """Batch latency per row is below single-row latency; size is the skops dump's length."""
    assert 0 < result.latency_ms_per_row < result.latency_ms_single_row
    assert result.size_bytes == len(skops.io.dumps(small_model))


def test_behaviour_is_part_of_the_evaluation(result: Evaluation) -> None:
    """The evaluation includes invariance, directional and minimum-functionality checks."""
    assert {c.kind for c in result.behaviour} == {
        "invariance",
        "directional",
        "minimum_functionality",
    }


def test_rows_align_with_the_holdout_for_the_paired_gate(
    result: Evaluation, small_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """Kept labels and segments align row by row with the holdout, for the paired gate."""
    holdout = small_split[1]
    assert (result.rows.labels == holdout[TARGET].to_numpy()).all()
    assert (result.rows.slices == holdout["segment"].to_numpy()).all()


def test_a_tiny_holdout_is_cycled_for_the_latency_batch(
    small_model: Pipeline, small_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """A holdout smaller than the latency batch is cycled and still measured."""
    tiny = small_split[1].groupby(TARGET).head(30)
    assert evaluate(small_model, tiny, CFG).latency_ms_per_row > 0


def test_to_dict_is_json_and_leaves_out_row_scores(result: Evaluation) -> None:
    """to_dict is JSON with metrics and slices, and leaves out the per-row scores."""
    payload = json.loads(json.dumps(result.to_dict()))
    assert "rows" not in payload
    assert payload["metrics"]["auc"] == result.metrics.auc
    assert set(payload["slices"]) == set(result.slices)
