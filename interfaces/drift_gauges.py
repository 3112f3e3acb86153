"""Metric 7's gauges, defined once for every process that publishes drift results.

The service publishes them on ``POST /admin/drift``; the monitoring controller publishes them
from its own ``/metrics`` after each drift check. One definition keeps the names, labels, help
and multi-process modes identical, so one rule or panel reads drift whichever process wrote it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from prometheus_client import CollectorRegistry, Gauge

from features import FEATURE_NAMES
from interfaces.metric_names import (
    DRIFT_CHECK_TIMESTAMP,
    DRIFTED_FEATURES_RATIO,
    FEATURE_DRIFT_SCORE,
    RECORD_LEVEL,
    UNKNOWN_FEATURE,
)

__all__ = ["DriftGauges", "feature_label"]

_FEATURES: Final = frozenset(FEATURE_NAMES)


def feature_label(name: str) -> str:
    """Map a field name to a bounded ``feature`` label value (``_record`` stays itself)."""
    return name if name in _FEATURES or name == RECORD_LEVEL else UNKNOWN_FEATURE


class DriftGauges:
    """Metric 7, the drift checks' results: one definition for every process that publishes them.

    The monitoring controller runs the checks and publishes them on its own ``/metrics``; the
    service publishes them when ``POST /admin/drift`` is called. Same names, labels and help in
    both, so one rule or panel reads drift whichever process published it.

    Args:
        registry: Where the three gauges are registered.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        vm = ("variant", "model_version")
        self.score = Gauge(
            FEATURE_DRIFT_SCORE,
            "Drift of one feature between the training reference and recent traffic "
            "(distance; higher = more drift, 0 = identical). Set by the monitoring drift checks.",
            ("feature", *vm),
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.drifted_ratio = Gauge(
            DRIFTED_FEATURES_RATIO,
            "Share of features the latest drift check flagged as drifted.",
            vm,
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.checked_at = Gauge(
            DRIFT_CHECK_TIMESTAMP,
            "Unix time of the latest drift check (alert when it goes stale).",
            vm,
            registry=registry,
            multiprocess_mode="mostrecent",
        )

    def record(
        self,
        variant: str,
        model_version: str,
        scores: Mapping[str, float],
        drifted_ratio: float,
        checked_at: float,
    ) -> None:
        """Publish one drift check's result.

        Args:
            variant: The variant whose traffic was checked.
            model_version: The model version that served that traffic.
            scores: Drift score per contract feature (higher = more drift).
            drifted_ratio: Share of features flagged as drifted, in [0, 1].
            checked_at: Unix time of the check.

        Raises:
            ValueError: If ``drifted_ratio`` is outside [0, 1].
        """
        if not 0.0 <= drifted_ratio <= 1.0:
            raise ValueError(f"drifted_ratio must be within [0, 1]; got {drifted_ratio!r}")
        for feature, score in scores.items():
            self.score.labels(feature_label(feature), variant, model_version).set(score)
        self.drifted_ratio.labels(variant, model_version).set(drifted_ratio)
        self.checked_at.labels(variant, model_version).set(checked_at)
