"""Time-matched, cluster-robust evidence that a canary differs from its champion.

The judge compares per-request quantities ``y`` — an error indicator, log latency, an indicator
that latency exceeded the champion's tail quantile, the log loss of a labelled prediction — of
the canary (variant 1) and the champion (variant 0). Two facts of real traffic break the naive
"pool everything since the canary started and treat requests as independent" comparison, and
this module is the answer to both:

* **Time.** Canary weights ramp (5 → 20 → 50 %) while the platform drifts (load, the mix of
  inputs). Pooled over the canary's life, the canary's data lean towards late windows and the
  champion's towards early ones, so identical models drift apart. Here the two variants are
  compared only *within* a stratum (a judge window, or a window of prediction crossed with a
  window of label arrival) and the per-stratum differences are combined with weights
  ``h_k = n1k n0k / (n1k + n0k)`` (the inverse variance of a difference of two means, up to the
  common variance): ``estimate = sum_k h_k (ybar1k - ybar0k) / sum_k h_k``. Anything shared by
  both variants within a stratum cancels. With a constant weight and one stratum this is the
  plain difference of means.
* **Clusters.** Routing is sticky per routing key (customer), so a customer's requests all go
  to one variant and are correlated (a customer with large payloads is slow on every request).
  Each request carries a cluster id (a hash group of its routing key); the variance of the
  estimate is the cluster-robust ("sandwich") variance, the sum over clusters of the squared
  influence of each cluster, with the CR1 small-sample factor ``G / (G - 1)``:
  ``var = sum_c U_c**2 / H**2``, ``U_c = sum_k h_k [(S1kc - n1kc ybar1k) / n1k - (S0kc - n0kc
  ybar0k) / n0k]``. Clusters nested in hash groups are still independent between groups, so a
  coarse grouping is valid (Cameron & Miller 2015, *A practitioner's guide to cluster-robust
  inference*, J. Hum. Resour. 50(2)). The judge uses the larger of this and the independent-
  requests variance, so clustering can only widen a bound, never narrow it below the textbook
  one. The sandwich needs many clusters: a slice resting on a handful of customers is not
  judged at all (:attr:`MeanEvidence.variant_clusters` counts them; the judge's
  ``slice_min_customers``).

Everything is a sum over strata, so evidence is built one stratum at a time
(:func:`stratum_evidence`) and added (``+``): the controller adds the strata it reads from the
inference log, the simulation adds each window as it closes — the same arithmetic either way.
Arrays carry a leading batch axis (one row per simulated canary; one row in production).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from monitoring.judge.psi import ScoreEvidence
from monitoring.judge.sequential import (
    DifferenceSequence,
    confidence_sequence,
    difference_of_proportions,
)

__all__ = [
    "CanaryEvidence",
    "MeanEvidence",
    "TAIL_QUANTILE",
    "mean_sequence",
    "proportion_sequence",
    "stratum_evidence",
]

FloatArray = npt.NDArray[np.float64]

# The champion quantile whose exceedances the tail-latency signal counts (its p99), for the
# controller's histogram buckets and the simulation alike.
TAIL_QUANTILE = 0.99

CHAMPION_AXIS = 0
CANARY_AXIS = 1


@dataclass(frozen=True)
class MeanEvidence:
    """Sufficient statistics of a time-matched, cluster-robust difference of means.

    All arrays have a leading batch axis of size ``B``.

    Attributes:
        weighted_difference: ``T = sum_k h_k (ybar1k - ybar0k)``, shape ``(B,)``.
        weight: ``H = sum_k h_k``, shape ``(B,)``; 0 while no stratum has both variants.
        iid_variance: ``sum_k h_k**2 (s1k**2 / n1k + s0k**2 / n0k)``, shape ``(B,)``: the
            variance of ``T`` if requests were independent.
        influence: ``U_c`` per cluster, shape ``(B, G)``.
        matched_sum: ``sum_k h_k ybar_vk`` per variant, shape ``(B, 2)``: divided by ``H``, the
            time-matched mean of each variant.
        count: Requests per variant over every stratum, shape ``(B, 2)``, including strata
            where only one variant had traffic (those carry no comparison).
        total: Sum of ``y`` per variant over every stratum, shape ``(B, 2)``.
        baseline_shift: ``sum_k h_k d_P``: the part of ``T`` explained by the same routing
            split before the canary started (difference in differences, see
            :meth:`with_baseline`); 0 without a baseline.
        baseline_sd: ``sum_k (h_k / h_P) sqrt(var_P)``, an upper bound on the standard deviation
            of ``baseline_shift`` when requests are independent.
        cluster_count: Requests per variant and cluster over every stratum, shape
            ``(B, 2, G)``, or None where clusters are unknown (cumulative counters).
    """

    weighted_difference: FloatArray
    weight: FloatArray
    iid_variance: FloatArray
    influence: FloatArray
    matched_sum: FloatArray
    count: FloatArray
    total: FloatArray
    baseline_shift: FloatArray | None = None
    baseline_sd: FloatArray | None = None
    cluster_count: FloatArray | None = None

    @classmethod
    def empty(cls, batch: int, clusters: int = 1) -> MeanEvidence:
        """No data yet, for ``batch`` canaries and ``clusters`` cluster groups."""
        zero = np.zeros(batch)
        return cls(
            weighted_difference=zero.copy(),
            weight=zero.copy(),
            iid_variance=zero.copy(),
            influence=np.zeros((batch, clusters)),
            matched_sum=np.zeros((batch, 2)),
            count=np.zeros((batch, 2)),
            total=np.zeros((batch, 2)),
            cluster_count=np.zeros((batch, 2, clusters)),
        )

    def __add__(self, other: MeanEvidence) -> MeanEvidence:
        """Evidence of the union of two disjoint sets of strata."""
        if self.influence.shape != other.influence.shape:
            raise ValueError(
                f"cannot add evidence over {self.influence.shape} and {other.influence.shape} "
                "(batch, clusters)"
            )
        return MeanEvidence(
            weighted_difference=self.weighted_difference + other.weighted_difference,
            weight=self.weight + other.weight,
            iid_variance=self.iid_variance + other.iid_variance,
            influence=self.influence + other.influence,
            matched_sum=self.matched_sum + other.matched_sum,
            count=self.count + other.count,
            total=self.total + other.total,
            baseline_shift=_add(self.baseline_shift, other.baseline_shift),
            baseline_sd=_add(self.baseline_sd, other.baseline_sd),
            cluster_count=_add(self.cluster_count, other.cluster_count),
        )

    def with_baseline(self, baseline: MeanEvidence) -> MeanEvidence:
        """This stratum, less the same routing split's difference before the canary started.

        Sticky routing sends a fixed set of customers to the canary; when customers differ, the
        canary's customers differ from the champion's by chance, and that difference does not
        shrink with more of their requests. Before the canary started the champion served them
        all: splitting that *baseline* period's requests by the same routing rule (routing hash
        below the canary weight) measures the chance difference ``d_P`` of the two customer
        sets, and ``(ybar1k - ybar0k) - d_P`` removes it (difference in differences). A
        customer's own effect then cancels within its cluster's influence, which is what the
        cluster-robust variance sees; the baseline's own noise is added to the variance.

        Args:
            baseline: Evidence of the baseline period split by this stratum's routing rule
                (``stratum_evidence`` of its requests, the would-be canary as variant 1).

        Returns:
            The adjusted stratum; add adjusted strata with ``+`` as usual.
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.where(baseline.weight > 0, self.weight / baseline.weight, 0.0)
        return MeanEvidence(
            weighted_difference=self.weighted_difference,
            weight=self.weight,
            iid_variance=self.iid_variance,
            influence=self.influence - scale[:, None] * baseline.influence,
            matched_sum=self.matched_sum,
            count=self.count,
            total=self.total,
            baseline_shift=_add(self.baseline_shift, scale * baseline.weighted_difference),
            baseline_sd=_add(self.baseline_sd, scale * np.sqrt(baseline.iid_variance)),
            cluster_count=self.cluster_count,
        )

    @property
    def estimate(self) -> FloatArray:
        """Time-matched ``mean(canary) - mean(champion)`` (less the baseline's, if any)."""
        shift = 0.0 if self.baseline_shift is None else self.baseline_shift
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(
                self.weight > 0, (self.weighted_difference - shift) / self.weight, np.nan
            )

    def _iid_total(self) -> FloatArray:
        """The iid variance of ``T`` and of the baseline correction together."""
        if self.baseline_sd is None:
            return self.iid_variance
        return np.asarray(self.iid_variance + self.baseline_sd**2, dtype=np.float64)

    @property
    def matched_means(self) -> FloatArray:
        """Time-matched mean of each variant, shape ``(B, 2)`` (champion, canary)."""
        safe = np.where(self.weight > 0, self.weight, 1.0)[:, None]
        return np.where(self.weight[:, None] > 0, self.matched_sum / safe, np.nan)

    @property
    def variant_clusters(self) -> FloatArray:
        """Clusters with requests on each variant, shape ``(B, 2)``.

        Infinite when clusters are unknown: no counts kept, or a single group (cumulative
        counters are one group of independent requests).
        """
        if self.cluster_count is None or self.cluster_count.shape[-1] < 2:
            return np.full(self.count.shape, np.inf)
        return np.asarray((self.cluster_count > 0).sum(axis=-1), dtype=np.float64)

    @property
    def clusters(self) -> FloatArray:
        """Clusters that contributed, per canary."""
        return np.asarray((self.influence != 0).sum(axis=-1), dtype=np.float64)

    def cluster_variance(self) -> FloatArray:
        """Cluster-robust (CR1) variance of ``T``; 0 with fewer than two clusters."""
        g = self.clusters
        factor = np.where(g >= 2, g / np.maximum(g - 1.0, 1.0), 0.0)
        return np.asarray(factor * (self.influence**2).sum(axis=-1), dtype=np.float64)

    def _excess(self) -> FloatArray:
        """The cluster-robust variance in excess of the iid one (0 when below it)."""
        return np.maximum(self.cluster_variance() - self._iid_total(), 0.0)

    def _total_variance(self) -> FloatArray:
        """Variance of ``T``: the larger of the widened cluster-robust and the iid one."""
        return np.asarray(self._iid_total() + self._excess(), dtype=np.float64)

    def design_effect(self) -> FloatArray:
        """How much the variance exceeds that of independent requests in this period (>= 1).

        Clustering and a baseline correction both raise it.
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = self._total_variance() / self.iid_variance
        return np.where(np.isfinite(ratio) & (ratio > 1.0), ratio, 1.0)

    def variance(self) -> FloatArray:
        """Variance of :attr:`estimate`: iid, plus the between-cluster excess when clustered."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.weight > 0, self._total_variance() / self.weight**2, np.inf)

    def between_cluster_variance(self) -> FloatArray:
        """The part of :meth:`variance` that more requests from the same clusters cannot shrink.

        The cluster-robust variance in excess of the independent-requests one is the spread
        *between* clusters; with sticky routing the canary keeps the same clusters, so this is
        a floor under the variance however long the canary runs.
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.weight > 0, self._excess() / self.weight**2, np.inf)


def _add(left: FloatArray | None, right: FloatArray | None) -> FloatArray | None:
    if left is None:
        return right
    if right is None:
        return left
    return np.asarray(left + right, dtype=np.float64)


def stratum_evidence(
    count: npt.ArrayLike, total: npt.ArrayLike, squares: npt.ArrayLike
) -> MeanEvidence:
    """The evidence of one stratum (e.g. one judge window).

    Args:
        count: Requests per variant and cluster, shape ``(B, 2, G)`` (axis 1: champion, canary).
        total: Sum of ``y`` per variant and cluster, same shape.
        squares: Sum of ``y**2`` per variant, shape ``(B, 2)`` or ``(B, 2, G)`` (for an
            indicator, equal to ``total``).

    Returns:
        The stratum's contribution; add contributions of disjoint strata with ``+``.
    """
    n = np.asarray(count, dtype=np.float64)
    s = np.asarray(total, dtype=np.float64)
    q = np.asarray(squares, dtype=np.float64)
    if n.ndim != 3 or n.shape[1] != 2 or s.shape != n.shape:
        raise ValueError(
            f"count and total must have shape (batch, 2, clusters); got {n.shape} and {s.shape}"
        )
    if q.ndim == 3:
        q = q.sum(axis=-1)
    nv = n.sum(axis=-1)
    sv = s.sum(axis=-1)
    safe_n = np.maximum(nv, 1.0)
    mean = sv / safe_n
    within = np.maximum(q - sv * sv / safe_n, 0.0) / np.maximum(nv - 1.0, 1.0)
    both = (nv[:, 0] > 0) & (nv[:, 1] > 0)
    h = np.where(both, nv[:, 0] * nv[:, 1] / np.maximum(nv.sum(axis=-1), 1.0), 0.0)
    diff = np.where(both, mean[:, 1] - mean[:, 0], 0.0)
    iid = np.where(both, h * h * (within / safe_n).sum(axis=-1), 0.0)
    # Each cluster's influence on T: its deviations from its variant's stratum mean, scaled.
    deviation = (s - n * mean[:, :, None]) / safe_n[:, :, None]
    influence = np.where(both[:, None], h[:, None] * (deviation[:, 1] - deviation[:, 0]), 0.0)
    return MeanEvidence(
        weighted_difference=h * diff,
        weight=h,
        iid_variance=iid,
        influence=influence,
        matched_sum=h[:, None] * np.where(both[:, None], mean, 0.0),
        count=nv,
        total=sv,
        cluster_count=n,
    )


def mean_sequence(
    evidence: MeanEvidence, *, alpha_lower: float, alpha_upper: float, mixture_scale: float
) -> DifferenceSequence:
    """Anytime-valid bounds on the time-matched difference of means (canary - champion)."""
    return confidence_sequence(
        evidence.estimate,
        evidence.variance(),
        alpha_lower=alpha_lower,
        alpha_upper=alpha_upper,
        mixture_scale=mixture_scale,
    )


def proportion_sequence(
    evidence: MeanEvidence, *, alpha_lower: float, alpha_upper: float, mixture_scale: float
) -> DifferenceSequence:
    """Anytime-valid bounds on a time-matched difference of rates (``y`` is 0 or 1).

    The score-type sequence of :func:`~monitoring.judge.sequential.difference_of_proportions`, fed
    *effective* counts: each variant's time-matched rate over a number of trials chosen so that
    the independent-trials variance equals the stratified one divided by the design effect.
    With one stratum and no clustering the effective counts are the real ones.
    """
    means = evidence.matched_means
    deff = evidence.design_effect()
    n0, n1 = evidence.count[:, CHAMPION_AXIS], evidence.count[:, CANARY_AXIS]
    usable = (evidence.weight > 0) & (n0 > 0) & (n1 > 0)
    pooled_harmonic = np.where(usable, n0 * n1 / np.maximum(n0 + n1, 1.0), 1.0)
    factor = np.where(usable, evidence.weight / deff / pooled_harmonic, 0.0)
    n1_eff, n0_eff = n1 * factor, n0 * factor
    p0 = np.where(usable, means[:, CHAMPION_AXIS], 0.0)
    p1 = np.where(usable, means[:, CANARY_AXIS], 0.0)
    if evidence.baseline_shift is not None:
        # The canary's rate as it would be had its customers been the champion's on average.
        shift = evidence.baseline_shift / np.where(usable, evidence.weight, 1.0)
        p1 = np.clip(p1 - np.where(usable, shift, 0.0), 0.0, 1.0)
    return difference_of_proportions(
        p1 * n1_eff,
        n1_eff,
        p0 * n0_eff,
        n0_eff,
        alpha_lower=alpha_lower,
        alpha_upper=alpha_upper,
        mixture_scale=mixture_scale,
    )


@dataclass(frozen=True)
class CanaryEvidence:
    """Everything the judge weighs, for a batch of canaries.

    Attributes:
        errors: ``y`` = 1 when a request failed server-side.
        latency: ``y`` = natural log of the latency in seconds.
        latency_tail: ``y`` = 1 when the latency exceeded ``tail_threshold_s`` (the champion's
            tail quantile before the canary started).
        quality: ``y`` = the per-row loss of a labelled prediction.
        scores: Score histograms for the prediction-distribution guardrail.
        slice_errors: ``errors`` within each slice (segment) of the traffic.
        slice_quality: ``quality`` within each slice.
        tail_threshold_s: The latency the tail signal counts exceedances of, if known.
    """

    errors: MeanEvidence
    latency: MeanEvidence | None = None
    latency_tail: MeanEvidence | None = None
    quality: MeanEvidence | None = None
    scores: ScoreEvidence | None = None
    slice_errors: Mapping[str, MeanEvidence] = field(default_factory=dict)
    slice_quality: Mapping[str, MeanEvidence] = field(default_factory=dict)
    tail_threshold_s: float | None = None

    @property
    def batch(self) -> int:
        """Canaries in the batch."""
        return int(self.errors.weight.shape[0])
