"""The first gate: a Great Expectations suite generated from the feature contract.

The suite is built from :mod:`features.contract` by :func:`pipeline.expectations.build_suite`,
never written by hand, so adding a feature adds its checks. :func:`validate` always returns a
:class:`ValidationReport`; a broken dataset (missing columns, wrong types, even frames GX cannot
digest) is a list of readable failures, never a traceback.

GX runs on an ephemeral, in-memory context created per call: nothing is written to the working
directory, no state is shared between calls, analytics and progress bars are off. GX is imported
lazily because it takes seconds to import and most users of :mod:`pipeline` never validate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from features import ENTITY_ID, FEATURE_NAMES, TARGET
from pipeline.config import ValidationConfig
from pipeline.expectations import SUITE_NAME, build_suite

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite

__all__ = ["FailedExpectation", "ValidationReport", "build_suite", "validate"]


@dataclass(frozen=True)
class FailedExpectation:
    """One broken rule, in words a person can act on.

    Attributes:
        column: The column the rule is about; ``None`` for table-level rules.
        rule: Short rule name: ``exists``, ``column_set``, ``type``, ``range``,
            ``allowed_values``, ``null_rate``, ``row_count``, ``label_values``,
            ``label_balance`` or ``error``.
        observed: What the data showed.
        expected: What the contract requires.
        expectation: The Great Expectations expectation type behind the rule.
    """

    column: str | None
    rule: str
    observed: str
    expected: str
    expectation: str

    def describe(self) -> str:
        """Return one line: column, rule, observed and expected."""
        where = self.column if self.column is not None else "<table>"
        return f"{where}: {self.rule} — observed {self.observed}; expected {self.expected}"


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of validating one dataset.

    Attributes:
        success: Whether every expectation held.
        failures: The broken rules, table-level first, then in contract column order.
        row_count: Rows in the validated frame.
        evaluated: Expectations evaluated.
        suite: Name of the suite.
    """

    success: bool
    failures: list[FailedExpectation] = field(default_factory=list)
    row_count: int = 0
    evaluated: int = 0
    suite: str = SUITE_NAME

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form of the report."""
        return asdict(self)

    def describe(self) -> str:
        """Return a readable multi-line summary listing every failure."""
        if self.success:
            return f"validation passed: {self.evaluated} expectations on {self.row_count} rows"
        if self.evaluated:
            head = f"{len(self.failures)} of {self.evaluated} expectations failed"
        else:
            head = "the suite could not run"
        lines = [f"validation failed on {self.row_count} rows: {head}"]
        lines.extend(f"  - {failure.describe()}" for failure in self.failures)
        return "\n".join(lines)


def _percent(value: float) -> str:
    return f"{value:.1%}" if value >= 0.001 or value == 0 else f"{value:.3%}"


def _examples(values: Iterable[Any], limit: int = 5) -> str:
    seen: list[str] = []
    for value in values:
        shown = repr(value)
        if shown not in seen:
            seen.append(shown)
        if len(seen) == limit:
            break
    return ", ".join(seen)


def _expected(rule: str, kwargs: Mapping[str, Any]) -> str:
    if rule == "column_set":
        return "only contract columns (" + ", ".join(kwargs["column_set"]) + ")"
    if rule == "row_count":
        return f"between {kwargs['min_value']} and {kwargs['max_value']} rows"
    if rule == "exists":
        return "the column to be present"
    if rule == "type":
        return "dtype in " + ", ".join(kwargs["type_list"])
    if rule == "range":
        return f"values between {kwargs['min_value']:g} and {kwargs['max_value']:g}"
    if rule in {"allowed_values", "label_values"}:
        return "values in {" + ", ".join(str(v) for v in kwargs["value_set"]) + "}"
    if rule == "null_rate":
        mostly = kwargs.get("mostly")
        allowed = 1.0 - (1.0 if mostly is None else float(mostly))
        return "no nulls" if allowed <= 0 else f"at most {_percent(allowed)} nulls"
    if rule == "label_balance":
        return f"default rate between {kwargs['min_value']:g} and {kwargs['max_value']:g}"
    return "the expectation to hold"


def _observed(rule: str, result: Mapping[str, Any], row_count: int, dtype: str) -> str:
    count = result.get("unexpected_count")
    share = (count / row_count) if count is not None and row_count else 0.0
    if rule == "column_set":
        # Missing columns are reported one by one by their "exists" rule.
        mismatched = (result.get("details") or {}).get("mismatched") or {}
        unexpected = mismatched.get("unexpected") or []
        return "unexpected columns: " + ", ".join(map(str, unexpected))
    if rule == "row_count":
        return f"{result.get('observed_value')} rows"
    if rule == "exists":
        return "the column is missing"
    if rule == "type":
        if count:  # an object column, checked value by value
            examples = _examples(result.get("partial_unexpected_list") or [])
            return f"dtype {dtype} with {count} values of another type, e.g. {examples}"
        return f"dtype {dtype}"
    if rule == "null_rate":
        return f"{_percent(share)} nulls ({count} of {row_count} rows)"
    if rule in {"range", "allowed_values", "label_values"}:
        examples = _examples(result.get("partial_unexpected_list") or [])
        rows = "row" if count == 1 else "rows"
        return f"{count} {rows} ({_percent(share)}) outside, e.g. {examples}"
    if rule == "label_balance":
        value = result.get("observed_value")
        return f"default rate {value:.3f}" if isinstance(value, float) else "no labelled rows"
    return str(result.get("observed_value"))


def _raised(exception_info: Any) -> str | None:
    """Return the exception message of a result, whatever shape GX gave ``exception_info``."""
    if not isinstance(exception_info, Mapping):
        return None
    if exception_info.get("raised_exception"):
        return str(exception_info.get("exception_message") or "an error")
    for value in exception_info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message") or "an error")
    return None


def _failures(results: list[Any], frame: pd.DataFrame) -> list[FailedExpectation]:
    present = set(map(str, frame.columns))
    failed = [outcome for outcome in results if not outcome.success]
    # A wrong dtype makes the value checks of that column crash; the type failure says it all.
    mistyped = {
        outcome.expectation_config.kwargs.get("column")
        for outcome in failed
        if (outcome.expectation_config.meta or {}).get("rule") == "type"
    }
    failures: list[FailedExpectation] = []
    for outcome in failed:
        config = outcome.expectation_config
        kwargs = dict(config.kwargs)
        rule = str((config.meta or {}).get("rule", config.type))
        column = kwargs.get("column")
        if column is not None and column not in present and rule != "exists":
            continue  # reported once, as the missing column
        result = outcome.result or {}
        if rule == "column_set" and not ((result.get("details") or {}).get("mismatched") or {}).get(
            "unexpected"
        ):
            continue  # only missing columns: each is reported by its own "exists" rule
        error = _raised(outcome.exception_info)
        if error is not None:
            if column not in mistyped:
                observed = error.splitlines()[0][:200]
                failures.append(
                    FailedExpectation(column, "error", observed, "the check to run", config.type)
                )
            continue
        dtype = str(frame[column].dtype) if column in present else "none"
        failures.append(
            FailedExpectation(
                column=column,
                rule=rule,
                observed=_observed(rule, result, len(frame), dtype),
                expected=_expected(rule, kwargs),
                expectation=config.type,
            )
        )
    order = {name: i for i, name in enumerate((*FEATURE_NAMES, TARGET, ENTITY_ID or TARGET))}
    return sorted(failures, key=lambda f: -1 if f.column is None else order.get(f.column, 99))


def _precheck(frame: pd.DataFrame) -> list[FailedExpectation]:
    """Catch frames GX cannot even load, and say why in the report's terms."""
    names = [str(c) for c in frame.columns]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        return [
            FailedExpectation(
                None,
                "column_set",
                "duplicated columns: " + ", ".join(duplicated),
                "each column once",
                "precheck",
            )
        ]
    return []


