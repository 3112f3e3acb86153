"""A seeded generator of credit-default applications that honours the feature contract.

The label is drawn from a known, observable risk model (:func:`default_probability`): there is
no hidden noise term, so the drift scenarios can relabel rows *exactly* under a changed feature
value or a changed risk function. The irreducible error comes from the Bernoulli draw alone, which
puts a well-fitted model's ROC AUC around 0.8 at a default rate near 15%.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features import ENTITY_ID, FEATURE_NAMES, TARGET

SEGMENT_SHARES: dict[str, float] = {"mass": 0.70, "affluent": 0.20, "small_business": 0.10}
"""Share of customers per segment; small business is the thin slice the gates watch."""

# Median income per segment (USD per year): the segments differ in more than a label.
_SEGMENT_INCOME = {"mass": 48_000.0, "affluent": 130_000.0, "small_business": 85_000.0}
_TERMS = np.array([12, 24, 36, 48, 60, 72, 84])
_TERM_SHARES = np.array([0.05, 0.15, 0.35, 0.15, 0.20, 0.07, 0.03])
_PURPOSES = [
    "debt_consolidation",
    "credit_card",
    "home_improvement",
    "car",
    "medical",
    "business",
]
_PURPOSE_SHARES = {
    "mass": [0.36, 0.26, 0.12, 0.15, 0.08, 0.03],
    "affluent": [0.25, 0.20, 0.28, 0.20, 0.04, 0.03],
    "small_business": [0.15, 0.10, 0.05, 0.10, 0.05, 0.55],
}
# Imputation values used only to *score* rows whose input is missing; nulls are missing
# completely at random, so a typical value keeps the scenario relabelling close to exact.
_RISK_FILL = {"debt_to_income": 0.30, "employment_years": 4.0}


@dataclass(frozen=True)
class RiskCoefficients:
    """Coefficients of the log-odds of default; the concept-drift scenario swaps them.

    Attributes:
        intercept: Log-odds of the reference applicant.
        credit_score: Per 100 points above 680 (negative: better score, lower risk).
        debt_to_income: Per unit of ratio above 0.30.
        delinquencies: Per delinquency, saturating at five.
        interest_rate: Per percentage point above 12%.
        loan_to_income: Per unit of loan amount over annual income above 0.25.
        employment_years: Per year, capped at twenty.
        age: Per year above forty.
        segment: Additive effect per segment.
        purpose: Additive effect per loan purpose.
        home_ownership: Additive effect per housing status.
    """

    intercept: float = -1.7
    credit_score: float = -1.4
    debt_to_income: float = 1.9
    delinquencies: float = 0.38
    interest_rate: float = 0.06
    loan_to_income: float = 1.3
    employment_years: float = -0.045
    age: float = -0.012
    segment: dict[str, float] = field(
        default_factory=lambda: {"mass": 0.0, "affluent": -0.45, "small_business": 0.40}
    )
    purpose: dict[str, float] = field(
        default_factory=lambda: {
            "debt_consolidation": 0.10,
            "credit_card": 0.0,
            "home_improvement": -0.15,
            "car": -0.10,
            "medical": 0.20,
            "business": 0.30,
        }
    )
    home_ownership: dict[str, float] = field(
        default_factory=lambda: {"rent": 0.10, "own": -0.20, "mortgage": -0.15, "other": 0.20}
    )


BASELINE_RISK = RiskCoefficients()
"""The feature→label relationship every generated dataset follows."""


def default_log_odds(
    df: pd.DataFrame, coefficients: RiskCoefficients = BASELINE_RISK
) -> np.ndarray:
    """Return the log-odds of default for each row under ``coefficients``.

    Args:
        df: Rows with every contract feature; missing ``debt_to_income`` and
            ``employment_years`` are scored at a typical value.
        coefficients: The risk function to apply.

    Returns:
        One float per row.
    """
    c = coefficients
    score = df["credit_score"].to_numpy(dtype=float)
    dti = df["debt_to_income"].fillna(_RISK_FILL["debt_to_income"]).to_numpy(dtype=float)
    employment = df["employment_years"].fillna(_RISK_FILL["employment_years"]).to_numpy(float)
    income = np.maximum(df["annual_income"].to_numpy(dtype=float), 1_000.0)
    loan_to_income = df["loan_amount"].to_numpy(dtype=float) / income
    delinquencies = np.minimum(df["delinquencies_2y"].to_numpy(dtype=float), 5.0)
    rate_points = df["interest_rate"].to_numpy(dtype=float) * 100.0
    log_odds = (
        c.intercept
        + c.credit_score * (score - 680.0) / 100.0
        + c.debt_to_income * (dti - 0.30)
        + c.delinquencies * delinquencies
        + c.interest_rate * (rate_points - 12.0)
        + c.loan_to_income * (np.minimum(loan_to_income, 3.0) - 0.25)
        + c.employment_years * np.minimum(employment, 20.0)
        + c.age * (df["age"].to_numpy(dtype=float) - 40.0)
    )
    # Unknown categories (e.g. the unseen-category scenario) carry no extra risk.
    for column, effects in (
        ("segment", c.segment),
        ("loan_purpose", c.purpose),
        ("home_ownership", c.home_ownership),
    ):
        log_odds = log_odds + df[column].map(effects).fillna(0.0).to_numpy(dtype=float)
    return np.asarray(log_odds, dtype=float)


def default_probability(
    df: pd.DataFrame, coefficients: RiskCoefficients = BASELINE_RISK
) -> np.ndarray:
    """Return the true probability of default for each row (see :func:`default_log_odds`)."""
    return np.asarray(1.0 / (1.0 + np.exp(-default_log_odds(df, coefficients))), dtype=float)


def _choice_by_row(
    rng: np.random.Generator, probabilities: np.ndarray, labels: list[str]
) -> np.ndarray:
    """Draw one label per row from a row-specific categorical distribution."""
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative /= cumulative[:, -1:]
    index = (rng.random((probabilities.shape[0], 1)) > cumulative).sum(axis=1)
    return np.asarray(np.asarray(labels, dtype=object)[index])


def generate(n_rows: int, seed: int) -> pd.DataFrame:
    """Generate ``n_rows`` loan applications with their default label.

    Args:
        n_rows: Number of rows (at least 1).
        seed: Seed of the random generator; the same seed gives an identical frame.

    Returns:
        Columns ``FEATURE_NAMES`` in contract order, then ``TARGET`` (int 0/1) and ``ENTITY_ID``
        (``c-000000``, ``c-000001``, …: positional, so ids are stable across seeds).

    Raises:
        ValueError: ``n_rows`` is smaller than 1.
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    # One generator drawn in a fixed order (applicants, loans, bureau, label, nulls): the same
    # seed gives the same frame, and reordering these calls would change every dataset.
    rng = np.random.default_rng(seed)
    people = _applicants(rng, n_rows)
    loan, term = _loans(rng, people)
    bureau = _bureau(rng, people, term)
    frame = pd.DataFrame(
        {
            "age": people.age,
            "annual_income": people.income.astype(float),
            "loan_amount": loan.astype(float),
            "loan_term_months": term,
            "interest_rate": bureau.rate.astype(float),
            "credit_score": bureau.score,
            "debt_to_income": bureau.dti.astype(float),
            "open_accounts": bureau.accounts,
            "delinquencies_2y": bureau.delinquencies,
            "employment_years": people.employment.astype(float),
            "home_ownership": people.home,
            "loan_purpose": people.purpose,
            "segment": people.segment,
        }
    )
    probability = default_probability(frame)
    frame[TARGET] = (rng.random(n_rows) < probability).astype(np.int64)
    # Nulls are drawn after the label: missing completely at random, as a form field left empty.
    for column, rate_null in (("debt_to_income", 0.02), ("employment_years", 0.05)):
        frame.loc[rng.random(n_rows) < rate_null, column] = np.nan
    if ENTITY_ID is None:  # a contract without a routing key: the rows carry none
        return frame[[*FEATURE_NAMES, TARGET]]
    frame[ENTITY_ID] = [f"c-{i:06d}" for i in range(n_rows)]
    return frame[[*FEATURE_NAMES, TARGET, ENTITY_ID]]


