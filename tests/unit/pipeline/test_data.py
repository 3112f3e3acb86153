from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import (
    CATEGORICAL_FEATURES,
    ENTITY_ID,
    FEATURE_NAMES,
    FEATURES,
    NUMERIC_FEATURES,
    TARGET,
)
from pipeline.data import default_probability, generate
from pipeline.metrics import roc_auc

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate(20_000, seed=11)


def test_the_same_seed_gives_an_identical_frame() -> None:
    """The same seed generates an identical frame."""
    pd.testing.assert_frame_equal(generate(2_000, seed=5), generate(2_000, seed=5))


def test_another_seed_gives_other_rows() -> None:
    """A different seed generates different rows."""
    assert not generate(500, seed=5).equals(generate(500, seed=6))


def test_columns_are_the_contract_then_label_then_entity_id(frame: pd.DataFrame) -> None:
    """Columns are the contract's features in order, then the label, then the entity id."""
    assert list(frame.columns) == [*FEATURE_NAMES, TARGET, ENTITY_ID]


def test_dtypes_follow_the_contract(frame: pd.DataFrame) -> None:
    """Column dtypes follow the contract; the label is int64 with both classes."""
    for spec in NUMERIC_FEATURES:
        expected = np.int64 if spec.kind == "int" else np.float64
        assert frame[spec.name].dtype == expected, spec.name
    for cat in CATEGORICAL_FEATURES:
        assert frame[cat.name].map(type).eq(str).all(), cat.name
    assert frame[TARGET].dtype == np.int64
    assert set(frame[TARGET].unique()) == {0, 1}


def test_every_value_is_inside_the_contract(frame: pd.DataFrame) -> None:
    """Every numeric value is within its contract range and every category is allowed."""
    for spec in NUMERIC_FEATURES:
        values = frame[spec.name].dropna()
        assert values.min() >= spec.minimum, spec.name
        assert values.max() <= spec.maximum, spec.name
    for cat in CATEGORICAL_FEATURES:
        assert set(frame[cat.name]) <= set(cat.categories), cat.name


def test_every_category_occurs(frame: pd.DataFrame) -> None:
    """Every allowed category occurs in the generated data."""
    for cat in CATEGORICAL_FEATURES:
        assert set(frame[cat.name]) == set(cat.categories), cat.name


def test_nulls_appear_only_where_the_contract_allows_and_below_its_rate(
    frame: pd.DataFrame,
) -> None:
    """Nulls appear only in the two nullable features, at their designed rates, within contract."""
    rates = frame[list(FEATURE_NAMES)].isna().mean()
    assert 0.01 < rates["debt_to_income"] < 0.03
    assert 0.035 < rates["employment_years"] < 0.065
    for spec in FEATURES:
        assert rates[spec.name] <= spec.max_null_rate, spec.name
    assert rates.drop(["debt_to_income", "employment_years"]).eq(0).all()


def test_the_default_rate_is_realistic(frame: pd.DataFrame) -> None:
    """The default rate is between 10% and 20%."""
    assert 0.10 <= frame[TARGET].mean() <= 0.20


def test_the_risk_model_separates_classes_like_a_real_scorecard(frame: pd.DataFrame) -> None:
    """The best achievable AUC is bounded: a model near 0.8 is good, near 1.0 is a leak."""
    assert 0.77 <= roc_auc(frame[TARGET], default_probability(frame)) <= 0.86


def test_segments_differ_in_risk(frame: pd.DataFrame) -> None:
    """Default rates rise from affluent to mass to small-business."""
    rates = frame.groupby("segment")[TARGET].mean()
    assert rates["affluent"] < rates["mass"] < rates["small_business"]


def test_entity_ids_are_unique_and_positional(frame: pd.DataFrame) -> None:
    """Entity ids are unique and numbered by row position."""
    assert frame[ENTITY_ID].is_unique
    assert frame[ENTITY_ID].iloc[123] == "c-000123"


def test_a_non_positive_row_count_is_refused() -> None:
    """Generating zero rows is refused with a message naming n_rows."""
    with pytest.raises(ValueError, match="n_rows must be at least 1"):
        generate(0, seed=1)
