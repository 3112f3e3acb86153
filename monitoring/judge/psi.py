"""The prediction-distribution guardrail: time-matched score histograms and their PSI.

The canary and the champion score the same traffic; when the canary's score distribution moves
away from the champion's with no harm shown, the change is either intended or a broken feature,
and only a person knows which (the judge pauses). PSI is not a mean, so it gets no confidence
sequence; instead the allowance for sampling noise at check ``k`` is the ``1 - alpha_k``
quantile of PSI's no-change distribution, ``(1/n1 + 1/n0) chi2(df)``, with ``alpha_k = alpha /
(k (k + 1))`` (``monitoring/judge/sequential.py::spent_alpha``). The ``alpha_k`` sum to
``alpha``, so by the union bound the guardrail fires on an unchanged canary with probability at
most ``alpha`` however many windows it is checked.

* :class:`ScoreEvidence` — the score histograms of both variants, the champion's reweighted to
  the canary's time profile (added stratum by stratum, like ``monitoring/judge/evidence.py``).
* :func:`population_stability_index` with :func:`psi_noise_allowance` — the index and the
  noise it may show on an unchanged canary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

__all__ = ["ScoreEvidence", "population_stability_index", "psi_noise_allowance"]

FloatArray = npt.NDArray[np.float64]

# Smoothing for empty PSI bins, in counts: keeps ln(p/q) finite and barely moves full bins.
_PSI_PSEUDOCOUNT = 0.5


@dataclass(frozen=True)
class ScoreEvidence:
    """Score histograms for the prediction-distribution guardrail, time-matched.

    The champion's histogram of each stratum is reweighted by ``n1k / n0k`` so that, summed, it
    has the canary's time profile: a platform-wide shift of the inputs during a ramp moves both
    sides alike. Reweighting costs sample size; :attr:`champion_effective` is Kish's effective
    number of champion scores, which the noise allowance uses.

    Attributes:
        canary: Canary scores per bin, shape ``(B, bins)``.
        champion_matched: Reweighted champion scores per bin, shape ``(B, bins)``.
        champion_weight_sq: ``sum_k n1k**2 / n0k``, shape ``(B,)`` (for the effective size).
        design_effect: Variance inflation from clustered scores (at least 1), shape ``(B,)``.
    """

    canary: FloatArray
    champion_matched: FloatArray
    champion_weight_sq: FloatArray
    design_effect: FloatArray

    @classmethod
    def stratum(
        cls, canary: npt.ArrayLike, champion: npt.ArrayLike, design_effect: npt.ArrayLike = 1.0
    ) -> ScoreEvidence:
        """One stratum's histograms, shape ``(B, bins)`` each."""
        c = np.asarray(canary, dtype=np.float64)
        r = np.asarray(champion, dtype=np.float64)
        if c.shape != r.shape or c.ndim != 2:
            raise ValueError(
                f"score histograms must share a (batch, bins) shape: {c.shape}, {r.shape}"
            )
        n1, n0 = c.sum(axis=-1), r.sum(axis=-1)
        both = (n1 > 0) & (n0 > 0)
        ratio = np.where(both, n1 / np.maximum(n0, 1.0), 0.0)
        return cls(
            canary=np.where(both[:, None], c, 0.0),
            champion_matched=ratio[:, None] * r,
            champion_weight_sq=np.where(both, n1 * ratio, 0.0),
            design_effect=np.broadcast_to(np.asarray(design_effect, dtype=np.float64), n1.shape),
        )

    def __add__(self, other: ScoreEvidence) -> ScoreEvidence:
        """Histograms of the union of two disjoint sets of strata."""
        return ScoreEvidence(
            canary=self.canary + other.canary,
            champion_matched=self.champion_matched + other.champion_matched,
            champion_weight_sq=self.champion_weight_sq + other.champion_weight_sq,
            design_effect=np.maximum(self.design_effect, other.design_effect),
        )

    @property
    def canary_count(self) -> FloatArray:
        """Canary scores in comparable strata."""
        return np.asarray(self.canary.sum(axis=-1), dtype=np.float64)

    @property
    def champion_effective(self) -> FloatArray:
        """Kish's effective sample size of the reweighted champion histogram."""
        n1 = self.canary_count
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.champion_weight_sq > 0, n1 * n1 / self.champion_weight_sq, 0.0)


