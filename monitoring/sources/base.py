"""What every source answers, and how it says it cannot: the protocols the controller reads."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd

from interfaces.routing import Variant
from monitoring.judge.counters import VariantCounts
from monitoring.metrics import HoldReason

__all__ = [
    "JudgeLogInputs",
    "JudgeLogSource",
    "LogSource",
    "MetricsSource",
    "ReferenceNotFound",
    "SourceName",
    "SourceUnavailable",
    "parse_le",
]

SourceName = Literal["prometheus", "scrape", "inference_log", "mlflow"]


class SourceUnavailable(Exception):  # noqa: N818 - reads as a state, like registry's errors
    """A source cannot answer right now; the controller holds instead of judging.

    Attributes:
        source: Which source (``prometheus``, ``scrape``, ``inference_log``, ``mlflow``).
        hold_reason: The ``reason`` label of ``mlplat_controller_holding`` this maps to.
    """

    def __init__(
        self, source: SourceName, message: str, hold_reason: HoldReason = "prometheus_unreachable"
    ) -> None:
        self.source = source
        self.hold_reason: HoldReason = hold_reason
        super().__init__(f"{source}: {message}")


class ReferenceNotFound(LookupError):  # noqa: N818 - same naming as SourceUnavailable
    """A model version has no reference sample to compare its traffic with."""


class MetricsSource(Protocol):
    """Per-variant counts of the champion's and the canary's versions since a moment."""

    name: SourceName

    def counts(
        self, champion: int, canary: int, since: datetime, at: datetime
    ) -> dict[Variant, VariantCounts]:
        """Return ``{"champion": …, "canary": …}`` counted over ``[since, at]``.

        Args:
            champion: The champion's model version.
            canary: The canary's model version.
            since: When the canary started taking traffic.
            at: Now (the controller's clock).

        Raises:
            SourceUnavailable: If the counts cannot be read or are stale.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def parse_le(value: str) -> float:
    """A histogram bucket's ``le`` label as a number (``+Inf`` is infinity)."""
    return math.inf if value in {"+Inf", "Inf", "inf"} else float(value)


class LogSource(Protocol):
    """Scores, delayed labels and windows of logged rows, per variant and model version."""

    def scores(
        self, variant: Variant, version: int, start: datetime, end: datetime
    ) -> npt.NDArray[np.float64]:
        """The probabilities ``version`` gave as ``variant`` in ``[start, end)``."""
        ...

    def labelled(
        self, variant: Variant, version: int, start: datetime, end: datetime
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """``(probabilities, labels)`` of its predictions in ``[start, end)`` that got a label."""
        ...

    def window(
        self, variant: Variant, version: int, start: datetime, end: datetime, max_rows: int
    ) -> pd.DataFrame:
        """Its most recent ``max_rows`` logged rows in ``[start, end)``, oldest first."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class JudgeLogInputs(NamedTuple):
    """What ``monitoring/judge/log_evidence.py`` builds the judge's evidence from.

    Attributes:
        rows: Rows scored or failed over the canary's life (``judge_rows``).
        labels: Labelled predictions made over the canary's life (``judge_labels``).
        baseline: Rows of the period before the canary started (``judge_rows``).
    """

    rows: pd.DataFrame
    labels: pd.DataFrame
    baseline: pd.DataFrame


@runtime_checkable
class JudgeLogSource(Protocol):
    """A log source that also keeps each row's routing hash, latency, slice and failure."""

    def judge_inputs(
        self, started: datetime, now: datetime, baseline_seconds: float
    ) -> JudgeLogInputs | None:
        """The rows over ``[started, now)`` and the ``baseline_seconds`` before ``started``.

        Returns None when the log does not record what the judge needs (a table an older
        service created and no current service has upgraded).
        """
        ...
