"""Anytime-valid comparisons of a canary with its champion, honest when checked every window.

A fixed-horizon test (a t-test, a Mann-Whitney test, a threshold on one window) controls its
error rate *once*. A canary controller looks after every window, and the chance that at least
one of thirty looks crosses a fixed-horizon line is many times the nominal level. A confidence
sequence is instead a sequence of intervals that covers the true difference at *every* window
simultaneously with probability at least ``1 - alpha``, so the judge may look as often as it
likes and stop the first time an interval clears a floor, without inflating its error rate.

What is here (all vectorised: every argument may be an array with a leading batch axis, so one
call judges a thousand simulated canaries):

* :func:`mixture_boundary` — the one-sided normal-mixture boundary of Robbins (1970) in the
  closed form of Howard, Ramdas, McAuliffe & Sekhon (2021), *Time-uniform, nonparametric,
  nonasymptotic confidence sequences*, Ann. Statist. 49(2), eq. (14): a Gaussian process with
  variance process ``V`` stays below ``sqrt(2 (V + rho) log(sqrt((V + rho) / rho) / (2 alpha) +
  1))`` for all time with probability at least ``1 - alpha``. It is the same martingale as the
  mixture SPRT of Johari, Koomen, Pekelis & Walsh (2022), *Always valid inference: continuous
  monitoring of A/B tests*, Oper. Res. 70(3), with a half-normal rather than a normal mixture,
  which buys a one-sided test at the full ``alpha``.
* :func:`difference_of_proportions` and :func:`difference_of_means` — two-sample confidence
  sequences for canary minus champion. The difference of two sample means, scaled by its
  information ``I = 1 / Var``, is a Gaussian process in information time with independent
  increments whatever the traffic split (Jennison & Turnbull 2000, *Group Sequential Methods*,
  ch. 3), so the boundary above applies with ``V = I``. Variances are estimated from the data,
  which makes the sequences *asymptotic* confidence sequences in the sense of Waudby-Smith,
  Arbour, Sinha, Kennedy & Ramdas (2021), *Time-uniform central limit theory and asymptotic
  confidence sequences*, arXiv:2103.06476: valid as the samples grow, and checked at the
  samples a canary actually sees by the seeded simulations in ``tests/unit/monitoring``.
  Proportions get a *score-type* sequence: each hypothesised difference is tested with the
  variance that hypothesis implies (rates re-estimated under it, with a pseudo-count so a window
  with no errors does not pretend to have no variance), and the bounds are where those tests stop
  rejecting. For rare errors this detects a regression about 1.5 times sooner than plugging in
  each arm's own rate, whose variance grows with the very regression being detected.
* :func:`spent_alpha` — a share of ``alpha`` per look, ``alpha / (k (k + 1))``, summing to
  ``alpha``: how the prediction-distribution guardrail (``monitoring/judge/psi.py``), which is
  not a mean and gets no confidence sequence, stays honest over every look.

Choosing the mixture scale: the boundary is tightest where the interval's radius is about the
scale, so the judge sets it to the effect size that matters (the floor); a mis-set scale costs
only a ``sqrt(log)`` factor, never validity.

Non-inferiority: ``upper < margin`` is the anytime-valid evidence that the canary is *not* worse
by more than ``margin``. Requiring it of every signal before promotion is an intersection-union
test (Berger 1982), whose level is the largest single level, so promotion needs no Bonferroni
split; rollback, which fires on *any* signal, does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "DifferenceSequence",
    "confidence_sequence",
    "difference_of_means",
    "difference_of_proportions",
    "mixture_boundary",
    "mixture_radius",
    "spent_alpha",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# A variance below this is treated as this: a sample mean never earns infinite information.
_MIN_VARIANCE = 1e-12


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def mixture_boundary(intrinsic_time: npt.ArrayLike, *, alpha: float, rho: float) -> FloatArray:
    """One-sided normal-mixture boundary for a process with unit-rate variance.

    ``P(exists t: S_t >= boundary(V_t)) <= alpha`` when ``S`` is a (sub-)Gaussian process with
    variance process ``V`` (Howard et al. 2021, eq. 14).

    Args:
        intrinsic_time: Variance process ``V`` (information, for a score statistic); >= 0.
        alpha: Crossing probability over all time, in (0, 1).
        rho: Mixture precision ``1 / scale**2``, in the units of ``V``; > 0.

    Returns:
        The boundary, elementwise.
    """
    _check_alpha(alpha)
    if rho <= 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    v = np.asarray(intrinsic_time, dtype=np.float64)
    a = v + rho
    return np.sqrt(2.0 * a * np.log(np.sqrt(a / rho) / (2.0 * alpha) + 1.0))


def mixture_radius(variance: npt.ArrayLike, *, alpha: float, mixture_scale: float) -> FloatArray:
    """One-sided radius of a confidence sequence for an estimate with the given variance.

    With information ``I = 1 / variance`` the score ``I (estimate - theta)`` is a process with
    variance ``I``, so ``estimate - theta < boundary(I) / I`` for all time with probability at
    least ``1 - alpha``.

    Args:
        variance: Variance of the estimate (``inf`` when there is no data); >= 0.
        alpha: One-sided miscoverage over the whole sequence, in (0, 1).
        mixture_scale: Effect size, in the estimate's units, where the sequence is tightest.

    Returns:
        The radius, elementwise (``inf`` where the variance is ``inf``).
    """
    if mixture_scale <= 0:
        raise ValueError(f"mixture_scale must be > 0, got {mixture_scale}")
    var = np.maximum(np.asarray(variance, dtype=np.float64), _MIN_VARIANCE)
    finite = np.isfinite(var)
    info = np.where(finite, 1.0 / np.where(finite, var, 1.0), 0.0)
    bound = mixture_boundary(info, alpha=alpha, rho=1.0 / mixture_scale**2)
    return np.where(finite, bound * np.where(finite, var, 0.0), np.inf)


@dataclass(frozen=True)
class DifferenceSequence:
    """Anytime-valid bounds on ``canary - champion`` at the current look, for a batch.

    ``lower`` is valid at level ``alpha_lower`` and ``upper`` at ``alpha_upper``, each over the
    whole sequence of looks. Where either arm has no data the bounds are infinite.

    Attributes:
        estimate: Point estimate of the difference.
        std_error: Standard error of the estimate.
        lower: Lower confidence-sequence bound.
        upper: Upper confidence-sequence bound.
        alpha_lower: Miscoverage of ``lower`` over all looks.
        alpha_upper: Miscoverage of ``upper`` over all looks.
    """

    estimate: FloatArray
    std_error: FloatArray
    lower: FloatArray
    upper: FloatArray
    alpha_lower: float
    alpha_upper: float

    def exceeds(self, floor: float) -> BoolArray:
        """Whether the canary is worse than the champion by more than ``floor``, confidently."""
        return np.asarray(self.lower > floor)

    def within(self, margin: float) -> BoolArray:
        """Whether the canary is worse by less than ``margin`` (non-inferiority), confidently."""
        return np.asarray(self.upper < margin)


def _sequence(
    estimate: FloatArray,
    variance: FloatArray,
    *,
    alpha_lower: float,
    alpha_upper: float,
    mixture_scale: float,
) -> DifferenceSequence:
    lower_radius = mixture_radius(variance, alpha=alpha_lower, mixture_scale=mixture_scale)
    upper_radius = mixture_radius(variance, alpha=alpha_upper, mixture_scale=mixture_scale)
    with np.errstate(invalid="ignore"):
        lower = np.where(np.isfinite(lower_radius), estimate - lower_radius, -np.inf)
        upper = np.where(np.isfinite(upper_radius), estimate + upper_radius, np.inf)
    return DifferenceSequence(
        estimate=estimate,
        std_error=np.sqrt(variance),
        lower=lower,
        upper=upper,
        alpha_lower=alpha_lower,
        alpha_upper=alpha_upper,
    )


def confidence_sequence(
    estimate: npt.ArrayLike,
    variance: npt.ArrayLike,
    *,
    alpha_lower: float,
    alpha_upper: float,
    mixture_scale: float,
) -> DifferenceSequence:
    """Anytime-valid bounds around an estimate whose variance is known or estimated.

    The building block of :func:`difference_of_means`, for estimators that are not a plain
    difference of two sample means (a time-matched, cluster-robust difference, for instance).

    Args:
        estimate: Point estimate of the difference, elementwise (NaN: no data).
        variance: Its variance (``inf``: no data).
        alpha_lower: Miscoverage of the lower bound over all looks.
        alpha_upper: Miscoverage of the upper bound over all looks.
        mixture_scale: Difference where the sequence is tightest.
    """
    return _sequence(
        np.asarray(estimate, dtype=np.float64),
        np.asarray(variance, dtype=np.float64),
        alpha_lower=alpha_lower,
        alpha_upper=alpha_upper,
        mixture_scale=mixture_scale,
    )


def _proportions_variance(
    theta: FloatArray, x1: FloatArray, n1: FloatArray, x0: FloatArray, n0: FloatArray
) -> FloatArray:
    """Variance of ``x1/n1 - x0/n0`` if the true difference were ``theta``.

    The rates are re-estimated under that hypothesis (pooled events, shifted by ``theta``, with
    one pseudo-event and two pseudo-trials so an error-free start still has variance), as a score
    test does, rather than plugged in from each arm alone.
    """
    base = (x0 + x1 + 1.0 - n1 * theta) / (n0 + n1 + 2.0)
    p0 = np.clip(base, 1e-9, 1.0 - 1e-9)
    p1 = np.clip(base + theta, 1e-9, 1.0 - 1e-9)
    return p1 * (1.0 - p1) / np.maximum(n1, 1.0) + p0 * (1.0 - p0) / np.maximum(n0, 1.0)


def _bisect(
    gap: Callable[[FloatArray], FloatArray], low: FloatArray, high: FloatArray, iterations: int = 34
) -> FloatArray:
    """Elementwise root of a decreasing ``gap`` on ``[low, high]`` (``gap(low) >= 0``)."""
    for _ in range(iterations):
        mid = (low + high) / 2.0
        positive = gap(mid) > 0
        low = np.where(positive, mid, low)
        high = np.where(positive, high, mid)
    return (low + high) / 2.0


def difference_of_proportions(
    canary_events: npt.ArrayLike,
    canary_trials: npt.ArrayLike,
    champion_events: npt.ArrayLike,
    champion_trials: npt.ArrayLike,
    *,
    alpha_lower: float,
    alpha_upper: float,
    mixture_scale: float,
) -> DifferenceSequence:
    """Confidence sequence for ``p_canary - p_champion`` from cumulative counts.

    A score-type sequence: the bounds are the differences ``theta`` at which the mixture test of
    "the true difference is ``theta``" just stops rejecting, with the variance estimated *under*
    that ``theta`` (:func:`_proportions_variance`). For rare events this is markedly tighter than
    plugging in each arm's own rate, whose variance grows with the regression it is trying to
    detect (Farrington & Manning 1990; Newcombe 1998 on why score intervals beat Wald intervals
    for proportions), and it stays valid because each test uses the variance its own null implies.

    Args:
        canary_events: Cumulative events (e.g. errors) of the canary.
        canary_trials: Cumulative trials (e.g. requests) of the canary.
        champion_events: Cumulative events of the champion.
        champion_trials: Cumulative trials of the champion.
        alpha_lower: Miscoverage of the lower bound over all looks.
        alpha_upper: Miscoverage of the upper bound over all looks.
        mixture_scale: Difference, in rate units, where the sequence is tightest.

    Returns:
        The bounds at this look, elementwise (infinite where an arm has no trials).
    """
    x1 = np.asarray(canary_events, dtype=np.float64)
    n1 = np.asarray(canary_trials, dtype=np.float64)
    x0 = np.asarray(champion_events, dtype=np.float64)
    n0 = np.asarray(champion_trials, dtype=np.float64)
    x1, n1, x0, n0 = np.broadcast_arrays(x1, n1, x0, n0)
    no_data = (n1 <= 0) | (n0 <= 0)
    estimate = np.where(no_data, np.nan, x1 / np.maximum(n1, 1.0) - x0 / np.maximum(n0, 1.0))
    centre = np.where(no_data, 0.0, estimate)

    def radius(theta: FloatArray, alpha: float) -> FloatArray:
        variance = _proportions_variance(theta, x1, n1, x0, n0)
        return mixture_radius(variance, alpha=alpha, mixture_scale=mixture_scale)

    lower = _bisect(lambda theta: centre - theta - radius(theta, alpha_lower), centre - 1.0, centre)
    upper = -_bisect(lambda neg: -neg - centre - radius(-neg, alpha_upper), -centre - 1.0, -centre)
    variance = _proportions_variance(centre, x1, n1, x0, n0)
    return DifferenceSequence(
        estimate=estimate,
        std_error=np.where(no_data, np.inf, np.sqrt(variance)),
        lower=np.where(no_data, -np.inf, np.maximum(lower, -1.0)),
        upper=np.where(no_data, np.inf, np.minimum(upper, 1.0)),
        alpha_lower=alpha_lower,
        alpha_upper=alpha_upper,
    )


def difference_of_means(
    canary_count: npt.ArrayLike,
    canary_mean: npt.ArrayLike,
    canary_m2: npt.ArrayLike,
    champion_count: npt.ArrayLike,
    champion_mean: npt.ArrayLike,
    champion_m2: npt.ArrayLike,
    *,
    alpha_lower: float,
    alpha_upper: float,
    mixture_scale: float,
) -> DifferenceSequence:
    """Confidence sequence for ``mean_canary - mean_champion`` from running moments.

    Each arm is summarised by its count, mean and ``m2`` (sum of squared deviations from the
    mean, Welford's running statistic), which is what a controller can keep cumulatively.

    Args:
        canary_count: Number of canary observations.
        canary_mean: Mean of the canary observations.
        canary_m2: Sum of squared deviations of the canary observations.
        champion_count: Number of champion observations.
        champion_mean: Mean of the champion observations.
        champion_m2: Sum of squared deviations of the champion observations.
        alpha_lower: Miscoverage of the lower bound over all looks.
        alpha_upper: Miscoverage of the upper bound over all looks.
        mixture_scale: Difference, in the observations' units, where the sequence is tightest.

    Returns:
        The bounds at this look, elementwise (infinite where an arm has fewer than 2 points).
    """
    n1 = np.asarray(canary_count, dtype=np.float64)
    n0 = np.asarray(champion_count, dtype=np.float64)
    enough = (n1 >= 2) & (n0 >= 2)
    safe_n1 = np.where(enough, n1, 2.0)
    safe_n0 = np.where(enough, n0, 2.0)
    var1 = np.asarray(canary_m2, dtype=np.float64) / (safe_n1 - 1.0)
    var0 = np.asarray(champion_m2, dtype=np.float64) / (safe_n0 - 1.0)
    variance = np.where(enough, var1 / safe_n1 + var0 / safe_n0, np.inf)
    estimate = np.where(
        enough,
        np.asarray(canary_mean, dtype=np.float64) - np.asarray(champion_mean, dtype=np.float64),
        np.nan,
    )
    return _sequence(
        estimate,
        variance,
        alpha_lower=alpha_lower,
        alpha_upper=alpha_upper,
        mixture_scale=mixture_scale,
    )


def spent_alpha(alpha: float, look: npt.ArrayLike) -> FloatArray:
    """The share of ``alpha`` spent at look ``k`` (1-based): ``alpha / (k (k + 1))``.

    The shares sum to ``alpha`` over ``k = 1, 2, ...``, so a test run at ``spent_alpha(alpha, k)``
    on look ``k`` has a family-wise error of at most ``alpha`` over every look (union bound).
    """
    _check_alpha(alpha)
    k = np.maximum(np.asarray(look, dtype=np.float64), 1.0)
    return alpha / (k * (k + 1.0))
