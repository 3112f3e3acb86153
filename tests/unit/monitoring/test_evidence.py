"""Time-matched, cluster-robust evidence: shared drift cancels, correlated customers widen."""

from __future__ import annotations

import numpy as np
import pytest

from monitoring.judge.evidence import (
    MeanEvidence,
    mean_sequence,
    proportion_sequence,
    stratum_evidence,
)
from monitoring.judge.psi import ScoreEvidence

pytestmark = pytest.mark.unit


def _cells(champion: list[float], canary: list[float]) -> np.ndarray:
    """Shape (1, 2, clusters) from per-cluster values of each variant."""
    return np.array([[champion, canary]], dtype=np.float64)


def test_one_stratum_without_clusters_is_the_plain_difference_of_means() -> None:
    """n0=400 at mean 1.0, n1=100 at mean 1.5: estimate 0.5, variance s0²/n0 + s1²/n1."""
    n = _cells([400.0], [100.0])
    total = _cells([400.0], [150.0])
    squares = np.array([[400.0 * (1.0 + 0.25), 100.0 * (2.25 + 0.25)]])
    ev = stratum_evidence(n, total, squares)
    assert ev.estimate[0] == pytest.approx(0.5)
    var0, var1 = 0.25 * 400 / 399, 0.25 * 100 / 99
    assert ev.variance()[0] == pytest.approx(var0 / 400 + var1 / 100)
    assert ev.design_effect()[0] == 1.0


def test_time_matching_cancels_a_drift_shared_by_both_variants() -> None:
    """A ramp under shared drift: pooled means differ, the per-window comparison does not."""
    # Window 1: level 1.0, canary 5 %; window 2: level 2.0, canary 50 %. Identical variants.
    w1 = stratum_evidence(_cells([950.0], [50.0]), _cells([950.0], [50.0]), [[950.0, 50.0]])
    w2 = stratum_evidence(_cells([500.0], [500.0]), _cells([1000.0], [1000.0]), [[2000.0, 2000.0]])
    both = w1 + w2
    pooled = both.total / both.count
    assert pooled[0, 1] - pooled[0, 0] == pytest.approx(1050 / 550 - 1950 / 1450)
    assert both.estimate[0] == pytest.approx(0.0)


def test_correlated_customers_widen_the_bounds_and_never_narrow_them() -> None:
    """Clusters whose means differ inflate the variance; identical clusters leave it as iid."""
    rng = np.random.default_rng(7)
    clusters = 40
    n = np.full((1, 2, clusters), 200.0)
    same = rng.binomial(200, 0.01, (1, 2, clusters)).astype(float)
    rates = np.clip(0.01 * np.exp(rng.normal(0, 1.0, (1, 2, clusters))), 0, 1)
    spread = rng.binomial(200, rates).astype(float)
    homogeneous = stratum_evidence(n, same, same.sum(axis=2))
    clustered = stratum_evidence(n, spread, spread.sum(axis=2))
    assert clustered.design_effect()[0] > 2.0
    assert homogeneous.variance()[0] >= homogeneous.iid_variance[0] / homogeneous.weight[0] ** 2
    wide = proportion_sequence(clustered, alpha_lower=0.01, alpha_upper=0.05, mixture_scale=0.01)
    naive = proportion_sequence(
        MeanEvidence(
            weighted_difference=clustered.weighted_difference,
            weight=clustered.weight,
            iid_variance=clustered.iid_variance,
            influence=np.zeros((1, 1)),
            matched_sum=clustered.matched_sum,
            count=clustered.count,
            total=clustered.total,
        ),
        alpha_lower=0.01,
        alpha_upper=0.05,
        mixture_scale=0.01,
    )
    assert wide.upper[0] - wide.lower[0] > 1.3 * (naive.upper[0] - naive.lower[0])


def test_a_baseline_removes_the_chance_difference_between_customer_sets() -> None:
    """Customers differ, sticky routing splits them unevenly; the same split before cancels it."""
    # Two customers per variant; the canary's customers happen to fail more, then and now.
    n = _cells([1000.0, 1000.0], [1000.0, 1000.0])
    now = _cells([5.0, 5.0], [30.0, 30.0])
    before = _cells([10.0, 10.0], [60.0, 60.0])
    n_before = _cells([2000.0, 2000.0], [2000.0, 2000.0])
    period = stratum_evidence(n, now, now.sum(axis=2))
    baseline = stratum_evidence(n_before, before, before.sum(axis=2))
    assert period.estimate[0] == pytest.approx(0.025)
    adjusted = period.with_baseline(baseline)
    assert adjusted.estimate[0] == pytest.approx(0.0)
    assert adjusted.variance()[0] > period.iid_variance[0] / period.weight[0] ** 2
    seq = proportion_sequence(adjusted, alpha_lower=0.01, alpha_upper=0.05, mixture_scale=0.01)
    assert seq.lower[0] < 0.0 < seq.upper[0]


def test_evidence_adds_window_by_window_as_it_does_at_once() -> None:
    """The simulation adds strata as windows close; the controller sums them: same numbers."""
    rng = np.random.default_rng(3)
    windows = [rng.integers(50, 500, (2, 2, 8)).astype(float) for _ in range(5)]
    totals = [rng.normal(0, 1, (2, 2, 8)) + w * 0.1 for w in windows]
    parts = [
        stratum_evidence(w, t, (t**2).sum(axis=2) + 5) for w, t in zip(windows, totals, strict=True)
    ]
    incremental = MeanEvidence.empty(2, 8)
    for part in parts:
        incremental = incremental + part
    at_once = parts[0] + parts[1] + parts[2] + parts[3] + parts[4]
    np.testing.assert_allclose(incremental.estimate, at_once.estimate)
    np.testing.assert_allclose(incremental.variance(), at_once.variance())
    seq = mean_sequence(incremental, alpha_lower=0.01, alpha_upper=0.05, mixture_scale=0.1)
    assert np.all(seq.lower <= seq.estimate)
    assert np.all(seq.estimate <= seq.upper)


def test_score_histograms_are_reweighted_to_the_canarys_time_profile() -> None:
    """The champion's histogram of each window counts as much as the canary's traffic then."""
    early = ScoreEvidence.stratum([[5.0, 5.0]], [[900.0, 100.0]])
    late = ScoreEvidence.stratum([[50.0, 50.0]], [[100.0, 900.0]])
    both = early + late
    expected = [900 * 0.01 + 100 * 0.1, 100 * 0.01 + 900 * 0.1]
    assert both.champion_matched[0] == pytest.approx(expected)
    assert 0 < both.champion_effective[0] < 2000
    with pytest.raises(ValueError, match="batch, bins"):
        ScoreEvidence.stratum([1.0, 2.0], [[1.0, 2.0]])
