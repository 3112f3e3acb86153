"""The credit example's contract file says what the credit data and model were built on."""

from __future__ import annotations

import pytest

from features import DEFAULT_CONTRACT, load_contract

pytestmark = pytest.mark.unit


def test_the_credit_contract_lists_its_thirteen_inputs_in_training_order() -> None:
    """Column order is the order models were trained with: changing it breaks every model."""
    contract = load_contract(DEFAULT_CONTRACT)
    assert contract.feature_names == (
        "age", "annual_income", "loan_amount", "loan_term_months", "interest_rate",
        "credit_score", "debt_to_income", "open_accounts", "delinquencies_2y",
        "employment_years", "home_ownership", "loan_purpose", "segment",
    )  # fmt: skip
    assert (contract.target, contract.entity_id, contract.segment) == (
        "default", "customer_id", "segment",
    )  # fmt: skip


def test_only_income_ratio_and_tenure_may_be_null() -> None:
    """The null budgets the validation suite enforces: 5 % debt-to-income, 10 % tenure."""
    contract = load_contract(DEFAULT_CONTRACT)
    budgets = {f.name: f.max_null_rate for f in contract.features if f.max_null_rate}
    assert budgets == {"debt_to_income": 0.05, "employment_years": 0.10}
