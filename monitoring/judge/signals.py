"""One signal's reading for a batch of canaries: worse, not worse, better, or still open.

Each whole-traffic signal is a time-matched difference (:mod:`monitoring.judge.evidence`) with
anytime-valid bounds (:mod:`monitoring.judge.sequential`), read against its floor (worth a
rollback) and its margin (accepted by a promotion). A slice signal is the same comparison in
every traffic slice, reduced to one reading; the prediction distribution is the PSI guardrail
(:mod:`monitoring.judge.psi`). :class:`~monitoring.judge.judge.CanaryJudge` combines the
readings into a verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitoring.judge.config import JudgeConfig
from monitoring.judge.evidence import MeanEvidence, mean_sequence, proportion_sequence
from monitoring.judge.psi import ScoreEvidence, population_stability_index, psi_noise_allowance
from monitoring.judge.results import DecisionCode, SignalArrays, SignalName
from monitoring.judge.sequential import DifferenceSequence, mixture_radius, spent_alpha

__all__ = ["Comparison", "absent", "compare", "is_open", "predictions", "slices"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def _decide(
    sequence: DifferenceSequence, enough: BoolArray, floor: npt.ArrayLike, margin: npt.ArrayLike
) -> IntArray:
    """Each canary's decision: worse beyond the floor, not worse (or better) within the margin."""
    floor_a = np.broadcast_to(np.asarray(floor, dtype=np.float64), enough.shape)
    margin_a = np.broadcast_to(np.asarray(margin, dtype=np.float64), enough.shape)
    decision = np.full(enough.shape, DecisionCode.INSUFFICIENT, dtype=np.int64)
    decision[enough] = DecisionCode.UNDECIDED
    decision[enough & (sequence.upper < margin_a)] = DecisionCode.NOT_WORSE
    decision[enough & (sequence.upper < -margin_a)] = DecisionCode.BETTER
    decision[enough & (sequence.lower > floor_a)] = DecisionCode.WORSE
    return decision


def absent(name: SignalName, size: int) -> SignalArrays:
    """The reading of a signal whose data is not collected: it neither blocks nor decides."""
    nan = np.full(size, np.nan)
    zero = np.zeros(size)
    return SignalArrays(
        name=name,
        decision=np.full(size, DecisionCode.NOT_COLLECTED, dtype=np.int64),
        estimate=nan,
        lower=nan,
        upper=nan,
        statistic=nan,
        threshold=nan,
        margin=nan,
        n_canary=zero,
        n_champion=zero,
        on_course=np.ones(size, dtype=bool),
    )


def is_open(decision: IntArray) -> BoolArray:
    """Signals that neither block nor allow yet."""
    return np.asarray(
        (decision == DecisionCode.INSUFFICIENT) | (decision == DecisionCode.UNDECIDED), dtype=bool
    )


@dataclass(frozen=True)
class Comparison:
    """How to read one difference-of-means signal (the parts that differ between signals)."""

    name: SignalName
    proportion: bool
    floor: float
    margin: npt.ArrayLike
    minimum: float
    mixture_scale: float
    transform: Callable[[FloatArray], FloatArray] | None = None
    min_clusters: float = 0.0


def _sequence(
    evidence: MeanEvidence, comparison: Comparison, alpha: float, config: JudgeConfig
) -> DifferenceSequence:
    build = proportion_sequence if comparison.proportion else mean_sequence
    return build(
        evidence,
        alpha_lower=alpha,
        alpha_upper=config.alpha_promote,
        mixture_scale=comparison.mixture_scale,
    )


def compare(
    evidence: MeanEvidence,
    comparison: Comparison,
    alpha: float,
    growth: FloatArray,
    config: JudgeConfig,
) -> SignalArrays:
    """One whole-traffic (or one slice's) signal: its bounds against its floor and margin.

    Args:
        evidence: The signal's time-matched evidence.
        comparison: Its floor, margin, minimum sample and mixture scale.
        alpha: The share of ``alpha_rollback`` its lower bound may spend.
        growth: How much more information each canary will have at the hard cap.
        config: The judge's config (``alpha_promote`` for the upper bound).
    """
    seq = _sequence(evidence, comparison, alpha, config)
    n0, n1 = evidence.count[:, 0], evidence.count[:, 1]
    groups = evidence.variant_clusters
    enough = (
        (n1 >= comparison.minimum)
        & (n0 >= comparison.minimum)
        & (groups.min(axis=-1) >= comparison.min_clusters)
    )
    margin = np.broadcast_to(np.asarray(comparison.margin, dtype=np.float64), n1.shape)
    decision = _decide(seq, enough, comparison.floor, margin)
    # Stuck, rather than slow: the spread between clusters, which more requests from the
    # same customers cannot shrink, already keeps the upper bound above the margin.
    between = evidence.between_cluster_variance()
    plateau = between >= 0.75 * evidence.variance()
    floor_radius = mixture_radius(
        np.where(np.isfinite(between), between, 0.0),
        alpha=config.alpha_promote,
        mixture_scale=comparison.mixture_scale,
    )
    settles = ~plateau | (np.nan_to_num(seq.estimate, nan=np.inf) + floor_radius < margin)
    on_course = np.where(enough, settles, np.minimum(n0, n1) * growth >= comparison.minimum)
    show = comparison.transform or (lambda values: values)
    with np.errstate(over="ignore"):
        lower = show(seq.lower)
        return SignalArrays(
            name=comparison.name,
            decision=decision,
            estimate=show(seq.estimate),
            lower=lower,
            upper=show(seq.upper),
            statistic=lower,
            threshold=show(np.full(n1.shape, comparison.floor)),
            margin=show(margin),
            n_canary=n1,
            n_champion=n0,
            on_course=np.asarray(on_course, dtype=bool),
        )


