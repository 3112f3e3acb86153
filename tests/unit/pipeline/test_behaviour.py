from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from features import ENTITY_ID
from pipeline.behaviour import (
    entity_id_invariance,
    jitter_invariance,
    minimum_functionality,
    run_behavioural_checks,
)

pytestmark = pytest.mark.unit


class ScoreFromColumn:
    """A fake classifier whose score is a fixed function of one column."""

    def __init__(self, column: str, sign: float) -> None:
        self.column, self.sign = column, sign

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        values = X[self.column].astype(float).fillna(0).to_numpy()
        p = 1 / (1 + np.exp(-self.sign * (values - values.mean()) / (values.std() + 1e-9)))
        return np.column_stack([1 - p, p])


class UsesCustomerId:
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        p = X[ENTITY_ID].map(hash).to_numpy() % 100 / 100.0
        return np.column_stack([1 - p, p])


class Constant:
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return np.tile([0.8, 0.2], (len(X), 1))


@pytest.fixture(scope="module")
def sample(small_split: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return small_split[1].head(300)


def test_a_sound_model_passes_every_check(small_model: Pipeline, sample: pd.DataFrame) -> None:
    """A sound model passes all six checks: two invariance, three directional, one minimum."""
    checks = run_behavioural_checks(small_model, sample)
    assert [c.kind for c in checks] == [
        "invariance",
        "invariance",
        "directional",
        "directional",
        "directional",
        "minimum_functionality",
    ]
    assert all(c.passed for c in checks), [c.detail for c in checks if not c.passed]


def test_checks_do_not_modify_the_sample(small_model: Pipeline, sample: pd.DataFrame) -> None:
    """Running the behavioural checks leaves the sample frame unchanged."""
    before = sample.copy(deep=True)
    run_behavioural_checks(small_model, sample)
    pd.testing.assert_frame_equal(sample, before)


def test_a_model_that_reads_the_customer_id_fails_invariance(sample: pd.DataFrame) -> None:
    """A model whose score depends on the customer id fails the invariance check."""
    check = entity_id_invariance(UsesCustomerId(), sample)
    assert not check.passed
    assert check.value > 0


def test_a_model_hypersensitive_to_income_fails_the_jitter_check(sample: pd.DataFrame) -> None:
    """A model whose score swings with tiny income changes fails the jitter check."""

    class Hypersensitive:
        def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
            p = (X["annual_income"].to_numpy() * 1_000) % 1.0
            return np.column_stack([1 - p, p])

    assert not jitter_invariance(Hypersensitive(), sample).passed


def test_a_model_rewarding_low_scores_fails_the_credit_score_direction(
    sample: pd.DataFrame,
) -> None:
    """A model that scores low credit scores as safer fails the credit-score direction."""
    checks = {
        c.name: c for c in run_behavioural_checks(ScoreFromColumn("credit_score", +1), sample)
    }
    assert not checks["directional_credit_score"].passed
    assert "must be lower" in checks["directional_credit_score"].detail


def test_a_model_blind_to_delinquencies_fails_their_direction(sample: pd.DataFrame) -> None:
    """A constant model fails the delinquency and debt-to-income directions."""
    checks = {c.name: c for c in run_behavioural_checks(Constant(), sample)}
    assert not checks["directional_delinquencies_2y"].passed
    assert not checks["directional_debt_to_income"].passed


def test_a_constant_model_fails_minimum_functionality() -> None:
    """A constant model fails minimum functionality, quoting the prime applicant's score."""
    check = minimum_functionality(Constant())
    assert not check.passed
    assert "prime applicant 0.200" in check.detail


def test_every_check_serialises(small_model: Pipeline, sample: pd.DataFrame) -> None:
    """Every check's result serialises to JSON."""
    import json

    payload = json.dumps([c.to_dict() for c in run_behavioural_checks(small_model, sample)])
    assert "invariance_customer_id" in payload
