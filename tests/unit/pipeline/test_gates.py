from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.behaviour import BehaviouralCheck
from pipeline.config import GateConfig
from pipeline.evaluate import Evaluation, ScoredRows
from pipeline.gates import GateCheck, GateError, decide, paired_bootstrap_auc_diff, weighted_auc
from pipeline.metrics import classification_metrics, slice_metrics

pytestmark = pytest.mark.unit

CFG = GateConfig(bootstrap_resamples=400)


def labels_and_risk(n: int = 4_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    risk = rng.normal(0, 1.3, n)
    probability = 1 / (1 + np.exp(-(risk - 2.0)))
    y = (rng.random(n) < probability).astype(np.int64)
    slices = np.where(rng.random(n) < 0.15, "small", "large")
    return y, probability, slices


def evaluation(
    y: np.ndarray,
    scores: np.ndarray,
    slices: np.ndarray,
    *,
    latency: float = 0.01,
    size: int = 100_000,
    behaviour_ok: bool = True,
) -> Evaluation:
    return Evaluation(
        metrics=classification_metrics(y, scores),
        slices=slice_metrics(y, scores, slices),
        behaviour=[BehaviouralCheck("directional_x", "directional", behaviour_ok, 0.1, "x")],
        latency_ms_per_row=latency,
        latency_ms_single_row=1.0,
        size_bytes=size,
        rows=ScoredRows(labels=y, scores=scores, slices=slices),
    )


def check(checks: list[GateCheck], name: str) -> GateCheck:
    return next(c for c in checks if c.name == name)


def test_weighted_auc_equals_scikit_learn_on_each_explicit_resample() -> None:
    """Weighted AUC over resample counts equals scikit-learn's AUC on each resample, with ties."""
    rng = np.random.default_rng(3)
    y = (rng.random(600) < 0.3).astype(np.int64)
    scores = np.round(rng.random(600) + 0.4 * y, 1)  # heavy ties
    draws = rng.integers(0, 600, size=(6, 600))
    counts = np.stack([np.bincount(d, minlength=600) for d in draws]).astype(float)
    expected = [roc_auc_score(y[d], scores[d]) for d in draws]
    np.testing.assert_allclose(weighted_auc(y, scores, counts), expected, atol=1e-12)


def test_identical_models_give_an_interval_around_zero() -> None:
    """Identical scores give a difference of zero inside its interval."""
    y, p, _ = labels_and_risk()
    interval = paired_bootstrap_auc_diff(y, p, p.copy(), 500, seed=1)
    assert interval.diff == 0.0
    assert interval.lo <= 0.0 <= interval.hi


def test_equally_good_but_different_models_have_an_interval_containing_zero() -> None:
    """Two equally good but different models get an AUC-difference interval containing zero."""
    y, p, _ = labels_and_risk()
    rng = np.random.default_rng(9)
    a = p + rng.normal(0, 0.05, p.size)
    b = p + rng.normal(0, 0.05, p.size)
    interval = paired_bootstrap_auc_diff(y, a, b, 1_000, seed=1)
    assert interval.lo < 0.0 < interval.hi


def test_a_clearly_worse_candidate_has_an_interval_below_the_margin() -> None:
    """A clearly worse candidate's whole interval lies below the -0.01 margin."""
    y, p, _ = labels_and_risk()
    worse = p + np.random.default_rng(2).normal(0, 0.3, p.size)
    interval = paired_bootstrap_auc_diff(y, worse, p, 1_000, seed=1)
    assert interval.diff < 0
    assert interval.hi < -0.01
    assert interval.lo < interval.diff < interval.hi


def test_the_bootstrap_is_reproducible_for_a_seed() -> None:
    """The paired bootstrap gives the same interval for the same seed."""
    y, p, _ = labels_and_risk()
    noisy = p + np.random.default_rng(2).normal(0, 0.1, p.size)
    first = paired_bootstrap_auc_diff(y, noisy, p, 300, seed=5)
    assert paired_bootstrap_auc_diff(y, noisy, p, 300, seed=5) == first


def test_pairing_makes_the_interval_narrower_than_the_auc_spread() -> None:
    """The paired difference cancels shared row noise: its CI is tighter than one AUC's."""
    y, p, _ = labels_and_risk()
    other = p + np.random.default_rng(4).normal(0, 0.05, p.size)
    interval = paired_bootstrap_auc_diff(y, other, p, 1_000, seed=1)
    draws = np.random.default_rng(1).integers(0, y.size, (300, y.size))
    counts = np.stack([np.bincount(d, minlength=y.size) for d in draws]).astype(float)
    single = weighted_auc(y, p, counts)
    assert interval.hi - interval.lo < (np.quantile(single, 0.975) - np.quantile(single, 0.025))


def test_mismatched_inputs_are_refused() -> None:
    """Inputs of different lengths, or labels of one class, are refused."""
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap_auc_diff([0, 1, 1], [0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="both classes"):
        paired_bootstrap_auc_diff([1, 1], [0.1, 0.2], [0.1, 0.2])


def test_without_a_champion_only_floors_behaviour_and_budgets_apply() -> None:
    """Without a champion only floors, ceilings, budgets and behaviour are checked."""
    y, p, s = labels_and_risk()
    verdict = decide(evaluation(y, p, s), None, CFG)
    assert verdict.passed
    assert not verdict.compared_to_champion
    assert "no champion yet" in verdict.summary
    assert not any("non_regression" in c.name for c in verdict.checks)
    names = {c.name for c in verdict.checks}
    assert {"floor_auc", "ceiling_log_loss", "ceiling_brier", "ceiling_ece"} <= names
    assert {"latency_budget", "size_budget", "behaviour:directional_x"} <= names


def test_a_weak_model_fails_the_auc_floor_with_its_numbers() -> None:
    """A weak model fails the AUC floor with its value, threshold and reason in the verdict."""
    y, p, s = labels_and_risk()
    weak = p + np.random.default_rng(1).normal(0, 2.0, p.size) * p.std()
    verdict = decide(evaluation(y, np.clip(weak, 0, 1), s), None, CFG)
    floor = check(verdict.checks, "floor_auc")
    assert not verdict.passed
    assert not floor.passed
    assert floor.threshold == CFG.min_auc
    assert f"{floor.value:.4f}" in floor.reason
    assert "below the floor" in floor.reason
    assert floor.reason in verdict.reasons()


def test_miscalibrated_scores_fail_the_calibration_ceiling() -> None:
    """Scores shifted up fail the calibration ceiling while the AUC floor still passes."""
    y, p, s = labels_and_risk()
    verdict = decide(evaluation(y, np.clip(p + 0.2, 0, 1), s), None, CFG)
    assert not check(verdict.checks, "ceiling_ece").passed
    assert check(verdict.checks, "floor_auc").passed  # ranking is intact


def test_a_candidate_equal_to_the_champion_passes_non_regression() -> None:
    """A candidate as good as the champion passes non-regression against the AUC margin."""
    y, p, s = labels_and_risk()
    rng = np.random.default_rng(7)
    candidate = evaluation(y, np.clip(p + rng.normal(0, 0.01, p.size), 0, 1), s)
    verdict = decide(candidate, evaluation(y, p, s), CFG)
    assert verdict.passed, verdict.reasons()
    assert verdict.compared_to_champion
    assert check(verdict.checks, "auc_non_regression").threshold == -CFG.auc_margin


def test_a_clearly_worse_candidate_is_rejected_with_the_interval_in_the_reason() -> None:
    """A clearly worse candidate is rejected, the reason giving the 95% CI beyond the margin."""
    y, p, s = labels_and_risk()
    worse = np.clip(p + np.random.default_rng(2).normal(0, 0.25, p.size), 0.001, 0.999)
    verdict = decide(
        evaluation(y, worse, s),
        evaluation(y, p, s),
        CFG.model_copy(
            update={"min_auc": 0.0, "max_log_loss": 10.0, "max_brier": 1.0, "max_ece": 1.0}
        ),
    )
    regression = check(verdict.checks, "auc_non_regression")
    assert not verdict.passed
    assert not regression.passed
    assert "95% CI" in regression.reason
    assert "beyond the margin" in regression.reason
    assert verdict.reasons() == [c.reason for c in verdict.checks if not c.passed]


def test_a_regression_confined_to_one_slice_is_caught() -> None:
    """A regression on one slice fails that slice's check though the overall AUC passes."""
    y, p, s = labels_and_risk(n=8_000)
    damaged = p.copy()
    small = s == "small"
    damaged[small] = np.random.default_rng(3).random(small.sum())  # random scores on the slice
    verdict = decide(
        evaluation(y, damaged, s),
        evaluation(y, p, s),
        CFG.model_copy(
            update={
                "min_auc": 0.0,
                "max_log_loss": 10.0,
                "max_brier": 1.0,
                "max_ece": 1.0,
                "auc_margin": 0.5,
            }
        ),
    )
    assert check(verdict.checks, "auc_non_regression").passed  # overall within its wide margin
    assert not check(verdict.checks, "slice_auc_non_regression[small]").passed
    assert check(verdict.checks, "slice_auc_non_regression[large]").passed


def test_a_thin_slice_is_reported_as_skipped_not_gated() -> None:
    """A slice under min_slice_rows is reported as skipped, not gated."""
    y, p, s = labels_and_risk()
    verdict = decide(
        evaluation(y, p, s), evaluation(y, p, s), CFG.model_copy(update={"min_slice_rows": 5_000})
    )
    skipped = check(verdict.checks, "slice_auc_non_regression[small]")
    assert skipped.passed
    assert skipped.value is None
    assert "skipped" in skipped.reason


def test_budgets_reject_a_slow_or_large_model() -> None:
    """A model over the latency or size budget fails that budget's check."""
    y, p, s = labels_and_risk()
    verdict = decide(evaluation(y, p, s, latency=9.0, size=10**9), None, CFG)
    assert not check(verdict.checks, "latency_budget").passed
    assert not check(verdict.checks, "size_budget").passed
    assert "exceeds the budget" in check(verdict.checks, "size_budget").reason


def test_a_failed_behavioural_check_rejects_the_candidate() -> None:
    """A failed behavioural check rejects the candidate, with its reason."""
    y, p, s = labels_and_risk()
    verdict = decide(evaluation(y, p, s, behaviour_ok=False), None, CFG)
    assert not verdict.passed
    assert verdict.reasons() == ["x"]


def test_a_champion_scored_on_other_rows_is_refused() -> None:
    """A champion evaluated on other holdout rows is refused with GateError."""
    y, p, s = labels_and_risk()
    champion = evaluation(y, p, s)
    other_rows = replace(champion, rows=replace(champion.rows, labels=1 - champion.rows.labels))
    with pytest.raises(GateError, match="the candidate's holdout rows"):
        decide(evaluation(y, p, s), other_rows, CFG)


def test_the_verdict_serialises_every_check() -> None:
    """The verdict serialises to JSON with every check's fields."""
    import json

    y, p, s = labels_and_risk()
    verdict = decide(evaluation(y, p, s), evaluation(y, p, s), CFG)
    payload = json.loads(json.dumps(verdict.to_dict()))
    assert payload["passed"] is True
    assert len(payload["checks"]) == len(verdict.checks)
    assert set(payload["checks"][0]) == {"name", "passed", "value", "threshold", "reason"}