def validate(
    df: pd.DataFrame,
    *,
    require_target: bool = True,
    min_rows: int | None = None,
    rules: ValidationConfig | None = None,
) -> ValidationReport:
    """Validate a dataset against the suite generated from the contract.

    Args:
        df: The frame to check; it is not modified.
        require_target: ``True`` for training data; ``False`` for serving batches, which may
            omit the label.
        min_rows: Overrides ``rules.min_rows`` (serving batches may be small).
        rules: Dataset-level bounds; defaults when ``None``.

    Returns:
        A report; ``success`` is ``False`` with readable failures on any broken rule.
    """
    rules = rules or ValidationConfig()
    if min_rows is not None:
        rules = rules.model_copy(update={"min_rows": min_rows})
    early = _precheck(df)
    if early:
        return ValidationReport(False, early, row_count=len(df), evaluated=0)
    optional = [c for c in (ENTITY_ID, TARGET) if c is not None and c in df.columns]
    suite = build_suite(rules, require_target=require_target, optional_columns=optional)
    try:
        results = _run_suite(suite, df)
    except Exception as exc:  # a frame GX chokes on is still a failed validation, not a crash
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        failure = FailedExpectation(None, "error", message, "a frame GX can evaluate", "suite")
        return ValidationReport(False, [failure], row_count=len(df), evaluated=0)
    failures = _failures(results, df)
    return ValidationReport(
        success=not failures,
        failures=failures,
        row_count=len(df),
        evaluated=len(results),
    )


def _run_suite(suite: ExpectationSuite, df: pd.DataFrame) -> list[Any]:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    source = context.data_sources.add_pandas("training-data")
    batches = source.add_dataframe_asset("frame").add_batch_definition_whole_dataframe("all")
    batch = batches.get_batch(batch_parameters={"dataframe": df})
    outcome = batch.validate(context.suites.add(suite), result_format="BASIC")
    return list(outcome.results)