def slices(
    per_slice: Mapping[str, MeanEvidence],
    comparison: Comparison,
    alpha: float,
    growth: FloatArray,
    total_canary: FloatArray,
    size: int,
    config: JudgeConfig,
    *,
    blocking: bool,
) -> SignalArrays:
    """All slices as one signal: worse if any slice is; not worse when every big one is."""
    if not per_slice:
        return absent(comparison.name, size)
    names = tuple(per_slice)
    readings = [compare(per_slice[n], comparison, alpha, growth, config) for n in names]
    decisions = np.stack([r.decision for r in readings])
    share = np.stack(
        [r.n_canary / np.maximum(total_canary, 1.0) for r in readings]
    )  # (slices, batch)
    must = share >= config.slice_min_share if blocking else np.zeros_like(share, bool)
    pending = must & (
        (decisions == DecisionCode.INSUFFICIENT) | (decisions == DecisionCode.UNDECIDED)
    )
    judged = decisions != DecisionCode.INSUFFICIENT
    decision = np.full(size, DecisionCode.INSUFFICIENT, dtype=np.int64)
    decision[judged.any(axis=0)] = DecisionCode.NOT_WORSE
    decision[pending.any(axis=0)] = DecisionCode.UNDECIDED
    decision[(pending & ~judged).all(axis=0) & pending.any(axis=0)] = DecisionCode.INSUFFICIENT
    decision[(decisions == DecisionCode.WORSE).any(axis=0)] = DecisionCode.WORSE
    on_course = np.stack([r.on_course | ~p for r, p in zip(readings, pending, strict=True)])
    # Report the slice closest to a rollback: the largest lower bound above its floor.
    lowers = np.stack([np.nan_to_num(r.lower, nan=-np.inf) for r in readings])
    worst = np.argmax(lowers, axis=0)
    pick = np.arange(size)

    def take(field: str) -> FloatArray:
        stacked = np.stack([getattr(r, field) for r in readings])
        return np.asarray(stacked[worst, pick], dtype=np.float64)

    return SignalArrays(
        name=comparison.name,
        decision=decision,
        estimate=take("estimate"),
        lower=take("lower"),
        upper=take("upper"),
        statistic=take("statistic"),
        threshold=take("threshold"),
        margin=take("margin"),
        n_canary=take("n_canary"),
        n_champion=take("n_champion"),
        on_course=np.asarray(on_course.all(axis=0), dtype=bool),
        detail=tuple(names[int(i)] for i in worst),
    )


def predictions(
    scores: ScoreEvidence | None,
    windows: FloatArray,
    growth: FloatArray,
    alpha_rollback: float | None,
    size: int,
    config: JudgeConfig,
) -> SignalArrays:
    """The prediction-distribution guardrail: PSI beyond its floor plus its noise allowance."""
    c = config
    if scores is None:
        return absent(SignalName.PREDICTIONS, size)
    n1 = scores.canary_count
    n0 = scores.champion_effective
    psi, df = population_stability_index(scores.canary, scores.champion_matched)
    alpha = c.psi_alpha
    if c.prediction_shift_action == "rollback" and alpha_rollback is not None:
        alpha = min(alpha, alpha_rollback)
    allowance = scores.design_effect * psi_noise_allowance(
        n1, n0, df, alpha=spent_alpha(alpha, windows)
    )
    threshold = c.psi_floor + allowance
    enough = (n1 >= c.psi_min_samples) & (n0 >= c.psi_min_samples)
    decision = np.full(size, DecisionCode.INSUFFICIENT, dtype=np.int64)
    decision[enough] = DecisionCode.UNDECIDED
    decision[enough & (psi <= c.psi_floor)] = DecisionCode.NOT_WORSE
    decision[enough & (psi > threshold)] = DecisionCode.WORSE
    nan = np.full(size, np.nan)
    return SignalArrays(
        name=SignalName.PREDICTIONS,
        decision=decision,
        estimate=psi,
        lower=nan,
        upper=nan,
        statistic=psi,
        threshold=threshold,
        margin=np.full(size, c.psi_floor),
        n_canary=n1,
        n_champion=n0,
        # PSI's noise allowance shrinks as 1/n: more data settles it either way.
        on_course=enough | (np.minimum(n0, n1) * growth >= c.psi_min_samples),
    )
