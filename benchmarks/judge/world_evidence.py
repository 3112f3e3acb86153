"""Our judge's evidence as the simulated world accumulates it, one stratum per window.

The controller adds the inference log's per (stratum, variant, routing-key group, slice) counts
and sums into the judge's evidence window by window (:mod:`monitoring.evidence`); the world does
the same arithmetic on its draws, through these three pieces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitoring.judge import CanaryEvidence
from monitoring.judge.evidence import MeanEvidence
from monitoring.judge.psi import ScoreEvidence

__all__ = ["Baseline", "Cells", "EvidenceSoFar"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class Cells:
    """Routes per-client values into (run, variant, group) cells."""

    runs: int
    groups: int
    group: IntArray  # (runs, clients)

    def __call__(self, values: FloatArray | IntArray, canary: npt.NDArray[np.bool_]) -> FloatArray:
        """Sum ``values`` (shape ``(runs, clients)``) into ``(runs, variant, group)`` cells."""
        index = (np.arange(self.runs)[:, None] * 2 + canary) * self.groups + self.group
        flat = np.bincount(
            index.ravel(), weights=np.asarray(values, dtype=np.float64).ravel(),
            minlength=self.runs * 2 * self.groups,
        )  # fmt: skip
        return np.asarray(flat.reshape(self.runs, 2, self.groups), dtype=np.float64)


@dataclass(frozen=True)
class Baseline:
    """The champion's traffic before the canary, split by one routing weight."""

    errors: MeanEvidence
    latency: MeanEvidence
    tail: MeanEvidence
    slices: list[MeanEvidence]


@dataclass
class EvidenceSoFar:
    """Our judge's evidence, accumulated one stratum at a time."""

    errors: MeanEvidence
    latency: MeanEvidence
    tail: MeanEvidence
    quality: MeanEvidence
    slice_errors: list[MeanEvidence]
    slice_quality: list[MeanEvidence]
    scores: ScoreEvidence | None = None

    @classmethod
    def empty(cls, runs: int, groups: int, slices: int) -> EvidenceSoFar:
        """No evidence yet, for ``runs`` canaries of ``groups`` routing-key groups."""

        def blank() -> MeanEvidence:
            return MeanEvidence.empty(runs, groups)

        return cls(
            blank(), blank(), blank(), blank(),
            [blank() for _ in range(slices)], [blank() for _ in range(slices)],
        )  # fmt: skip

    def frozen(self, tail_threshold: float | None) -> CanaryEvidence:
        """The evidence so far, as the judge reads it."""
        return CanaryEvidence(
            errors=self.errors,
            latency=self.latency,
            latency_tail=self.tail,
            quality=self.quality,
            scores=self.scores,
            slice_errors={f"slice{i}": e for i, e in enumerate(self.slice_errors)},
            slice_quality={f"slice{i}": e for i, e in enumerate(self.slice_quality)},
            tail_threshold_s=tail_threshold,
        )
