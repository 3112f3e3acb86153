from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from features import ENTITY_ID, FEATURE_NAMES, TARGET
from pipeline.config import ModelConfig
from pipeline.train import TrainingError, build_model, fit, split

pytestmark = pytest.mark.unit


def test_the_split_is_stratified_disjoint_and_complete(small_frame: pd.DataFrame) -> None:
    """The split is stratified by label, disjoint, complete, and re-indexed from zero."""
    train, holdout = split(small_frame, 0.25, seed=1)
    assert len(holdout) == pytest.approx(0.25 * len(small_frame), abs=1)
    assert len(train) + len(holdout) == len(small_frame)
    assert set(train[ENTITY_ID]).isdisjoint(holdout[ENTITY_ID])
    assert holdout[TARGET].mean() == pytest.approx(small_frame[TARGET].mean(), abs=0.005)
    assert list(train.index) == list(range(len(train)))


def test_the_split_is_deterministic_for_a_seed(small_frame: pd.DataFrame) -> None:
    """The split is the same for a seed and differs for another."""
    _, a_holdout = split(small_frame, 0.25, seed=1)
    _, b_holdout = split(small_frame, 0.25, seed=1)
    pd.testing.assert_frame_equal(a_holdout, b_holdout)
    assert not a_holdout.equals(split(small_frame, 0.25, seed=2)[1])


def test_the_split_refuses_what_it_cannot_stratify(small_frame: pd.DataFrame) -> None:
    """The split refuses a holdout fraction of 1 and a label with under two rows per class."""
    with pytest.raises(TrainingError, match="holdout_fraction"):
        split(small_frame, 1.0, seed=1)
    with pytest.raises(TrainingError, match="two rows of each class"):
        split(small_frame.assign(**{TARGET: 0}), 0.25, seed=1)


def test_the_model_is_preprocessing_then_gradient_boosting() -> None:
    """The model is preprocessing then gradient boosting, ignoring unknown categories."""
    cfg = ModelConfig(learning_rate=0.2, max_iter=7)
    model = build_model(cfg)
    assert isinstance(model, Pipeline)
    assert [name for name, _ in model.steps] == ["preprocess", "classifier"]
    classifier = model.named_steps["classifier"]
    assert isinstance(classifier, HistGradientBoostingClassifier)
    assert (classifier.learning_rate, classifier.max_iter) == (0.2, 7)
    encoder = (
        model.named_steps["preprocess"].named_transformers_["categorical"]
        if False
        else model.named_steps["preprocess"].transformers[1][1]
    )
    assert isinstance(encoder, OneHotEncoder)
    assert encoder.handle_unknown == "ignore"


def test_fit_returns_probabilities_and_leaves_its_input_alone(
    small_split: tuple[pd.DataFrame, pd.DataFrame], small_model: Pipeline
) -> None:
    """Fitting leaves its input unchanged, and the model scores strictly between 0 and 1."""
    train, holdout = small_split
    before = train.copy(deep=True)
    fit(train, ModelConfig(max_iter=5))
    pd.testing.assert_frame_equal(train, before)
    scores = small_model.predict_proba(holdout[list(FEATURE_NAMES)])[:, 1]
    assert scores.shape == (len(holdout),)
    assert ((scores > 0) & (scores < 1)).all()


def test_an_unseen_category_scores_without_error_or_warning(
    small_split: tuple[pd.DataFrame, pd.DataFrame], small_model: Pipeline
) -> None:
    """A category unseen in training is scored without error or warning."""
    rows = small_split[1].head(20).assign(loan_purpose="crypto")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = small_model.predict_proba(rows)[:, 1]
    assert np.isfinite(scores).all()


def test_missing_numeric_values_are_scored(
    small_split: tuple[pd.DataFrame, pd.DataFrame], small_model: Pipeline
) -> None:
    """Rows with missing numeric values get finite scores."""
    rows = small_split[1].head(20).assign(debt_to_income=np.nan, employment_years=np.nan)
    assert np.isfinite(small_model.predict_proba(rows)[:, 1]).all()


def test_the_model_ignores_columns_outside_the_contract(
    small_split: tuple[pd.DataFrame, pd.DataFrame], small_model: Pipeline
) -> None:
    """Columns outside the contract do not change the model's scores."""
    rows = small_split[1].head(50)
    with_extras = small_model.predict_proba(rows)
    features_only = small_model.predict_proba(rows[list(FEATURE_NAMES)])
    np.testing.assert_array_equal(with_extras, features_only)


def test_a_single_class_cannot_be_trained(small_frame: pd.DataFrame) -> None:
    """Training on labels of a single class is refused with TrainingError."""
    with pytest.raises(TrainingError, match="single class"):
        fit(small_frame.assign(**{TARGET: 1}), ModelConfig())
