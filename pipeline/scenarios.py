"""Named, parameterised defects and drifts that the whole platform reuses.

Each scenario turns a clean generated frame into a broken or drifted one, deterministically for a
seed, and never edits its input. The training pipeline applies them (``training`` and ``both``);
the traffic simulator applies them to serving batches (``serving`` and ``both``); the monitoring
tests use ``Scenario.affects`` to know which column should light up.

Labels follow the generator's risk model where a change of features or of the risk function
implies a change of outcome (``covariate-shift``, ``concept-drift``). They are redrawn with a
*monotone coupling* (:func:`_relabel`): a row keeps its label unless the new default probability
forces a change, and then flips with exactly the probability that makes the new label a draw from
the new risk model. So the drifted frame is a faithful sample of the drifted world, and a row's
label only changes where the world changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd

from features import TARGET, NumericFeature, feature
from pipeline.data import BASELINE_RISK, RiskCoefficients, default_probability

AppliesTo = Literal["training", "serving", "both"]
ApplyFunction = Callable[[pd.DataFrame, float, np.random.Generator], pd.DataFrame]

UNSEEN_PURPOSE = "crypto"
"""The ``loan_purpose`` value the contract has never heard of."""

CREDIT_SCORE_STD = 63.0
"""Standard deviation of ``credit_score`` in generated data: the unit of the covariate shift.

