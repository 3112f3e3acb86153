"""The Great Expectations suite generated from the feature contract, on generated datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import ENTITY_ID, FEATURE_NAMES, NUMERIC_FEATURES, TARGET
from pipeline.config import ValidationConfig
from pipeline.data import generate
from pipeline.scenarios import apply_scenario
from pipeline.validation import FailedExpectation, ValidationReport, build_suite, validate

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return generate(5_000, seed=8)


def only(report: ValidationReport) -> FailedExpectation:
    assert not report.success
    assert len(report.failures) == 1, report.describe()
    return report.failures[0]


def test_clean_generated_data_passes(clean: pd.DataFrame) -> None:
    """Clean generated data passes every expectation of the suite, and all are evaluated."""
    report = validate(clean)
    assert report.success, report.describe()
    assert report.failures == []
    assert report.row_count == len(clean)
    assert report.evaluated == len(build_suite(optional_columns=[ENTITY_ID]).expectations)


def test_the_suite_has_a_rule_of_each_kind_for_every_feature() -> None:
    """Every feature has existence, type and null-rate rules, plus range, set and table rules."""
    suite = build_suite()
    rules: dict[str, set[str]] = {}
    for expectation in suite.expectations:
        column = getattr(expectation, "column", None)
        rules.setdefault(column or "<table>", set()).add((expectation.meta or {})["rule"])
    for name in FEATURE_NAMES:
        assert {"exists", "type", "null_rate"} <= rules[name], name
    for spec in NUMERIC_FEATURES:
        assert "range" in rules[spec.name]
    assert "allowed_values" in rules["loan_purpose"]
    assert {"label_values", "label_balance"} <= rules[TARGET]
    assert {"column_set", "row_count"} <= rules["<table>"]


def test_null_spike_fails_on_the_null_rate_with_the_observed_share(clean: pd.DataFrame) -> None:
    """A null spike fails only the null-rate rule, reporting the observed share and the limit."""
    failure = only(validate(apply_scenario(clean, "null-spike", 0.3)))
    assert (failure.column, failure.rule) == ("debt_to_income", "null_rate")
    assert failure.observed == "30.0% nulls (1500 of 5000 rows)"
    assert failure.expected == "at most 5.0% nulls"


def test_a_null_rate_just_within_the_contract_passes(clean: pd.DataFrame) -> None:
    """A null rate just under the contract's 5% passes."""
    assert validate(apply_scenario(clean, "null-spike", 0.049)).success


def test_an_unseen_category_is_named(clean: pd.DataFrame) -> None:
    """An unseen category fails the allowed-values rule and is quoted as an example."""
    failure = only(validate(apply_scenario(clean, "unseen-category", 0.1)))
    assert (failure.column, failure.rule) == ("loan_purpose", "allowed_values")
    assert failure.observed.startswith("500 rows (10.0%) outside, e.g. 'crypto'")


def test_an_out_of_range_value_is_reported_with_an_example(clean: pd.DataFrame) -> None:
    """Out-of-range values fail the range rule with count, share, an example and the bounds."""
    broken = clean.copy()
    broken.loc[[3, 9], "age"] = 250
    failure = only(validate(broken))
    assert (failure.column, failure.rule) == ("age", "range")
    assert failure.observed == "2 rows (0.040%) outside, e.g. 250"
    assert failure.expected == "values between 18 and 100"


def test_a_missing_column_is_reported_once(clean: pd.DataFrame) -> None:
    """A missing column is one failure (its existence), not one per rule on that column."""
    failure = only(validate(clean.drop(columns=["credit_score"])))
    assert (failure.column, failure.rule) == ("credit_score", "exists")


def test_an_unexpected_column_is_named(clean: pd.DataFrame) -> None:
    """An extra column fails the column-set rule, which names it."""
    failure = only(validate(clean.assign(favourite_colour="blue")))
    assert (failure.column, failure.rule) == (None, "column_set")
    assert failure.observed == "unexpected columns: favourite_colour"


def test_a_wrong_type_is_reported_without_a_cascade_of_errors(clean: pd.DataFrame) -> None:
    """A column of the wrong type is one type failure, not a cascade of range and set failures."""
    failure = only(validate(clean.assign(credit_score=clean["credit_score"].astype(str))))
    assert (failure.column, failure.rule) == ("credit_score", "type")
    assert failure.observed.startswith("dtype object with 5000 values of another type")


def test_an_integer_feature_sent_as_float_is_a_type_failure(clean: pd.DataFrame) -> None:
    """An integer feature sent as float64 fails its type rule."""
    failure = only(validate(clean.assign(age=clean["age"].astype(float))))
    assert (failure.column, failure.rule, failure.observed) == ("age", "type", "dtype float64")


