from __future__ import annotations

import json

import pytest

from pipeline.validation import FailedExpectation, ValidationReport

pytestmark = pytest.mark.unit

NULLS = FailedExpectation(
    "debt_to_income",
    "null_rate",
    "30.0% nulls (600 of 2000 rows)",
    "at most 5.0% nulls",
    "expect_column_values_to_not_be_null",
)
ROWS = FailedExpectation(
    None, "row_count", "50 rows", "between 1000 and 5000000 rows", "expect_table_row_count"
)


def test_a_failure_reads_as_column_rule_observed_expected() -> None:
    """A failure reads as column, rule, what was observed and what was expected."""
    assert NULLS.describe() == (
        "debt_to_income: null_rate — observed 30.0% nulls (600 of 2000 rows); "
        "expected at most 5.0% nulls"
    )
    assert ROWS.describe().startswith("<table>: row_count")


def test_describe_lists_every_failure_on_its_own_line() -> None:
    """describe() gives a summary line, then each failure on its own line."""
    report = ValidationReport(False, [ROWS, NULLS], row_count=50, evaluated=58)
    lines = report.describe().splitlines()
    assert lines[0] == "validation failed on 50 rows: 2 of 58 expectations failed"
    assert lines[1:] == [f"  - {ROWS.describe()}", f"  - {NULLS.describe()}"]


def test_a_passing_report_says_how_much_was_checked() -> None:
    """A passing report says how many expectations it checked on how many rows."""
    report = ValidationReport(True, [], row_count=2000, evaluated=58)
    assert report.describe() == "validation passed: 58 expectations on 2000 rows"


def test_a_report_round_trips_through_json() -> None:
    """A report's to_dict is JSON with each failure's fields and expectation name."""
    report = ValidationReport(False, [NULLS], row_count=2000, evaluated=58)
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["success"] is False
    assert payload["failures"][0] == {
        "column": "debt_to_income",
        "rule": "null_rate",
        "observed": "30.0% nulls (600 of 2000 rows)",
        "expected": "at most 5.0% nulls",
        "expectation": "expect_column_values_to_not_be_null",
    }
