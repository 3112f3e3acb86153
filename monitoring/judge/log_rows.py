"""The inference log's rows as arrays, counted per (stratum, variant, cluster).

The building blocks of the judge's evidence from the log (``monitoring/judge/log_evidence.py``):
each logged row of a period becomes an entry of :class:`LogRows` (its variant, stratum, routing
cluster, failure, latency, slice and score), and :func:`strata_evidence` sums a per-row quantity
into time-matched, cluster-robust evidence (``monitoring/judge/evidence.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from monitoring.judge.counters import SCORE_EDGES
from monitoring.judge.evidence import MeanEvidence, stratum_evidence

__all__ = [
    "LogEvidenceParams",
    "LogRows",
    "cells",
    "of_versions",
    "period_rows",
    "strata_evidence",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class LogEvidenceParams:
    """How the inference log is cut into evidence.

    Attributes:
        window_seconds: Length of a stratum (the controller's judge window).
        clusters: Routing-hash groups for the cluster-robust variance.
        score_edges: Bin edges of the prediction-distribution histograms.
        min_baseline_rows: Baseline rows (on each side of the split) below which no baseline
            correction is made.
        baseline_ratio: The baseline is used only when it has at least this many times the
            rows of the canary's life on each side: its own noise then adds little variance.
        max_unrecorded_share: Share of rows of the canary's life without a routing hash or
            latency above which the log is declared unusable (an older service wrote them).
    """

    window_seconds: float
    clusters: int = 256
    score_edges: tuple[float, ...] = SCORE_EDGES
    min_baseline_rows: int = 200
    baseline_ratio: float = 1.0
    max_unrecorded_share: float = 0.01


@dataclass(frozen=True)
class LogRows:
    """The rows of one period, as arrays (one entry per logged row)."""

    canary: npt.NDArray[np.bool_]
    stratum: IntArray
    cluster: IntArray
    failed: npt.NDArray[np.bool_]
    log_latency: FloatArray  # NaN on failed rows
    latency: FloatArray  # NaN on failed rows
    slice_index: IntArray
    probability: FloatArray

    @property
    def ok(self) -> npt.NDArray[np.bool_]:
        """Rows answered with a recorded latency."""
        return ~self.failed & np.isfinite(self.latency)


def period_rows(
    frame: pd.DataFrame,
    canary: npt.NDArray[np.bool_],
    stratum: IntArray,
    params: LogEvidenceParams,
    slices: Sequence[str],
) -> LogRows:
    """The rows of ``frame`` as arrays: ``canary`` and ``stratum`` per row, clusters by hash."""
    failed = frame["failed"].to_numpy(dtype=bool)
    latency = frame["latency_s"].to_numpy(dtype=np.float64)
    latency = np.where(failed | ~(latency > 0), np.nan, latency)
    hashes = frame["routing_hash"].to_numpy(dtype=np.float64)
    cluster = np.clip(np.floor(hashes * params.clusters), 0, params.clusters - 1)
    # Codes of the slice names (-1: no slice, or one the canary's life never saw).
    slice_values = frame["slice"].astype("string")
    slice_index = pd.Categorical(slice_values, categories=list(slices)).codes.astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_latency = np.log(latency)
    return LogRows(
        canary=canary,
        stratum=stratum,
        cluster=cluster.astype(np.int64),
        failed=failed,
        log_latency=log_latency,
        latency=latency,
        slice_index=slice_index,
        probability=frame["probability"].to_numpy(dtype=np.float64),
    )


def cells(
    rows: LogRows, keep: npt.NDArray[np.bool_], values: FloatArray, strata: int, clusters: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Counts, sums and sums of squares per (stratum, variant, cluster) of ``values``."""
    index = (rows.stratum[keep] * 2 + rows.canary[keep]) * clusters + rows.cluster[keep]
    size = strata * 2 * clusters
    v = values[keep]
    n = np.bincount(index, minlength=size).astype(np.float64)
    s = np.bincount(index, weights=v, minlength=size)
    q = np.bincount(index, weights=v * v, minlength=size)
    shape = (strata, 2, clusters)
    return (
        n.reshape(shape),
        np.asarray(s, dtype=np.float64).reshape(shape),
        np.asarray(q, dtype=np.float64).reshape(shape),
    )


def strata_evidence(
    rows: LogRows,
    keep: npt.NDArray[np.bool_],
    values: FloatArray,
    strata: int,
    clusters: int,
    baseline: Callable[[int], MeanEvidence | None],
) -> MeanEvidence:
    """Sum over strata of each stratum's evidence, each less its baseline if it has one."""
    n, s, q = cells(rows, keep, values, strata, clusters)
    total = MeanEvidence.empty(1, clusters)
    for k in range(strata):
        if not (n[k, 0].any() or n[k, 1].any()):
            continue
        part = stratum_evidence(n[k][None], s[k][None], q[k].sum(axis=-1)[None])
        base = baseline(k)
        total += part if base is None else part.with_baseline(base)
    return total


def of_versions(frame: pd.DataFrame, champion: int, canary: int) -> pd.DataFrame:
    """Rows the champion served as champion and the canary as canary."""
    variant, version = frame["variant"], frame["model_version"]
    keep = ((variant == "champion") & (version == champion)) | (
        (variant == "canary") & (version == canary)
    )
    return frame[keep]