def test_whole_numbers_are_valid_floats_and_nullable_dtypes_are_accepted(
    clean: pd.DataFrame,
) -> None:
    """Integers in a float column and pandas' nullable dtypes pass the type rules."""
    accepted = clean.assign(
        annual_income=clean["annual_income"].round().astype(np.int64),
        age=clean["age"].astype("Int64"),
        segment=clean["segment"].astype("string"),
    )
    assert validate(accepted).success


def test_too_few_rows_fail_the_row_count(clean: pd.DataFrame) -> None:
    """A dataset under the minimum row count fails the row-count rule with its size."""
    failure = only(validate(clean.head(200)))
    assert (failure.column, failure.rule) == (None, "row_count")
    assert failure.observed == "200 rows"


@pytest.mark.parametrize("rate", [0.0, 0.6])
def test_an_implausible_default_rate_fails_the_label_balance(
    clean: pd.DataFrame, rate: float
) -> None:
    """A default rate of 0% or 60% fails the label-balance rule, reporting the rate."""
    labels = (np.arange(len(clean)) < rate * len(clean)).astype(np.int64)
    failure = only(validate(clean.assign(**{TARGET: labels})))
    assert (failure.column, failure.rule) == (TARGET, "label_balance")
    assert failure.observed == f"default rate {rate:.3f}"


def test_labels_other_than_zero_and_one_are_refused(clean: pd.DataFrame) -> None:
    """A label other than 0 or 1 fails the label-values rule."""
    labels = clean[TARGET].to_numpy().copy()
    labels[:3] = 2
    failure = only(validate(clean.assign(**{TARGET: labels})))
    assert (failure.column, failure.rule) == (TARGET, "label_values")


def test_a_training_set_without_labels_is_refused(clean: pd.DataFrame) -> None:
    """A training set without the label column fails the label's existence rule."""
    failure = only(validate(clean.drop(columns=[TARGET])))
    assert (failure.column, failure.rule) == (TARGET, "exists")


def test_a_serving_batch_needs_no_label_and_may_be_small(clean: pd.DataFrame) -> None:
    """A small serving batch without label or entity id passes when the label is not required."""
    batch = clean.drop(columns=[TARGET, ENTITY_ID]).head(20)
    assert validate(batch, require_target=False, min_rows=1).success


def test_dataset_rules_come_from_the_config(clean: pd.DataFrame) -> None:
    """Row-count bounds come from ValidationConfig, and the failure states them."""
    rules = ValidationConfig(min_rows=10, max_rows=100)
    failure = only(validate(clean.head(101), rules=rules))
    assert failure.expected == "between 10 and 100 rows"


@pytest.mark.parametrize(
    "name", ["covariate-shift", "prior-shift", "concept-drift", "serving-skew", "label-noise"]
)
def test_drift_inside_the_contract_passes_validation(clean: pd.DataFrame, name: str) -> None:
    """Validation guards validity, not distribution: these are the monitor's and gate's job."""
    assert validate(apply_scenario(clean, name)).success


def test_several_failures_are_listed_in_contract_order(clean: pd.DataFrame) -> None:
    """Several failures are listed in contract order, with a summary line and one line each."""
    broken = apply_scenario(clean, "null-spike").drop(columns=["age"]).assign(extra=1)
    report = validate(broken)
    assert [(f.column, f.rule) for f in report.failures] == [
        (None, "column_set"),
        ("age", "exists"),
        ("debt_to_income", "null_rate"),
    ]
    lines = report.describe().splitlines()
    assert lines[0] == "validation failed on 5000 rows: 3 of 58 expectations failed"
    assert (
        lines[2]
        == "  - age: exists — observed the column is missing; expected the column to be present"
    )


def test_frames_gx_cannot_load_still_get_a_report(clean: pd.DataFrame) -> None:
    """Duplicated columns and an empty frame still get a failing report instead of a crash."""
    duplicated = pd.concat([clean, clean[["age"]]], axis=1)
    report = validate(duplicated)
    assert not report.success
    assert report.failures[0].observed == "duplicated columns: age"
    empty = validate(pd.DataFrame())
    assert not empty.success
    assert {f.rule for f in empty.failures} == {"row_count", "exists"}


def test_the_report_is_json(clean: pd.DataFrame) -> None:
    """The validation report serialises to JSON with its failures."""
    payload = json.loads(json.dumps(validate(apply_scenario(clean, "null-spike")).to_dict()))
    assert payload["failures"][0]["column"] == "debt_to_income"


def test_validation_writes_nothing_to_the_working_directory(
    clean: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validating leaves the working directory empty (no Great Expectations context on disk)."""
    monkeypatch.chdir(tmp_path)
    validate(clean)
    validate(apply_scenario(clean, "null-spike"))
    assert list(tmp_path.iterdir()) == []
