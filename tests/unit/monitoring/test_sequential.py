"""Anytime-valid primitives: honest under continuous checking, quick on large effects."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from monitoring.judge.psi import population_stability_index, psi_noise_allowance
from monitoring.judge.sequential import (
    difference_of_means,
    difference_of_proportions,
    mixture_boundary,
    spent_alpha,
)

pytestmark = pytest.mark.unit

RUNS, WINDOWS = 2000, 30
ALPHA = 0.05
# A rate that sits three standard errors above alpha can only be reached by a broken sequence.
TOLERANCE = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS)


def _cumulative_counts(
    rng: np.random.Generator, p_champion: float, difference: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative errors and requests per window, 20 % of 2,000 requests to the canary."""
    n1 = rng.binomial(2000, 0.2, (RUNS, WINDOWS))
    n0 = 2000 - n1
    x1 = rng.binomial(n1, p_champion + difference)
    x0 = rng.binomial(n0, p_champion)
    return x1.cumsum(1), n1.cumsum(1), x0.cumsum(1), n0.cumsum(1)


@pytest.mark.parametrize("difference", [0.0, 0.005])
def test_proportion_sequence_keeps_type_one_error_when_checked_every_window(
    difference: float,
) -> None:
    """Neither bound crosses the true difference in more than alpha of canaries over 30 looks."""
    x1, n1, x0, n0 = _cumulative_counts(np.random.default_rng(11), 0.01, difference)
    cs = difference_of_proportions(
        x1, n1, x0, n0, alpha_lower=ALPHA, alpha_upper=ALPHA, mixture_scale=0.01
    )
    assert np.mean(np.any(cs.lower > difference, axis=1)) <= TOLERANCE
    assert np.mean(np.any(cs.upper < difference, axis=1)) <= TOLERANCE


def test_fixed_horizon_interval_checked_every_window_inflates_false_alarms() -> None:
    """The control: a 95 % Wald interval re-checked each window crosses far more than 5 %."""
    x1, n1, x0, n0 = _cumulative_counts(np.random.default_rng(12), 0.05, 0.0)
    p1, p0 = x1 / n1, x0 / n0
    se = np.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    crossed = np.any(np.abs(p1 - p0) > stats.norm.ppf(0.975) * se, axis=1)
    assert np.mean(crossed) > 2 * ALPHA


def test_proportion_sequence_detects_a_three_point_error_increase_within_three_windows() -> None:
    """+3 points on a 1 % base clears a 0.1-point floor by window 3 in >= 95 % of canaries."""
    x1, n1, x0, n0 = _cumulative_counts(np.random.default_rng(13), 0.01, 0.03)
    cs = difference_of_proportions(
        x1, n1, x0, n0, alpha_lower=0.01 / 3, alpha_upper=ALPHA, mixture_scale=0.01
    )
    assert np.mean(np.any(cs.exceeds(0.001)[:, :3], axis=1)) >= 0.95


@pytest.mark.parametrize("shift", [0.0, 0.1])
def test_mean_sequence_keeps_type_one_error_on_skewed_data(shift: float) -> None:
    """Exponential (skewed, like per-row log loss) data: coverage holds over 30 looks."""
    rng = np.random.default_rng(14)
    runs, windows, per_window = 800, 30, 50
    a = rng.exponential(0.3, (runs, windows, per_window)) + shift
    b = rng.exponential(0.3, (runs, windows, 4 * per_window))

    def moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        flat = x.reshape(runs, -1)
        counts = np.arange(1, windows + 1) * x.shape[2]
        sums = np.cumsum(x.sum(axis=2), axis=1)
        squares = np.cumsum((x * x).sum(axis=2), axis=1)
        assert flat.shape[1] == counts[-1]
        return counts * np.ones((runs, 1)), sums / counts, squares - sums * sums / counts

    cs = difference_of_means(
        *moments(a), *moments(b), alpha_lower=ALPHA, alpha_upper=ALPHA, mixture_scale=0.05
    )
    tolerance = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
    assert np.mean(np.any(cs.lower > shift, axis=1)) <= tolerance
    assert np.mean(np.any(cs.upper < shift, axis=1)) <= tolerance


def test_mean_sequence_has_no_bounds_without_two_points_per_arm() -> None:
    """With fewer than two observations an arm has no variance, so no decision is possible."""
    cs = difference_of_means(
        1, 0.5, 0.0, 100, 0.0, 10.0, alpha_lower=0.05, alpha_upper=0.05, mixture_scale=0.1
    )
    assert cs.lower[()] == -np.inf
    assert cs.upper[()] == np.inf


def test_mixture_boundary_is_a_tight_upper_bound_of_the_exact_mixture_crossing() -> None:
    """The closed form is never below the exact one-sided mixture boundary and within 2 % of it."""
    rho, alpha = 10.0, 0.01
    for v in (1.0, 10.0, 100.0, 1e4):

        def log_martingale(s: float, v: float = v) -> float:
            a = v + rho
            return (
                math.log(2 * math.sqrt(rho / a))
                + s * s / (2 * a)
                + float(stats.norm.logcdf(s / math.sqrt(a)))
            )

        exact = optimize.brentq(lambda s: log_martingale(s) - math.log(1 / alpha), 0.0, 1e4)
        closed = float(mixture_boundary(v, alpha=alpha, rho=rho))
        assert exact <= closed <= 1.02 * exact


def test_psi_is_zero_for_identical_histograms_and_grows_with_a_shift() -> None:
    """PSI is a distance: 0 on identical bins, larger for a bigger shift."""
    base = np.array([100.0, 300.0, 400.0, 150.0, 50.0])
    psi_same, df = population_stability_index(base, base)
    small, _ = population_stability_index(np.array([110.0, 300.0, 390.0, 150.0, 50.0]), base)
    large, _ = population_stability_index(np.array([300.0, 300.0, 250.0, 100.0, 50.0]), base)
    assert psi_same == pytest.approx(0.0, abs=1e-12)
    assert df == 4
    assert 0 < small < large


def test_psi_guardrail_with_spent_alpha_rarely_fires_on_an_unchanged_canary() -> None:
    """PSI above its spent-alpha allowance on unchanged traffic: at most alpha over 30 looks."""
    rng = np.random.default_rng(15)
    probs = np.array([0.3, 0.25, 0.2, 0.15, 0.07, 0.03])
    canary = rng.multinomial(400, probs, (RUNS, WINDOWS)).cumsum(axis=1)
    champion = rng.multinomial(1600, probs, (RUNS, WINDOWS)).cumsum(axis=1)
    psi, df = population_stability_index(canary, champion)
    looks = np.arange(1, WINDOWS + 1)
    allowance = psi_noise_allowance(
        canary.sum(-1), champion.sum(-1), df, alpha=spent_alpha(ALPHA, looks)
    )
    assert np.mean(np.any(psi > allowance, axis=1)) <= TOLERANCE


def test_spent_alpha_sums_to_alpha() -> None:
    """The spending sequence uses the whole budget and no more."""
    assert float(spent_alpha(0.05, np.arange(1, 100_000)).sum()) == pytest.approx(0.05, rel=1e-4)


def test_bad_alpha_is_rejected_with_its_name() -> None:
    """An alpha outside (0, 1) is a clear error, not a NaN."""
    with pytest.raises(ValueError, match="alpha must be in"):
        mixture_boundary(1.0, alpha=1.5, rho=1.0)
