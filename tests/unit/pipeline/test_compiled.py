"""The compiled inference path scores like the reference pipeline, or refuses with the reason."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from features import FEATURE_NAMES
from pipeline.compiled import TREE_CELLS, NotCompilableError, compile_pipeline, max_difference
from pipeline.config import ModelConfig
from pipeline.data import generate
from pipeline.train import fit

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def model() -> Pipeline:
    """The platform's own pipeline, fitted on a small generated set."""
    return fit(generate(2500, 3), ModelConfig(max_iter=60))


def awkward_rows() -> pd.DataFrame:
    """Holdout rows with nulls where the contract allows them and categories never seen."""
    rows = generate(400, 4)[list(FEATURE_NAMES)]
    rows.loc[:40, "debt_to_income"] = np.nan
    rows.loc[30:80, "employment_years"] = np.nan
    rows.loc[90:99, "loan_purpose"] = "yacht"
    return rows


def test_the_platform_pipeline_compiles_to_the_same_probabilities(model: Pipeline) -> None:
    """Nulls (with their indicators) and unknown categories score exactly as the reference."""
    compiled = compile_pipeline(model)
    rows = awkward_rows()
    assert max_difference(model, compiled, rows) < 1e-12
    assert compiled.transform(rows).shape[1] == model.steps[0][1].transform(rows).shape[1]


def test_one_row_and_an_empty_frame_are_scored_like_any_batch(model: Pipeline) -> None:
    """A single record gives its row of the batch's answer; no rows gives no difference."""
    compiled = compile_pipeline(model)
    rows = awkward_rows()
    one = compiled.predict_proba(rows.iloc[[35]])
    assert one.shape == (1, 2)
    assert np.array_equal(one[0], compiled.predict_proba(rows)[35])
    assert max_difference(model, compiled, rows.iloc[:0]) == 0.0


COLUMNS = ["age", "credit_score", "segment"]


def small_pipeline(pre: ColumnTransformer, columns: list[str] = COLUMNS) -> Pipeline:
    """``pre`` and a logistic regression fitted on a few generated rows."""
    rows = generate(300, 5)
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=200))]).fit(
        rows[columns], rows["default"]
    )


@pytest.mark.parametrize(
    ("pre", "reason"),
    [
        (ColumnTransformer([("log", FunctionTransformer(np.log1p), ["age"])]),
         "FunctionTransformer is not supported"),
        (ColumnTransformer([("oh", OneHotEncoder(drop="first"), ["segment"])]),
         "one-hot with drop"),
        (ColumnTransformer([("num", StandardScaler(), ["age"])], remainder="passthrough"),
         "passed through"),
    ],
)  # fmt: skip
def test_a_step_the_compiler_does_not_know_is_refused_by_name(
    pre: ColumnTransformer, reason: str
) -> None:
    """The reason names the step, so it can be recorded on the version and shown in /model."""
    columns = ["age", "credit_score"] if pre.remainder == "passthrough" else COLUMNS
    with pytest.raises(NotCompilableError, match=reason):
        compile_pipeline(small_pipeline(pre, columns))


def test_a_supported_other_pipeline_compiles_too() -> None:
    """Not only the platform's model: scaling plus one-hot under a logistic regression."""
    pre = ColumnTransformer([
        ("num", StandardScaler(), ["age", "credit_score"]),
        ("oh", OneHotEncoder(handle_unknown="ignore"), ["segment"]),
    ])  # fmt: skip
    model = small_pipeline(pre)
    rows = generate(200, 6)[["age", "credit_score", "segment"]]
    assert max_difference(model, compile_pipeline(model), rows) < 1e-12


def test_a_block_without_columns_is_skipped_as_scikit_learn_skips_it() -> None:
    """A contract with no categorical feature leaves the one-hot block empty and unfitted."""
    pre = ColumnTransformer([
        ("num", StandardScaler(), ["age", "credit_score"]),
        ("oh", OneHotEncoder(handle_unknown="ignore"), []),
    ])  # fmt: skip
    model = small_pipeline(pre)
    rows = generate(200, 6)[["age", "credit_score"]]
    assert max_difference(model, compile_pipeline(model), rows) < 1e-12


def test_object_and_nullable_numeric_columns_score_like_float_ones(model: Pipeline) -> None:
    """None in an object column and pandas' Int64 are read as the reference reads them."""
    rows = awkward_rows()
    odd = rows.astype({"debt_to_income": object, "age": "Int64"})
    odd.loc[:10, "debt_to_income"] = None
    assert odd["debt_to_income"].dtype == object
    assert max_difference(model, compile_pipeline(model), odd) < 1e-12


def test_small_calls_walk_the_trees_as_arrays_and_score_exactly_as_the_classifier(
    model: Pipeline,
) -> None:
    """Calls up to small_call_rows take the array walk; their scores equal scikit-learn's."""
    compiled = compile_pipeline(model)
    assert compiled.trees is not None
    step = compiled.small_call_rows
    assert step is not None
    assert step == max(1, TREE_CELLS // compiled.trees.count)
    rows = awkward_rows()
    reference = model.predict_proba(rows)
    walked = np.vstack([compiled.predict_proba(rows.iloc[[i]]) for i in range(0, 400, 7)])
    assert np.max(np.abs(walked - reference[::7])) <= 1e-15
    batch = compiled.predict_proba(rows.iloc[:step])
    assert np.max(np.abs(batch - reference[:step])) <= 1e-15


def test_max_difference_checks_the_small_call_route_even_on_a_large_frame(
    model: Pipeline,
) -> None:
    """A fault only in the array walk is caught although the whole frame takes the other route."""
    compiled = compile_pipeline(model)
    assert compiled.trees is not None
    broken_trees = dataclasses.replace(compiled.trees, baseline=compiled.trees.baseline + 0.01)
    broken = dataclasses.replace(compiled, trees=broken_trees)
    rows = awkward_rows()
    assert compiled.small_call_rows is not None
    assert len(rows) > compiled.small_call_rows
    assert max_difference(model, compiled, rows) < 1e-12
    assert max_difference(model, broken, rows) > 1e-4


def test_a_classifier_without_trees_is_always_called_as_fitted() -> None:
    """A logistic regression has no array walk: every call goes to the classifier itself."""
    pre = ColumnTransformer([("num", StandardScaler(), ["age", "credit_score"])])
    compiled = compile_pipeline(small_pipeline(pre, ["age", "credit_score"]))
    assert compiled.trees is None
    assert compiled.small_call_rows is None
