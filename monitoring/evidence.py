"""Moved to :mod:`monitoring.judge.evidence` (and ``ScoreEvidence`` to :mod:`monitoring.judge.psi`).

Kept only while the judge benchmarks move out of ``monitoring/`` (issue 11) still import this
path; import from the new modules.
"""

from monitoring.judge.evidence import (
    TAIL_QUANTILE,
    CanaryEvidence,
    MeanEvidence,
    mean_sequence,
    proportion_sequence,
    stratum_evidence,
)
from monitoring.judge.psi import ScoreEvidence

__all__ = [
    "CanaryEvidence",
    "MeanEvidence",
    "ScoreEvidence",
    "TAIL_QUANTILE",
    "mean_sequence",
    "proportion_sequence",
    "stratum_evidence",
]
