"""Behavioural tests of a fitted model on perturbed inputs (after Ribeiro et al., CheckList).

Aggregate metrics can hide a model that learned something absurd. These checks perturb real
holdout rows and assert what must happen whatever the data: invariance (a routing key or a
rounding error must not move the score), the directions the contract declares (``directions:``,
e.g. a better credit score must lower the risk; none declared, none checked) and minimum
functionality (the typical positive row scores above the typical negative one). Every check
reads the contract, not a dataset: the credit example's applicant profiles below are kept for
its own model tests (``tests/model``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from features import (
    CATEGORICAL_FEATURES,
    CONTRACT,
    ENTITY_ID,
    FEATURE_NAMES,
    NUMERIC_FEATURES,
    TARGET,
    NumericFeature,
    feature,
)
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
"""The credit example: an applicant any sensible credit model scores as unlikely to default."""

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
"""The credit example: an applicant any sensible credit model scores as likely to default."""


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


ROW_ID_COLUMN = "row_id"
"""The id column the invariance check adds when the contract names no routing key."""


def entity_id_invariance(model: Classifier, sample: pd.DataFrame) -> BehaviouralCheck:
    """The routing key is not a feature: changing it must not move any score.

    Without an ``entity_id`` in the contract, an added ``row_id`` column stands in for it: a
    model must ignore a column it was not trained on.
    """
    column = ENTITY_ID or ROW_ID_COLUMN
    base = sample.assign(**{column: [f"c-{i:06d}" for i in range(len(sample))]})
    other = sample.assign(**{column: [f"x-{i:06d}" for i in range(len(sample))][::-1]})
    change = float(np.max(np.abs(_scores(model, base) - _scores(model, other))))
    return BehaviouralCheck(
        f"invariance_{column}",
        "invariance",
        change == 0.0,
        change,
        f"largest score change when every {column} changes: {change:.2e} (must be 0)",
    )


def jitter_invariance(
    model: Classifier, sample: pd.DataFrame, seed: int = 0, tolerance: float = 0.02
) -> BehaviouralCheck:
    """A ±0.1% jitter of every float feature (rounding noise) barely moves scores.

    Passes when the 99th percentile of absolute score changes is at most ``tolerance``: a
    tree model may jump at a split threshold for a handful of rows, but not for many. Jittered
    values stay inside the contract's bounds.
    """
    rng = np.random.default_rng(seed)
    jittered = sample.assign(
        **{
            f.name: (sample[f.name] * rng.uniform(0.999, 1.001, len(sample))).clip(
                f.minimum, f.maximum
            )
            for f in NUMERIC_FEATURES
            if f.kind == "float"
        }
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
        f"{column} {delta:+g}: mean {CONTRACT.score} {before:.4f} -> {after:.4f} "
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


def class_median_profiles(sample: pd.DataFrame) -> pd.DataFrame | None:
    """The typical negative and positive rows: per class, numeric medians and category modes.

    Returns:
        A two-row frame (negative, then positive) in contract order, or ``None`` when the
        sample lacks the label or one of the classes.
    """
    if TARGET not in sample.columns or sample[TARGET].nunique() < 2:
        return None
    rows = []
    for label in (0, 1):
        rows_of_class = sample[sample[TARGET] == label]
        profile: dict[str, Any] = {}
        for num in NUMERIC_FEATURES:
            median = rows_of_class[num.name].median()
            whole = num.kind == "int" and not pd.isna(median)
            profile[num.name] = round(median) if whole else median
        for cat in CATEGORICAL_FEATURES:
            modes = rows_of_class[cat.name].mode()
            profile[cat.name] = modes.iloc[0] if len(modes) else cat.categories[0]
        rows.append(profile)
    return pd.DataFrame(rows)[list(FEATURE_NAMES)].astype(sample[list(FEATURE_NAMES)].dtypes)


def class_median_functionality(model: Classifier, sample: pd.DataFrame) -> BehaviouralCheck:
    """The typical positive row scores above the typical negative one (any contract)."""
    profiles = class_median_profiles(sample)
    if profiles is None:
        return BehaviouralCheck(
            "minimum_functionality_class_medians",
            "minimum_functionality",
            True,
            0.0,
            f"skipped: the sample lacks one class of {TARGET!r}",
        )
    negative, positive = _scores(model, profiles)
    return BehaviouralCheck(
        "minimum_functionality_class_medians",
        "minimum_functionality",
        bool(positive > negative),
        float(positive - negative),
        f"typical positive row {positive:.3f}, typical negative row {negative:.3f} "
        "(the positive must score higher)",
    )


def run_behavioural_checks(
    model: Classifier, sample: pd.DataFrame, seed: int = 0
) -> list[BehaviouralCheck]:
    """Run every behavioural check on ``sample`` (holdout rows; not modified).

    Args:
        model: A fitted classifier.
        sample: Rows with every contract feature (and the label, for the class profiles).
        seed: Seed of the random perturbations.

    Returns:
        One :class:`BehaviouralCheck` per test: invariance, the contract's directions, then
        the class-median profiles.
    """
    with limit_threads(1):  # many small predictions: threads would only wait on each other
        return [
            entity_id_invariance(model, sample),
            jitter_invariance(model, sample, seed),
            *(_directional(model, sample, d.feature, d.step, d.score) for d in CONTRACT.directions),
            class_median_functionality(model, sample),
        ]