@dataclass(frozen=True)
class _Applicants:
    """Who applies: one array per attribute, one entry per row."""

    segment: np.ndarray
    stress: np.ndarray
    age: np.ndarray
    income: np.ndarray
    employment: np.ndarray
    home: np.ndarray
    purpose: np.ndarray


def _applicants(rng: np.random.Generator, n: int) -> _Applicants:
    """Segment, age, income, employment, housing and loan purpose of ``n`` applicants."""
    segments = list(SEGMENT_SHARES)
    segment = rng.choice(
        np.asarray(segments, dtype=object), size=n, p=list(SEGMENT_SHARES.values())
    )
    # A latent "financial stress" drives delinquencies, score and debt together, so the
    # features are correlated the way bureau data is.
    stress = rng.standard_normal(n)
    age = np.clip(np.round(rng.normal(42.0, 12.0, n)), 18, 85).astype(np.int64)

    median_income = np.array([_SEGMENT_INCOME[s] for s in segment])
    income = median_income * np.exp(rng.normal(0.0, 0.45, n) + 0.008 * (age - 42) - 0.10 * stress)
    income = np.round(np.clip(income, 8_000.0, 5_000_000.0), -1)

    employment = np.minimum(age - 18.0, rng.gamma(1.6, 4.0, n))
    employment = np.round(np.clip(employment, 0.0, 60.0), 1)

    young = (age < 30)[:, None]
    affluent = (segment == "affluent")[:, None]
    # rent, own, mortgage, other
    home_p = np.where(young, [0.62, 0.05, 0.28, 0.05], [0.30, 0.20, 0.45, 0.05])
    home_p = np.where(affluent, home_p * [0.5, 1.6, 1.3, 1.0], home_p)
    home = _choice_by_row(rng, home_p, ["rent", "own", "mortgage", "other"])

    purpose_p = np.array([_PURPOSE_SHARES[s] for s in segment])
    purpose = _choice_by_row(rng, purpose_p, _PURPOSES)
    return _Applicants(segment, stress, age, income, employment, home, purpose)


