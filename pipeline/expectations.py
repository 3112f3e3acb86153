"""The Great Expectations suite, generated from the feature contract (never written by hand).

One group of expectations per kind of column: the table, each numeric feature, each categorical
feature, the label. Each expectation's ``meta["rule"]`` names the rule in the words
:mod:`pipeline.validation` reports it in. GX is imported lazily because it takes seconds to import
and most users of :mod:`pipeline` never validate.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from features import (
    CATEGORICAL_FEATURES,
    ENTITY_ID,
    FEATURE_NAMES,
    NUMERIC_FEATURES,
    TARGET,
    CategoricalFeature,
    NumericFeature,
)
from pipeline.config import ValidationConfig

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite

__all__ = ["SUITE_NAME", "build_suite"]

SUITE_NAME = "feature-contract"

# GX resolves pandas extension dtypes by their class name (``pd.Int64Dtype``), numpy ones by name.
_INT_TYPES = ["int64", "int32", "int16", "int8", "uint8", "uint16", "uint32", "Int64Dtype"]
# Whole numbers are valid floats: a JSON client may send 50000 for an income.
_FLOAT_TYPES = ["float64", "float32", "Float64Dtype", *_INT_TYPES]
# An object column is checked value by value (each must be a ``str``); pandas' categorical dtype
# is not recognised by GX's type check, so categoricals arrive as strings.
_TEXT_TYPES = ["str", "StringDtype"]
_LABEL_VALUES = [0, 1]


def build_suite(
    rules: ValidationConfig | None = None,
    *,
    require_target: bool = True,
    optional_columns: Iterable[str] = (),
) -> ExpectationSuite:
    """Generate the expectation suite from the feature contract.

    Args:
        rules: Dataset-level bounds (row count, default rate); defaults when ``None``.
        require_target: Whether the label must be present (training) or not (serving batches).
        optional_columns: Non-feature columns present in the frame that are allowed
            (``customer_id``, and ``default`` when it is not required).

    Returns:
        A Great Expectations 1.x suite; each expectation's ``meta["rule"]`` names its rule.

    Raises:
        ValueError: ``optional_columns`` names a column the contract does not allow.
    """
    import great_expectations as gx

    # GX re-exports its expectation classes without ``__all__``, which strict mypy reads as
    # private; the module handle keeps the public spelling ``gxe.ExpectColumnToExist``.
    gxe: Any = importlib.import_module("great_expectations.expectations")
    rules = rules or ValidationConfig()
    extra = set(optional_columns)
    allowed_extra = {c for c in (ENTITY_ID, TARGET) if c is not None}
    if not extra <= allowed_extra:
        raise ValueError(f"optional_columns may only hold {sorted(allowed_extra)}, got {extra}")
    columns = [*FEATURE_NAMES]
    if require_target or TARGET in extra:
        columns.append(TARGET)
    if ENTITY_ID is not None and ENTITY_ID in extra:
        columns.append(ENTITY_ID)
    expectations = _table_expectations(gxe, columns, rules)
    for num in NUMERIC_FEATURES:
        expectations += _numeric_expectations(gxe, num)
    for cat in CATEGORICAL_FEATURES:
        expectations += _categorical_expectations(gxe, cat)
    if TARGET in columns:
        expectations += _label_expectations(gxe, rules)
    # Built detached from any context: GX binds it to a fresh ephemeral one at validation time.
    return gx.ExpectationSuite(name=SUITE_NAME, expectations=expectations)


def _meta(rule: str) -> dict[str, Any]:
    return {"rule": rule}


def _table_expectations(gxe: Any, columns: list[str], rules: ValidationConfig) -> list[Any]:
    """Exactly the contract's columns, and a plausible number of rows."""
    return [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=columns, exact_match=True, meta=_meta("column_set")
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=rules.min_rows, max_value=rules.max_rows, meta=_meta("row_count")
        ),
    ]


def _numeric_expectations(gxe: Any, num: NumericFeature) -> list[Any]:
    """Present, numeric, in range, and null no more often than the contract allows."""
    types = _INT_TYPES if num.kind == "int" else _FLOAT_TYPES
    return [
        gxe.ExpectColumnToExist(column=num.name, meta=_meta("exists")),
        gxe.ExpectColumnValuesToBeInTypeList(column=num.name, type_list=types, meta=_meta("type")),
        gxe.ExpectColumnValuesToBeBetween(
            column=num.name, min_value=num.minimum, max_value=num.maximum, meta=_meta("range")
        ),
        gxe.ExpectColumnValuesToNotBeNull(
            column=num.name, mostly=1.0 - num.max_null_rate, meta=_meta("null_rate")
        ),
    ]


def _categorical_expectations(gxe: Any, cat: CategoricalFeature) -> list[Any]:
    """Present, text, one of the contract's categories, and rarely null."""
    return [
        gxe.ExpectColumnToExist(column=cat.name, meta=_meta("exists")),
        gxe.ExpectColumnValuesToBeInTypeList(
            column=cat.name, type_list=_TEXT_TYPES, meta=_meta("type")
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column=cat.name, value_set=list(cat.categories), meta=_meta("allowed_values")
        ),
        gxe.ExpectColumnValuesToNotBeNull(
            column=cat.name, mostly=1.0 - cat.max_null_rate, meta=_meta("null_rate")
        ),
    ]


def _label_expectations(gxe: Any, rules: ValidationConfig) -> list[Any]:
    """Present, never null, 0 or 1, and a default rate within the configured bounds."""
    return [
        gxe.ExpectColumnToExist(column=TARGET, meta=_meta("exists")),
        gxe.ExpectColumnValuesToNotBeNull(column=TARGET, mostly=1.0, meta=_meta("null_rate")),
        gxe.ExpectColumnValuesToBeInSet(
            column=TARGET, value_set=_LABEL_VALUES, meta=_meta("label_values")
        ),
        gxe.ExpectColumnMeanToBeBetween(
            column=TARGET,
            min_value=rules.min_default_rate,
            max_value=rules.max_default_rate,
            meta=_meta("label_balance"),
        ),
    ]
