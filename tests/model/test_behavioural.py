"""Behavioural tests of a trained model, and the promotion gate on real candidates.

One champion is trained per module on generated data; candidates are trained through the
composed pipeline so the gate sees exactly what it sees in production.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from pipeline.behaviour import (
    PRIME_APPLICANT,
    SUBPRIME_APPLICANT,
    entity_id_invariance,
    jitter_invariance,
    minimum_functionality,
)
from pipeline.config import DataConfig, PipelineConfig
from pipeline.data import generate
from pipeline.pipeline import PipelineResult, run
from pipeline.threads import limit_threads

pytestmark = [pytest.mark.model, pytest.mark.slow]

ROWS = 10_000


def config(seed: int) -> PipelineConfig:
    return PipelineConfig(data=DataConfig(n_rows=ROWS, seed=seed))


@pytest.fixture(scope="module", autouse=True)
def _one_native_thread() -> Iterator[None]:
    with limit_threads(1):
        yield


@pytest.fixture(scope="module")
def first() -> PipelineResult:
    """The champion: the first model, judged on floors alone."""
    result = run(generate(ROWS, seed=1), config(1), None)
    assert result.passed, result.verdict and result.verdict.reasons()
    return result


@pytest.fixture(scope="module")
def sample(first: PipelineResult) -> pd.DataFrame:
    assert first.holdout is not None
    return first.holdout.head(1_000)


def scores(result: PipelineResult, rows: pd.DataFrame) -> pd.Series:
    assert result.model is not None
    return pd.Series(result.model.predict_proba(rows)[:, 1], index=rows.index)


def test_the_customer_id_does_not_change_any_score(
    first: PipelineResult, sample: pd.DataFrame
) -> None:
    """Changing the customer id changes no score (entity-id invariance)."""
    assert first.model is not None
    assert entity_id_invariance(first.model, sample).passed


def test_rounding_noise_in_amounts_barely_moves_scores(
    first: PipelineResult, sample: pd.DataFrame
) -> None:
    """Rounding noise in money amounts moves scores by at most 0.02."""
    assert first.model is not None
    check = jitter_invariance(first.model, sample, tolerance=0.02)
    assert check.passed, check.detail


@pytest.mark.parametrize(
    ("column", "delta", "direction"),
    [
        ("credit_score", 60, -1),
        ("credit_score", -60, +1),
        ("delinquencies_2y", 2, +1),
        ("debt_to_income", 0.3, +1),
        ("interest_rate", 0.08, +1),
    ],
)
def test_risk_moves_the_way_credit_knowledge_says(
    first: PipelineResult, sample: pd.DataFrame, column: str, delta: float, direction: int
) -> None:
    """Shifting a risk driver moves the mean score the way credit knowledge says."""
    before = scores(first, sample).mean()
    moved = sample.assign(**{column: sample[column] + delta})
    after = scores(first, moved).mean()
    assert (after - before) * direction > 0.005, (before, after)


def test_a_prime_applicant_scores_low_and_a_subprime_one_high(first: PipelineResult) -> None:
    """A prime applicant scores under 5% and a subprime one over 50%."""
    assert first.model is not None
    check = minimum_functionality(first.model)
    assert check.passed, check.detail
    profiles = pd.DataFrame([PRIME_APPLICANT, SUBPRIME_APPLICANT])
    prime, subprime = scores(first, profiles)
    assert prime < 0.05 < 0.5 < subprime


def test_the_small_business_segment_is_scored_riskier_than_affluent(
    first: PipelineResult, sample: pd.DataFrame
) -> None:
    """The same applicants score riskier as small-business than as affluent."""
    as_affluent = scores(first, sample.assign(segment="affluent")).mean()
    as_small_business = scores(first, sample.assign(segment="small_business")).mean()
    assert as_small_business > as_affluent


def test_a_label_noise_candidate_is_stopped_by_the_gate_with_reasons(
    first: PipelineResult,
) -> None:
    """A noisy-label candidate is rejected by the gate on calibration and AUC, with reasons."""
    noisy = run(generate(ROWS, seed=1), config(1), first.model, scenario="label-noise")
    assert noisy.stopped_at == "gate"
    assert noisy.verdict is not None
    failed = {c.name: c for c in noisy.verdict.checks if not c.passed}
    assert {"ceiling_ece", "ceiling_log_loss"} <= set(failed)
    assert "exceeds the ceiling" in failed["ceiling_ece"].reason
    regression = next(c for c in noisy.verdict.checks if c.name == "auc_non_regression")
    assert regression.value is not None
    assert regression.value < 0  # even the upper end of the interval is a loss
    assert "rejected (against the champion" in noisy.verdict.summary


def test_a_clean_model_from_another_seed_passes_the_gate_against_the_first(
    first: PipelineResult,
) -> None:
    """A clean candidate from another seed passes the gate compared to the champion."""
    second = run(generate(ROWS, seed=2), config(2), first.model)
    assert second.verdict is not None
    assert second.verdict.compared_to_champion
    assert second.passed, second.verdict.reasons()
