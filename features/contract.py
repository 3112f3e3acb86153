"""The feature contract: the one place that says what a model input looks like.

Every component reads it: the data generator produces it, the Great Expectations suite is
generated from it, the serving request schema is built from it, and the drift checks use it to
pick a statistical test per column. Changing a feature means changing it here, and nowhere else.

Ranges are *validity* bounds (a value outside them is a broken record), not the range of the
training data: drift inside the valid range is the monitoring's job, not the validator's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NumericKind = Literal["int", "float"]


@dataclass(frozen=True)
class NumericFeature:
    """A numeric input with hard validity bounds.

    Attributes:
        name: Column name, as sent by callers.
        kind: ``"int"`` for counts and scores, ``"float"`` otherwise.
        minimum: Smallest valid value (inclusive).
        maximum: Largest valid value (inclusive).
        unit: The unit callers must use; training-serving skew is a unit mismatch.
        max_null_rate: Largest share of nulls a healthy batch may have (0 = never null).
        description: One line for humans and the OpenAPI docs.
    """

    name: str
    kind: NumericKind
    minimum: float
    maximum: float
    unit: str
    max_null_rate: float
    description: str

    @property
    def nullable(self) -> bool:
        """Whether a single record may omit this value."""
        return self.max_null_rate > 0


@dataclass(frozen=True)
class CategoricalFeature:
    """A categorical input with a closed set of allowed values.

    Attributes:
        name: Column name, as sent by callers.
        categories: Every allowed value; anything else is an unknown category.
        max_null_rate: Largest share of nulls a healthy batch may have (0 = never null).
        description: One line for humans and the OpenAPI docs.
    """

    name: str
    categories: tuple[str, ...]
    max_null_rate: float
    description: str

    @property
    def nullable(self) -> bool:
        """Whether a single record may omit this value."""
        return self.max_null_rate > 0


Feature = NumericFeature | CategoricalFeature

FEATURES: tuple[Feature, ...] = (
    NumericFeature("age", "int", 18, 100, "years", 0.0, "Applicant age"),
    NumericFeature(
        "annual_income", "float", 0, 5_000_000, "USD per year", 0.0, "Declared gross income"
    ),
    NumericFeature("loan_amount", "float", 500, 200_000, "USD", 0.0, "Requested principal"),
    NumericFeature("loan_term_months", "int", 6, 84, "months", 0.0, "Repayment term"),
    NumericFeature("interest_rate", "float", 0.0, 0.45, "fraction per year", 0.0, "Offered APR"),
    NumericFeature("credit_score", "int", 300, 850, "points", 0.0, "Bureau score"),
    NumericFeature(
        "debt_to_income", "float", 0.0, 3.0, "ratio", 0.05, "Monthly debt over monthly income"
    ),
    NumericFeature("open_accounts", "int", 0, 60, "accounts", 0.0, "Open credit lines"),
    NumericFeature(
        "delinquencies_2y", "int", 0, 30, "events", 0.0, "Delinquencies in the last two years"
    ),
    NumericFeature(
        "employment_years", "float", 0.0, 60.0, "years", 0.10, "Years with current employer"
    ),
    CategoricalFeature(
        "home_ownership", ("rent", "own", "mortgage", "other"), 0.0, "Housing status"
    ),
    CategoricalFeature(
        "loan_purpose",
        ("debt_consolidation", "credit_card", "home_improvement", "car", "medical", "business"),
        0.0,
        "Declared purpose of the loan",
    ),
    CategoricalFeature(
        "segment", ("mass", "affluent", "small_business"), 0.0, "Customer segment (slice key)"
    ),
)
"""The model inputs, in the column order every model is trained with."""

TARGET = "default"
"""Binary label: 1 when the loan defaulted within twelve months."""

SEGMENT = "segment"
"""The slice column: evaluation reports and gates every metric per value of it."""

ENTITY_ID = "customer_id"
"""Optional routing key: the same customer always sees the same model variant."""

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
NUMERIC_FEATURES: tuple[NumericFeature, ...] = tuple(
    f for f in FEATURES if isinstance(f, NumericFeature)
)
CATEGORICAL_FEATURES: tuple[CategoricalFeature, ...] = tuple(
    f for f in FEATURES if isinstance(f, CategoricalFeature)
)


def feature(name: str) -> Feature:
    """Return the contract entry for ``name``.

    Raises:
        KeyError: ``name`` is not a feature of the contract; the message lists the valid names.
    """
    for f in FEATURES:
        if f.name == name:
            return f
    raise KeyError(f"unknown feature {name!r}; the contract has: {', '.join(FEATURE_NAMES)}")