def _loans(rng: np.random.Generator, people: _Applicants) -> tuple[np.ndarray, np.ndarray]:
    """The amount asked (in proportion to income, larger for a business) and the term."""
    n = len(people.age)
    loan: np.ndarray = people.income * 0.22 * np.exp(rng.normal(0.0, 0.55, n))
    loan = np.where(people.purpose == "business", loan * 1.6, loan)
    loan = np.round(np.clip(loan, 500.0, 200_000.0), -1)
    term = rng.choice(_TERMS, size=n, p=_TERM_SHARES).astype(np.int64)
    return loan, term


@dataclass(frozen=True)
class _Bureau:
    """What a credit bureau and the pricing say about each applicant."""

    delinquencies: np.ndarray
    score: np.ndarray
    accounts: np.ndarray
    dti: np.ndarray
    rate: np.ndarray


def _bureau(rng: np.random.Generator, people: _Applicants, term: np.ndarray) -> _Bureau:
    """Delinquencies, score, open accounts and debt load (all driven by stress), and the rate."""
    n = len(people.age)
    age, stress = people.age, people.stress
    delinquencies = np.clip(rng.poisson(np.exp(-1.7 + 0.75 * stress)), 0, 30).astype(np.int64)
    score = 705.0 + 60.0 * (0.8 * rng.standard_normal(n) - 0.6 * stress)
    score = score + 0.9 * (age - 42) - 18.0 * np.minimum(delinquencies, 5)
    score = np.clip(np.round(score), 300, 850).astype(np.int64)
    accounts = rng.poisson(3.0 + 0.12 * (age - 18) + 2.0 * (people.segment == "affluent"))
    accounts = np.clip(accounts, 0, 60).astype(np.int64)
    dti_mean = np.clip(0.30 + 0.08 * stress, 0.05, None)
    dti = np.round(np.clip(rng.gamma(4.0, dti_mean / 4.0), 0.0, 3.0), 3)
    # Risk-based pricing: the offered rate follows the score and the term.
    rate = 0.06 + 0.20 * np.clip((760.0 - score) / 460.0, 0.0, None) + 0.012 * (term > 48)
    rate = np.round(np.clip(rate + rng.normal(0.0, 0.015, n), 0.02, 0.40), 4)
    return _Bureau(delinquencies, score, accounts, dti, rate)
