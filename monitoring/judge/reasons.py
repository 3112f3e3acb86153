"""The judge's answers in words: each signal's reading and the verdict, with their numbers.

Every event the controller writes carries these sentences, so a person reading the event log
(or a page) sees which signal decided, its estimate and its anytime-valid bounds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from monitoring.judge.config import JudgeConfig
from monitoring.judge.results import (
    DECISION_BY_CODE,
    SLICE_SIGNALS,
    Decision,
    SignalArrays,
    SignalName,
    SignalResult,
    Verdict,
)

__all__ = ["UNITS", "signal_reason", "signal_result", "verdict_reason"]


def _number(value: float | None) -> float | None:
    """A JSON-safe float: ``None`` for missing, infinite or NaN values."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


UNITS: dict[SignalName, str] = {
    SignalName.ERROR_RATE: "error rate difference (canary - champion)",
    SignalName.LATENCY: "geometric-mean latency ratio (canary / champion)",
    SignalName.LATENCY_TAIL: "difference of the shares slower than the champion's tail quantile",
    SignalName.QUALITY: "mean per-row loss difference (canary - champion)",
    SignalName.SLICE_ERROR_RATE: "error rate difference within the slice shown",
    SignalName.SLICE_QUALITY: "mean per-row loss difference within the slice shown",
    SignalName.PREDICTIONS: "population stability index (0 = identical)",
}


def signal_result(arrays: SignalArrays, config: JudgeConfig) -> SignalResult:
    """One canary's reading of one signal (the first of the batch), with its reason."""
    decision = DECISION_BY_CODE[int(arrays.decision[0])]
    values = {
        "statistic": _number(float(arrays.statistic[0])),
        "threshold": _number(float(arrays.threshold[0])),
        "estimate": _number(float(arrays.estimate[0])),
        "ci_low": _number(float(arrays.lower[0])),
        "ci_high": _number(float(arrays.upper[0])),
    }
    margin = _number(float(arrays.margin[0]))
    detail = arrays.detail[0] if arrays.detail else None
    return SignalResult(
        name=arrays.name,
        decision=decision,
        margin=margin,
        units=UNITS[arrays.name],
        n_canary=int(arrays.n_canary[0]),
        n_champion=int(arrays.n_champion[0]),
        slice=detail,
        reason=signal_reason(arrays.name, decision, values, margin, detail, config),
        **values,
    )


def signal_reason(
    name: SignalName,
    decision: Decision,
    values: Mapping[str, float | None],
    margin: float | None,
    detail: str | None,
    config: JudgeConfig,
) -> str:
    """One signal's reading in words: what it compared, against what, and the bounds."""
    c = config
    if decision == Decision.NOT_COLLECTED:
        return "not collected: this signal is not checked"
    minimum = {
        SignalName.ERROR_RATE: f"{c.error_rate_min_requests} requests",
        SignalName.LATENCY: f"{c.latency_min_samples} latency samples",
        SignalName.LATENCY_TAIL: f"{c.tail_min_samples} latency samples",
        SignalName.QUALITY: f"{c.quality_min_labels} labelled predictions",
        SignalName.SLICE_ERROR_RATE: (
            f"{c.slice_min_requests} requests from {c.slice_min_customers} customers in a slice"
        ),
        SignalName.SLICE_QUALITY: (
            f"{c.slice_min_labels} labelled predictions from {c.slice_min_customers} "
            "customers in a slice"
        ),
        SignalName.PREDICTIONS: f"{c.psi_min_samples} scores",
    }[name]
    if decision == Decision.INSUFFICIENT:
        return f"fewer than {minimum} per variant yet"

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4g}"

    est, low, high = fmt(values["estimate"]), fmt(values["ci_low"]), fmt(values["ci_high"])
    stat, thr = fmt(values["statistic"]), fmt(values["threshold"])
    if name == SignalName.PREDICTIONS:
        return {
            Decision.WORSE: f"PSI {est} exceeds floor {c.psi_floor} plus noise allowance "
            f"(threshold {thr}): the canary scores this traffic differently",
            Decision.NOT_WORSE: f"PSI {est} is within floor {c.psi_floor}",
            Decision.UNDECIDED: f"PSI {est} is above floor {c.psi_floor} but within its noise "
            f"allowance (threshold {thr})",
        }[decision]
    where = f" in slice {detail!r}" if detail else ""
    span = f"estimate {est}, anytime-valid bounds [{low}, {high}]"
    if name in SLICE_SIGNALS and decision == Decision.NOT_WORSE:
        return f"not worse in any slice that is judged (closest: {detail!r}, {span})"
    return {
        Decision.WORSE: f"worse{where}: lower bound {stat} exceeds floor {thr} ({span})",
        Decision.BETTER: f"better{where}: upper bound {high} is below -{fmt(margin)} ({span})",
        Decision.NOT_WORSE: f"not worse: upper bound {high} is below margin {fmt(margin)} ({span})",
        Decision.UNDECIDED: f"undecided{where}: lower bound {low} within floor {thr}, upper "
        f"bound {high} above margin {fmt(margin)} ({span})",
    }[decision]


def verdict_reason(
    verdict: Verdict,
    signals: tuple[SignalResult, ...],
    window: int,
    stuck: bool,
    config: JudgeConfig,
) -> str:
    """The verdict in words, naming the signals that decided it."""
    c = config
    by_name = {s.name: s for s in signals}

    def listing(names: Sequence[SignalName]) -> str:
        return "; ".join(f"{n.value}: {by_name[n].reason}" for n in names)

    worse = [n for n in c.rollback_signals if by_name[n].decision == Decision.WORSE]
    open_ = (Decision.INSUFFICIENT, Decision.UNDECIDED)
    pending = [n for n in c.promotion_signals if by_name[n].decision in open_]
    if verdict == Verdict.ROLLBACK:
        return f"roll back: {listing(worse)}"
    if verdict == Verdict.INCONCLUSIVE:
        if worse:
            both = listing([SignalName.LATENCY, SignalName.LATENCY_TAIL, SignalName.QUALITY])
            return (
                "pause and page a human: the canary is slower but confidently better in "
                f"quality, a trade-off for a person. {both}"
            )
        if by_name[SignalName.PREDICTIONS].decision == Decision.WORSE:
            return (
                "pause and page a human: the prediction distribution moved beyond its "
                "guardrail while no signal shows harm; confirm the shift is intended. "
                f"{listing([SignalName.PREDICTIONS])}"
            )
        if window >= c.hard_max_windows:
            why = f"no decision after {window} windows (hard cap {c.hard_max_windows})"
        else:
            why = (
                f"no decision after {window} windows (max {c.max_windows}) and more of the "
                "same traffic will not settle it: an estimate sits between floor and margin"
            )
        return f"pause and page a human: {why}; still open: {listing(pending)}"
    if verdict == Verdict.PROMOTE:
        return f"promote: {listing(c.promotion_signals)}"
    if window < c.min_windows_before_promote:
        return (
            f"continue: minimum duration not reached ({window} of "
            f"{c.min_windows_before_promote} windows)"
        )
    if window >= c.max_windows:
        return (
            f"continue (extended past {c.max_windows} windows, up to "
            f"{c.hard_max_windows}): evidence is still accruing and on course; waiting on "
            f"{listing(pending)}"
        )
    return f"continue: waiting on {listing(pending)}"
