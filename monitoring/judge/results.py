"""What the judge answers: verdicts, each signal's reading, and the arrays behind them.

The string enums (:class:`Verdict`, :class:`Decision`, :class:`SignalName`) are what reports,
events and metrics carry; the integer codes (:class:`VerdictCode`, :class:`DecisionCode`) are
their array form, for :meth:`~monitoring.judge.judge.CanaryJudge.decide` on a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

__all__ = [
    "DECISION_BY_CODE",
    "SLICE_SIGNALS",
    "VERDICT_BY_CODE",
    "BatchJudgement",
    "Decision",
    "DecisionCode",
    "JudgeResult",
    "SignalArrays",
    "SignalName",
    "SignalResult",
    "Verdict",
    "VerdictCode",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class Verdict(StrEnum):
    """What the controller should do after this window."""

    CONTINUE = "continue"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    INCONCLUSIVE = "inconclusive"


class VerdictCode(IntEnum):
    """Integer codes of :class:`Verdict`, for arrays."""

    CONTINUE = 0
    PROMOTE = 1
    ROLLBACK = 2
    INCONCLUSIVE = 3


VERDICT_BY_CODE: dict[int, Verdict] = {
    VerdictCode.CONTINUE: Verdict.CONTINUE,
    VerdictCode.PROMOTE: Verdict.PROMOTE,
    VerdictCode.ROLLBACK: Verdict.ROLLBACK,
    VerdictCode.INCONCLUSIVE: Verdict.INCONCLUSIVE,
}


class Decision(StrEnum):
    """One signal's reading at this window."""

    INSUFFICIENT = "insufficient_data"
    UNDECIDED = "undecided"
    NOT_WORSE = "not_worse"
    BETTER = "better"
    WORSE = "worse"
    NOT_COLLECTED = "not_collected"


class DecisionCode(IntEnum):
    """Integer codes of :class:`Decision`, for arrays."""

    INSUFFICIENT = 0
    UNDECIDED = 1
    NOT_WORSE = 2
    BETTER = 3
    WORSE = 4
    NOT_COLLECTED = 5


DECISION_BY_CODE: dict[int, Decision] = {code.value: Decision[code.name] for code in DecisionCode}


class SignalName(StrEnum):
    """The comparisons the judge makes."""

    ERROR_RATE = "error_rate"
    LATENCY = "latency"
    LATENCY_TAIL = "latency_tail"
    QUALITY = "quality"
    SLICE_ERROR_RATE = "slice_error_rate"
    SLICE_QUALITY = "slice_quality"
    PREDICTIONS = "prediction_distribution"


SLICE_SIGNALS = (SignalName.SLICE_ERROR_RATE, SignalName.SLICE_QUALITY)
"""The signals judged within each traffic slice."""


class SignalResult(BaseModel):
    """One comparison and the numbers behind it.

    Attributes:
        name: Which comparison.
        decision: Its reading at this window.
        statistic: The value compared with ``threshold`` to decide WORSE (an anytime-valid lower
            bound of the regression; PSI for the prediction distribution).
        threshold: The floor it must clear (floor plus noise allowance for PSI).
        estimate: Point estimate of canary versus champion.
        ci_low: Anytime-valid lower bound (at the rollback level).
        ci_high: Anytime-valid upper bound (at the promotion level).
        margin: The promotion margin ``ci_high`` must be below.
        units: What the numbers measure.
        n_canary: Canary sample behind the comparison.
        n_champion: Champion sample behind the comparison.
        slice: For a slice signal, the slice whose numbers are shown (the closest to a rollback).
        reason: The reading in words.
    """

    model_config = ConfigDict(frozen=True)

    name: SignalName
    decision: Decision
    statistic: float | None
    threshold: float | None
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    margin: float | None
    units: str
    n_canary: int
    n_champion: int
    slice: str | None = None
    reason: str


class JudgeResult(BaseModel):
    """The verdict for one window, every signal behind it, and why.

    Attributes:
        verdict: What the controller should do.
        window: The window judged.
        signals: Every comparison, in a fixed order.
        reason: The verdict in words, naming the signals that decided it.
    """

    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    window: int
    signals: tuple[SignalResult, ...]
    reason: str

    def signal(self, name: SignalName | str) -> SignalResult:
        """The result of one signal, by name."""
        for result in self.signals:
            if result.name == name:
                return result
        raise KeyError(f"no signal named {name!r}")

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict: the verdict, the reason and every number."""
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class SignalArrays:
    """One signal's reading for every canary in a batch.

    ``estimate``, ``lower`` and ``upper`` are in the signal's reporting units (a ratio for
    latency, PSI for the prediction distribution); ``statistic`` is compared with ``threshold`` to
    decide WORSE; ``margin`` is what ``upper`` must be below for NOT_WORSE. ``on_course`` says,
    for an open signal, whether the evidence expected by the hard cap would settle it.
    ``detail`` names the slice behind a slice signal's numbers (the worst one).
    """

    name: SignalName
    decision: IntArray
    estimate: FloatArray
    lower: FloatArray
    upper: FloatArray
    statistic: FloatArray
    threshold: FloatArray
    margin: FloatArray
    n_canary: FloatArray
    n_champion: FloatArray
    on_course: BoolArray
    detail: tuple[str, ...] | None = None


@dataclass(frozen=True)
class BatchJudgement:
    """Verdict codes (:class:`VerdictCode`) and signal readings for a batch of canaries."""

    verdict: IntArray
    signals: dict[SignalName, SignalArrays]
    stuck: BoolArray