A fixed unit (not each batch's own std) makes the shift identical for a 10-row serving batch and
a 20,000-row training set."""

INCOME_SKEW_DIVISOR = 1_000.0
"""Serving skew: income arrives in thousands of USD instead of USD."""


class ScenarioError(ValueError):
    """A scenario cannot be applied as asked; the message says why and what is valid."""


class UnknownScenarioError(ScenarioError):
    """The scenario name is not one of :data:`SCENARIOS`."""


class InvalidMagnitudeError(ScenarioError):
    """The magnitude is outside the scenario's valid range."""


@dataclass(frozen=True)
class Scenario:
    """One named drift or defect.

    Attributes:
        name: Identifier used on the command line (``null-spike``).
        summary: One line for humans.
        default_magnitude: Magnitude used when the caller gives none.
        magnitude_range: Inclusive bounds of a valid magnitude.
        magnitude_unit: What the magnitude measures, for messages and ``--help``.
        applies_to: Where the defect happens: training data, serving traffic, or both.
        affects: Columns the scenario changes (``default`` for the label).
        apply: ``(frame, magnitude, rng) -> new frame``; prefer :func:`apply_scenario`.
    """

    name: str
    summary: str
    default_magnitude: float
    magnitude_range: tuple[float, float]
    magnitude_unit: str
    applies_to: AppliesTo
    affects: tuple[str, ...]
    apply: ApplyFunction


def _relabel(
    labels: np.ndarray, p_old: np.ndarray, p_new: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Redraw labels from ``p_new`` while changing as few of them as possible.

    If ``y ~ Bernoulli(p_old)``, the result is ``Bernoulli(p_new)``: a 0 becomes 1 with
    probability ``(p_new - p_old) / (1 - p_old)`` where risk rose, and a 1 becomes 0 with
    probability ``1 - p_new / p_old`` where it fell.
    """
    u = rng.random(labels.shape[0])
    rises = p_new > p_old
    up = np.where(rises, (p_new - p_old) / np.maximum(1.0 - p_old, 1e-12), 0.0)
    down = np.where(~rises, 1.0 - p_new / np.maximum(p_old, 1e-12), 0.0)
    new = labels.copy()
    new[(labels == 0) & (u < up)] = 1
    new[(labels == 1) & (u < down)] = 0
    return new


def _pick(n: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """Return exactly ``round(share * n)`` distinct row positions."""
    return rng.choice(n, size=round(share * n), replace=False)


def _clip_to_contract(values: pd.Series, column: str) -> pd.Series:
    spec = feature(column)
    if not isinstance(spec, NumericFeature):
        raise TypeError(f"{column} is not numeric")
    return values.clip(lower=spec.minimum, upper=spec.maximum)


def _require_target(df: pd.DataFrame, scenario: str) -> None:
    if TARGET not in df.columns:
        raise ScenarioError(f"{scenario} changes labels, but the frame has no {TARGET!r} column")


def _covariate_shift(df: pd.DataFrame, magnitude: float, rng: np.random.Generator) -> pd.DataFrame:
    out = df.copy()
    scores = df["credit_score"]
    shifted = _clip_to_contract((scores - magnitude * CREDIT_SCORE_STD).round(), "credit_score")
    out["credit_score"] = shifted.astype(scores.dtype)
    # Covariate shift keeps P(default | features): the label follows the moved feature.
    if TARGET in df.columns:
        labels = df[TARGET].to_numpy(dtype=np.int64)
        new = _relabel(labels, default_probability(df), default_probability(out), rng)
        out[TARGET] = new.astype(df[TARGET].dtype)
    return out


def _unseen_category(df: pd.DataFrame, magnitude: float, rng: np.random.Generator) -> pd.DataFrame:
    out = df.copy()
    rows = _pick(len(df), magnitude, rng)
    out["loan_purpose"] = out["loan_purpose"].astype(object)
    out.iloc[rows, out.columns.get_loc("loan_purpose")] = UNSEEN_PURPOSE
    return out


def _null_spike(df: pd.DataFrame, magnitude: float, rng: np.random.Generator) -> pd.DataFrame:
    out = df.copy()
    present = np.flatnonzero(df["debt_to_income"].notna().to_numpy())
    missing_now = len(df) - len(present)
    extra = min(max(round(magnitude * len(df)) - missing_now, 0), len(present))
    rows = rng.choice(present, size=extra, replace=False)
    out["debt_to_income"] = out["debt_to_income"].astype(float)
    out.iloc[rows, out.columns.get_loc("debt_to_income")] = np.nan
    return out


def _prior_shift(df: pd.DataFrame, magnitude: float, rng: np.random.Generator) -> pd.DataFrame:
    _require_target(df, "prior-shift")
    labels = df[TARGET].to_numpy()
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    if len(positives) == 0 or len(negatives) == 0:
        raise ScenarioError("prior-shift needs both classes in the frame to resample from")
    # Label shift keeps P(features | label): resample within each class, same row count.
    n_pos = round(magnitude * len(df))
    rows = np.concatenate(
        [
            rng.choice(positives, size=n_pos, replace=n_pos > len(positives)),
            rng.choice(negatives, size=len(df) - n_pos, replace=len(df) - n_pos > len(negatives)),
        ]
    )
    rows = np.sort(rng.permutation(rows))
    return df.iloc[rows].reset_index(drop=True)


DRIFTED_RISK = RiskCoefficients(
    intercept=-1.4,
    credit_score=-0.45,
    debt_to_income=3.6,
    delinquencies=0.10,
    interest_rate=0.02,
    loan_to_income=0.3,
    employment_years=-0.12,
    age=0.02,
    segment={"mass": 0.0, "affluent": 0.35, "small_business": -0.40},
    purpose={
        "debt_consolidation": 0.0,
        "credit_card": 0.35,
        "home_improvement": -0.15,
        "car": 0.10,
        "medical": -0.10,
        "business": -0.20,
    },
    home_ownership={"rent": 0.10, "own": -0.20, "mortgage": -0.15, "other": 0.20},
)
"""The risk function after the concept drift: debt load and tenure matter, the score much less."""


def blend_risk(magnitude: float) -> RiskCoefficients:
    """Return the risk function ``magnitude`` of the way from the baseline to the drifted one."""

    def mix(a: float, b: float) -> float:
        return (1.0 - magnitude) * a + magnitude * b

    def mix_map(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        return {key: mix(a[key], b[key]) for key in a}

    base, drifted = BASELINE_RISK, DRIFTED_RISK
    return replace(
        base,
        intercept=mix(base.intercept, drifted.intercept),
        credit_score=mix(base.credit_score, drifted.credit_score),
        debt_to_income=mix(base.debt_to_income, drifted.debt_to_income),
        delinquencies=mix(base.delinquencies, drifted.delinquencies),
        interest_rate=mix(base.interest_rate, drifted.interest_rate),
        loan_to_income=mix(base.loan_to_income, drifted.loan_to_income),
        employment_years=mix(base.employment_years, drifted.employment_years),
        age=mix(base.age, drifted.age),
        segment=mix_map(base.segment, drifted.segment),
        purpose=mix_map(base.purpose, drifted.purpose),
        home_ownership=mix_map(base.home_ownership, drifted.home_ownership),
    )


def _concept_drift(df: pd.DataFrame, magnitude: float, rng: np.random.Generator) -> pd.DataFrame:
    out = df.copy()
    # Without labels (a serving batch) concept drift is invisible: the features do not move.
    if TARGET in df.columns:
        labels = df[TARGET].to_numpy(dtype=np.int64)
        p_new = default_probability(df, blend_risk(magnitude))
        new = _relabel(labels, default_probability(df), p_new, rng)
        out[TARGET] = new.astype(df[TARGET].dtype)
    return out


def _serving_skew(df: pd.DataFrame, magnitude: float, rng: np.random.Generator) -> pd.DataFrame:
    out = df.copy()
    rows = _pick(len(df), magnitude, rng)
    income = out["annual_income"].astype(float)
    income.iloc[rows] = income.iloc[rows] / INCOME_SKEW_DIVISOR
    out["annual_income"] = income
    return out


def _label_noise(df: pd.DataFrame, magnitude: float, rng: np.random.Generator) -> pd.DataFrame:
    _require_target(df, "label-noise")
    out = df.copy()
    rows = _pick(len(df), magnitude, rng)
    labels = out[TARGET].to_numpy(copy=True)
    labels[rows] = 1 - labels[rows]
    out[TARGET] = labels
    return out


_ALL = (
    Scenario(
        "covariate-shift",
        "credit_score moves down by magnitude x 63 points (its std); labels follow the risk model",
        1.0,
        (0.0, 5.0),
        "standard deviations",
        "both",
        ("credit_score", TARGET),
        _covariate_shift,
    ),
    Scenario(
        "unseen-category",
        f"a share of rows gets loan_purpose={UNSEEN_PURPOSE!r}, a category the contract lacks",
        0.2,
        (0.0, 1.0),
        "share of rows",
        "both",
        ("loan_purpose",),
        _unseen_category,
    ),
    Scenario(
        "null-spike",
        "debt_to_income goes missing far above its contract null rate (an upstream join broke)",
        0.3,
        (0.0, 1.0),
        "null share",
        "both",
        ("debt_to_income",),
        _null_spike,
    ),
    Scenario(
        "prior-shift",
        "rows are resampled within each class so the default rate becomes the magnitude",
        0.35,
        (0.01, 0.99),
        "default rate",
        "both",
        (TARGET,),
        _prior_shift,
    ),
    Scenario(
        "concept-drift",
        "labels are redrawn from a changed risk function (debt load matters, score much less)",
        1.0,
        (0.0, 1.0),
        "share of the way to the drifted risk function",
        "both",
        (TARGET,),
        _concept_drift,
    ),
    Scenario(
        "serving-skew",
        "annual_income arrives in thousands of USD: still in range, wrong units for the model",
        1.0,
        (0.0, 1.0),
        "share of rows",
        "serving",
        ("annual_income",),
        _serving_skew,
    ),
    Scenario(
        "label-noise",
        "a share of training labels is flipped at random (a labelling defect)",
        0.3,
        (0.0, 0.5),
        "share of labels flipped",
        "training",
        (TARGET,),
        _label_noise,
    ),
)

_RISK_MODEL_INPUTS = (
    "age", "annual_income", "credit_score", "debt_to_income", "delinquencies_2y",
    "employment_years", "interest_rate", "loan_amount", "segment", "loan_purpose",
    "home_ownership",
)  # fmt: skip
"""The credit columns :func:`pipeline.data.default_probability` reads (to relabel rows)."""


def _reads(scenario: Scenario) -> tuple[str, ...]:
    """The columns a scenario needs: those it changes, and the risk model's when it relabels."""
    relabels = scenario.apply in (_covariate_shift, _concept_drift)
    return (*scenario.affects, *(_RISK_MODEL_INPUTS if relabels else ()))


SCENARIOS: Mapping[str, Scenario] = MappingProxyType({s.name: s for s in _ALL})
"""Every scenario by name."""


def scenario_names() -> tuple[str, ...]:
    """Return the scenario names, in a stable order."""
    return tuple(SCENARIOS)


def get_scenario(name: str) -> Scenario:
    """Return the scenario called ``name``.

    Raises:
        UnknownScenarioError: No such scenario; the message lists the valid names.
    """
    try:
        return SCENARIOS[name]
    except KeyError:
        valid = ", ".join(scenario_names())
        raise UnknownScenarioError(f"unknown scenario {name!r}; valid: {valid}") from None


def resolve_magnitude(scenario: Scenario, magnitude: float | None) -> float:
    """Return ``magnitude`` (or the default) after checking it is in range.

    Raises:
        InvalidMagnitudeError: The magnitude is not a finite number within the scenario's range.
    """
    value = scenario.default_magnitude if magnitude is None else float(magnitude)
    low, high = scenario.magnitude_range
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidMagnitudeError(
            f"{scenario.name}: magnitude must be between {low:g} and {high:g} "
            f"({scenario.magnitude_unit}), got {value:g}"
        )
    return value


def apply_scenario(
    df: pd.DataFrame, name: str, magnitude: float | None = None, seed: int = 0
) -> pd.DataFrame:
    """Return a copy of ``df`` with scenario ``name`` applied.

    Args:
        df: A frame shaped like :func:`pipeline.data.generate` output; it is not modified.
        name: One of :func:`scenario_names`.
        magnitude: Strength of the scenario (see ``Scenario.magnitude_unit``); ``None`` uses
            the scenario's default.
        seed: Seed of the scenario's own random choices.

    Returns:
        A new frame.

    Raises:
        UnknownScenarioError: ``name`` is not a scenario.
        InvalidMagnitudeError: ``magnitude`` is out of range.
        ScenarioError: The frame lacks what the scenario needs (labels, or the credit column
            it changes).
    """
    scenario = get_scenario(name)
    value = resolve_magnitude(scenario, magnitude)
    missing = [c for c in _reads(scenario) if c != TARGET and c not in df.columns]
    if missing:
        generic = ", ".join(s.name for s in _ALL if not set(_reads(s)) - {TARGET})
        raise ScenarioError(
            f"{name} needs {', '.join(missing[:3])}: columns of the credit example this data "
            f"lacks; on other data only {generic} apply for now"
        )
    return scenario.apply(df, value, np.random.default_rng(seed))
