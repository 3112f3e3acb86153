"""Behavioural tests of a fitted model on perturbed inputs (after Ribeiro et al., CheckList).

Aggregate metrics can hide a model that learned something absurd. These checks perturb real
holdout rows and assert what domain knowledge says must happen: invariance (an id or a rounding
error must not move the score), direction (a better credit score must lower the risk) and minimum
functionality (an obviously prime applicant scores low, an obviously risky one high).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from features import ENTITY_ID, FEATURE_NAMES, NumericFeature, feature
from pipeline.threads import limit_threads
from pipeline.train import Classifier

CheckKind = Literal["invariance", "directional", "minimum_functionality"]

PRIME_APPLICANT: dict[str, Any] = {
    "age": 45,
    "annual_income": 150_000.0,
    "loan_amount": 10_000.0,
    "loan_term_months": 36,
    "interest_rate": 0.06,
    "credit_score": 810,
    "debt_to_income": 0.10,
    "open_accounts": 8,
    "delinquencies_2y": 0,
    "employment_years": 15.0,
    "home_ownership": "own",
    "loan_purpose": "home_improvement",
    "segment": "affluent",
}
"""An applicant any sensible credit model scores as very unlikely to default."""

SUBPRIME_APPLICANT: dict[str, Any] = {
    "age": 24,
    "annual_income": 22_000.0,
    "loan_amount": 30_000.0,
    "loan_term_months": 60,
    "interest_rate": 0.32,
    "credit_score": 520,
    "debt_to_income": 1.10,
    "open_accounts": 3,
    "delinquencies_2y": 4,
    "employment_years": 0.5,
    "home_ownership": "rent",
    "loan_purpose": "medical",
    "segment": "mass",
}
"""An applicant any sensible credit model scores as likely to default."""


@dataclass(frozen=True)
class BehaviouralCheck:
    """The outcome of one behavioural test.

    Attributes:
        name: Identifier, e.g. ``directional_credit_score``.
        kind: ``invariance``, ``directional`` or ``minimum_functionality``.
        passed: Whether the model behaved as required.
        value: The measured quantity the verdict rests on.
        detail: One readable sentence with the numbers.
    """

    name: str
    kind: CheckKind
    passed: bool
    value: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form."""
        return asdict(self)


def _scores(model: Classifier, rows: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(rows)[:, 1], dtype=float)


def _shift(rows: pd.DataFrame, column: str, delta: float) -> pd.DataFrame:
    spec = feature(column)
    if not isinstance(spec, NumericFeature):
        raise TypeError(f"{column} is not numeric")
    moved = (rows[column] + delta).clip(spec.minimum, spec.maximum).astype(rows[column].dtype)
    return rows.assign(**{column: moved})


def entity_id_invariance(model: Classifier, sample: pd.DataFrame) -> BehaviouralCheck:
    """The customer id is a routing key, not a feature: changing it must not move any score."""
    base = sample.assign(**{ENTITY_ID: [f"c-{i:06d}" for i in range(len(sample))]})
    other = sample.assign(**{ENTITY_ID: [f"x-{i:06d}" for i in range(len(sample))][::-1]})
    change = float(np.max(np.abs(_scores(model, base) - _scores(model, other))))
    return BehaviouralCheck(
        "invariance_customer_id",
        "invariance",
        change == 0.0,
        change,
        f"largest score change when every {ENTITY_ID} changes: {change:.2e} (must be 0)",
    )


def jitter_invariance(
    model: Classifier, sample: pd.DataFrame, seed: int = 0, tolerance: float = 0.02
) -> BehaviouralCheck:
    """A ±0.1% jitter of income and loan amount (rounding noise) barely moves scores.

    Passes when the 99th percentile of absolute score changes is at most ``tolerance``: a
    tree model may jump at a split threshold for a handful of rows, but not for many.
    """
    rng = np.random.default_rng(seed)
    jittered = sample.assign(
        annual_income=sample["annual_income"] * rng.uniform(0.999, 1.001, len(sample)),
        loan_amount=(sample["loan_amount"] * rng.uniform(0.999, 1.001, len(sample))).clip(
            500.0, 200_000.0
        ),
    )
    changes = np.abs(_scores(model, sample) - _scores(model, jittered))
    p99 = float(np.quantile(changes, 0.99))
    return BehaviouralCheck(
        "invariance_numeric_jitter",
        "invariance",
        p99 <= tolerance,
        p99,
        f"99th percentile score change under ±0.1% jitter: {p99:.4f} (at most {tolerance})",
    )


def _directional(
    model: Classifier,
    sample: pd.DataFrame,
    column: str,
    delta: float,
    expect: Literal["higher", "lower"],
) -> BehaviouralCheck:
    before = float(_scores(model, sample).mean())
    after = float(_scores(model, _shift(sample, column, delta)).mean())
    change = after - before
    passed = change > 0 if expect == "higher" else change < 0
    return BehaviouralCheck(
        f"directional_{column}",
        "directional",
        passed,
        change,
        f"{column} {delta:+g}: mean default probability {before:.4f} -> {after:.4f} "
        f"(must be {expect})",
    )


def minimum_functionality(
    model: Classifier, prime_ceiling: float = 0.10, subprime_floor: float = 0.40
) -> BehaviouralCheck:
    """Obvious cases come out right: prime below ``prime_ceiling``, subprime above the floor."""
    profiles = pd.DataFrame([PRIME_APPLICANT, SUBPRIME_APPLICANT])[list(FEATURE_NAMES)]
    prime, subprime = _scores(model, profiles)
    passed = bool(prime < prime_ceiling and subprime > subprime_floor and prime < subprime)
    return BehaviouralCheck(
        "minimum_functionality_profiles",
        "minimum_functionality",
        passed,
        float(subprime - prime),
        f"prime applicant {prime:.3f} (must be < {prime_ceiling}), "
        f"subprime applicant {subprime:.3f} (must be > {subprime_floor})",
    )


def run_behavioural_checks(
    model: Classifier, sample: pd.DataFrame, seed: int = 0
) -> list[BehaviouralCheck]:
    """Run every behavioural check on ``sample`` (holdout rows; not modified).

    Args:
        model: A fitted classifier.
        sample: Rows with every contract feature.
        seed: Seed of the random perturbations.

    Returns:
        One :class:`BehaviouralCheck` per test, invariance first.
    """
    with limit_threads(1):  # many small predictions: threads would only wait on each other
        return [
            entity_id_invariance(model, sample),
            jitter_invariance(model, sample, seed),
            _directional(model, sample, "credit_score", 60, "lower"),
            _directional(model, sample, "delinquencies_2y", 2, "higher"),
            _directional(model, sample, "debt_to_income", 0.3, "higher"),
            minimum_functionality(model),
        ]
