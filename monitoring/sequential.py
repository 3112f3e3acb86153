"""Moved to :mod:`monitoring.judge.sequential` (the PSI guardrail: :mod:`monitoring.judge.psi`).

Kept only while the judge benchmarks move out of ``monitoring/`` (issue 11) still import this
path; import from the new modules.
"""

from monitoring.judge.psi import population_stability_index, psi_noise_allowance
from monitoring.judge.sequential import (
    DifferenceSequence,
    confidence_sequence,
    difference_of_means,
    difference_of_proportions,
    mixture_boundary,
    mixture_radius,
    spent_alpha,
)

__all__ = [
    "DifferenceSequence",
    "confidence_sequence",
    "difference_of_means",
    "difference_of_proportions",
    "mixture_boundary",
    "mixture_radius",
    "population_stability_index",
    "psi_noise_allowance",
    "spent_alpha",
]