def _merge_sparse_bins(
    canary: FloatArray, champion: FloatArray, min_share: float
) -> tuple[FloatArray, FloatArray]:
    """Merge adjacent bins so each holds at least ``min_share`` of the champion's mass.

    Bin ``b`` joins group ``floor(share of champion mass before b / min_share)``: consecutive
    bins share a group until their cumulative mass crosses the next multiple of ``min_share``.
    Grouping on the champion alone keeps the grouping independent of the canary's data.
    """
    total = champion.sum(axis=-1, keepdims=True)
    share_before = (np.cumsum(champion, axis=-1) - champion) / np.where(total > 0, total, 1.0)
    n_groups = int(np.ceil(1.0 / min_share)) + 1
    group = np.minimum(np.floor(share_before / min_share + 1e-9).astype(np.int64), n_groups - 1)
    # Groups are runs of consecutive bins; sum each run as a difference of cumulative sums.
    ends = (group[..., :, None] <= np.arange(n_groups)).sum(axis=-2)
    zero = np.zeros((*canary.shape[:-1], 1))
    cum_canary = np.concatenate([zero, np.cumsum(canary, axis=-1)], axis=-1)
    cum_champion = np.concatenate([zero, np.cumsum(champion, axis=-1)], axis=-1)
    merged_canary = np.diff(np.take_along_axis(cum_canary, ends, axis=-1), prepend=0.0, axis=-1)
    merged_champion = np.diff(np.take_along_axis(cum_champion, ends, axis=-1), prepend=0.0, axis=-1)
    return merged_canary, merged_champion


def population_stability_index(
    canary_counts: npt.ArrayLike, champion_counts: npt.ArrayLike, *, min_share: float = 0.05
) -> tuple[FloatArray, FloatArray]:
    """PSI between two binned score distributions, and its degrees of freedom.

    ``PSI = sum_b (c_b - r_b) ln(c_b / r_b)`` over the canary's (``c``) and champion's (``r``) bin
    shares, after merging bins thinner than ``min_share`` of the champion's mass and adding half a
    count to every used bin. It is the symmetrised Kullback-Leibler divergence; 0 means identical.

    Args:
        canary_counts: Canary counts per bin, shape ``(..., bins)``.
        champion_counts: Champion counts per bin over the same edges, shape ``(..., bins)``.
        min_share: Smallest champion share a merged bin may hold, in (0, 1).

    Returns:
        ``(psi, df)``: the index and the number of used bins minus one, elementwise over the batch.
    """
    if not 0.0 < min_share < 1.0:
        raise ValueError(f"min_share must be in (0, 1), got {min_share}")
    canary = np.asarray(canary_counts, dtype=np.float64)
    champion = np.asarray(champion_counts, dtype=np.float64)
    if canary.shape != champion.shape:
        raise ValueError(
            f"canary and champion histograms differ in shape: {canary.shape} vs {champion.shape}"
        )
    canary, champion = _merge_sparse_bins(canary, champion, min_share)
    used = (canary + champion) > 0
    n_used = used.sum(axis=-1)
    c = np.where(used, canary + _PSI_PSEUDOCOUNT, 0.0)
    r = np.where(used, champion + _PSI_PSEUDOCOUNT, 0.0)
    c_share = c / np.maximum(c.sum(axis=-1, keepdims=True), 1e-300)
    r_share = r / np.maximum(r.sum(axis=-1, keepdims=True), 1e-300)
    ratio = np.where(used, c_share / np.where(used, r_share, 1.0), 1.0)
    terms = np.where(used, (c_share - r_share) * np.log(ratio), 0.0)
    return terms.sum(axis=-1), np.maximum(n_used - 1, 0).astype(np.float64)


def psi_noise_allowance(
    canary_n: npt.ArrayLike,
    champion_n: npt.ArrayLike,
    df: npt.ArrayLike,
    *,
    alpha: npt.ArrayLike,
) -> FloatArray:
    """The PSI an unchanged canary exceeds with probability ``alpha``.

    With no change, PSI is approximately ``(1/n1 + 1/n0)`` times a chi-square with ``df`` degrees
    of freedom (it is a symmetrised KL divergence, whose second-order term is Pearson's statistic).

    Args:
        canary_n: Number of canary scores.
        champion_n: Number of champion scores.
        df: Degrees of freedom (used bins minus one).
        alpha: Tail probability, elementwise (e.g. :func:`spent_alpha` of the look).

    Returns:
        The allowance, elementwise (``inf`` where either sample is empty).
    """
    n1 = np.asarray(canary_n, dtype=np.float64)
    n0 = np.asarray(champion_n, dtype=np.float64)
    dof = np.maximum(np.asarray(df, dtype=np.float64), 1.0)
    quantile = stats.chi2.isf(np.asarray(alpha, dtype=np.float64), dof)
    ok = (n1 > 0) & (n0 > 0)
    scale = np.where(ok, 1.0 / np.where(ok, n1, 1.0) + 1.0 / np.where(ok, n0, 1.0), np.inf)
    return np.asarray(scale * quantile, dtype=np.float64)
