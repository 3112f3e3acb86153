"""Measure a fitted model on the holdout: quality, slices, behaviour, latency and size."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import skops.io

from features import FEATURE_NAMES, SEGMENT, TARGET
from pipeline.behaviour import BehaviouralCheck, run_behavioural_checks
from pipeline.config import EvaluationConfig
from pipeline.metrics import ClassificationMetrics, classification_metrics, slice_metrics
from pipeline.threads import limit_threads
from pipeline.train import Classifier


@dataclass(frozen=True)
class ScoredRows:
    """The holdout rows as the gate needs them: labels, scores and slice keys, row-aligned.

    Attributes:
        labels: 0/1 labels.
        scores: Predicted probability of default.
        slices: Segment of each row.
    """

    labels: np.ndarray
    scores: np.ndarray
    slices: np.ndarray

    def same_rows_as(self, other: ScoredRows) -> bool:
        """Whether ``other`` scored the very same rows (same labels and slices, same order)."""
        return bool(
            self.labels.shape == other.labels.shape
            and np.array_equal(self.labels, other.labels)
            and np.array_equal(self.slices, other.slices)
        )


@dataclass(frozen=True)
class Evaluation:
    """Everything measured about one model on one holdout.

    Attributes:
        metrics: Overall quality.
        slices: Quality per value of ``features.SEGMENT``.
        behaviour: Behavioural checks.
        latency_ms_per_row: Median time of a batched ``predict_proba``, per row.
        latency_ms_single_row: Median time of a one-row ``predict_proba`` (the request path).
        size_bytes: Size of the model serialized with skops.
        rows: Row-level scores for the paired comparison (not part of :meth:`to_dict`).
    """

    metrics: ClassificationMetrics
    slices: dict[str, ClassificationMetrics]
    behaviour: list[BehaviouralCheck]
    latency_ms_per_row: float
    latency_ms_single_row: float
    size_bytes: int
    rows: ScoredRows = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form (without the row-level scores)."""
        return {
            "metrics": self.metrics.to_dict(),
            "slices": {key: value.to_dict() for key, value in self.slices.items()},
            "behaviour": [check.to_dict() for check in self.behaviour],
            "latency_ms_per_row": self.latency_ms_per_row,
            "latency_ms_single_row": self.latency_ms_single_row,
            "size_bytes": self.size_bytes,
        }


def measure_latency(model: Classifier, rows: pd.DataFrame, repeats: int) -> float:
    """Return the fastest wall time of ``predict_proba(rows)`` in milliseconds (after a warm-up).

    The minimum, as ``timeit`` advises: other processes on the machine can only add time, so
    the fastest run is the model's own cost and the gate does not fail a model because a CI
    runner was busy (a median did, on a loaded two-core machine).
    """
    model.predict_proba(rows)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_proba(rows)
        timings.append((time.perf_counter() - start) * 1000.0)
    return min(timings)


def serialized_size(model: Any) -> int:
    """Return the size in bytes of ``model`` serialized with skops (the format we ship)."""
    return len(skops.io.dumps(model))


def evaluate(
    model: Classifier, holdout: pd.DataFrame, cfg: EvaluationConfig, seed: int = 0
) -> Evaluation:
    """Measure ``model`` on ``holdout``.

    Args:
        model: A fitted classifier.
        holdout: Labelled rows never seen in training; not modified.
        cfg: Measurement settings.
        seed: Seed of the behavioural perturbations and samples.

    Returns:
        The evaluation, including row-level scores for the gate.
    """
    # One thread, as served: the latency is the one production sees, and stable under load.
    with limit_threads(1):
        return _evaluate(model, holdout, cfg, seed)


def _evaluate(
    model: Classifier, holdout: pd.DataFrame, cfg: EvaluationConfig, seed: int
) -> Evaluation:
    features = holdout[list(FEATURE_NAMES)]
    labels = holdout[TARGET].to_numpy(dtype=np.int64)
    scores = np.asarray(model.predict_proba(features)[:, 1], dtype=float)
    # Without a slice column every row is in one unnamed slice, which no gate checks.
    segments = (
        holdout[SEGMENT].astype(str).to_numpy()
        if SEGMENT
        else np.full(len(holdout), "", dtype=object)
    )
    rng = np.random.default_rng(seed)
    sample_size = min(cfg.behaviour_sample_rows, len(holdout))
    sample = holdout.iloc[np.sort(rng.choice(len(holdout), sample_size, replace=False))]
    # Cycle the holdout when it is smaller than the timed batch.
    batch = features.iloc[np.arange(cfg.latency_batch_rows) % len(features)]
    batch_ms = measure_latency(model, batch, cfg.latency_repeats)
    single_ms = measure_latency(model, features.iloc[:1], max(cfg.latency_repeats, 5))
    return Evaluation(
        metrics=classification_metrics(labels, scores, cfg.calibration_bins),
        slices=slice_metrics(labels, scores, segments, cfg.calibration_bins) if SEGMENT else {},
        behaviour=run_behavioural_checks(model, sample, seed),
        latency_ms_per_row=batch_ms / len(batch),
        latency_ms_single_row=single_ms,
        size_bytes=serialized_size(model),
        rows=ScoredRows(labels=labels, scores=scores, slices=segments),
    )
