"""The champion's traffic before the canary, split by the canary's own routing rule.

Sticky routing sends a fixed set of customers to the canary, and by chance they differ from the
champion's. Before the canary started the champion served them all: splitting that period's
rows by the very rule the canary used (``salted(hash, canary_salt(version)) < weight``,
``interfaces/routing.py``) measures the chance difference of the two customer sets, which the
judge removes from each stratum (difference in differences,
``monitoring/judge/evidence.py::MeanEvidence.with_baseline``). The weight of each stratum is
read off the rows themselves: the canary's largest salted point and the champion's smallest one
above it bracket it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from interfaces.routing import canary_salt, salted
from monitoring.judge.evidence import MeanEvidence, stratum_evidence
from monitoring.judge.log_rows import LogEvidenceParams, LogRows, cells, period_rows

__all__ = [
    "Baseline",
    "BaselineRows",
    "BaselineSplits",
    "prepare_baseline",
    "salted_points",
    "stratum_weights",
    "usable_baseline",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Weights people set are round numbers; a threshold is snapped to this grid when the rows allow.
_WEIGHT_GRID = 0.01


def salted_points(hashes: Sequence[float] | FloatArray, version: int) -> FloatArray:
    """The points the split of the canary of ``version`` compares, from logged hashes."""
    salt = canary_salt(version)
    return np.fromiter((salted(float(h), salt) for h in hashes), dtype=np.float64)


@dataclass(frozen=True)
class BaselineRows:
    """The champion's rows before a canary, with the points the canary's split compares.

    Built once per canary by :func:`prepare_baseline` (salting every row's hash is the costly
    part) and passed to :func:`build_evidence` at every look.
    """

    champion: int
    canary: int
    rows: pd.DataFrame
    points: FloatArray


def prepare_baseline(frame: pd.DataFrame, *, champion: int, canary: int) -> BaselineRows:
    """Keep the champion's recorded rows of ``frame`` and salt their hashes for ``canary``."""
    rows = frame[
        (frame["variant"] == "champion")
        & (frame["model_version"] == champion)
        & frame["routing_hash"].notna()
        & (frame["failed"] | frame["latency_s"].notna())
    ]
    points = salted_points(rows["routing_hash"].to_numpy(dtype=np.float64), canary)
    return BaselineRows(champion, canary, rows, points)


@dataclass(frozen=True)
class Baseline:
    """The champion's rows before the canary, with their salted points."""

    rows: LogRows
    points: FloatArray


def stratum_weights(
    canary_points: FloatArray, champion_points: FloatArray, stratum_c: IntArray,
    stratum_h: IntArray, strata: int,
) -> list[float | None]:  # fmt: skip
    """The routing weight of each stratum, read off its rows (None: no canary row in it)."""
    weights: list[float | None] = []
    for k in range(strata):
        mine = canary_points[stratum_c == k]
        if mine.size == 0:
            weights.append(None)
            continue
        low = float(mine.max())
        theirs = champion_points[(stratum_h == k) & (champion_points > low)]
        high = float(theirs.min()) if theirs.size else 1.0
        snapped = math.ceil(low / _WEIGHT_GRID) * _WEIGHT_GRID
        weights.append(snapped if snapped <= high else (low + high) / 2)
    return weights


def usable_baseline(
    baseline: pd.DataFrame | BaselineRows | None,
    champion: int,
    canary: int,
    params: LogEvidenceParams,
    slices: Sequence[str],
    period_size: int,
    is_canary: npt.NDArray[np.bool_],
) -> Baseline | None:
    """The champion's earlier rows, when there are enough of them to help rather than hurt."""
    if baseline is None:
        return None
    if isinstance(baseline, pd.DataFrame):
        baseline = prepare_baseline(baseline, champion=champion, canary=canary)
    if (baseline.champion, baseline.canary) != (champion, canary):
        raise ValueError(
            f"the baseline was prepared for champion {baseline.champion} and canary "
            f"{baseline.canary}, not {champion} and {canary}"
        )
    rows = baseline.rows
    canary_rows = int(is_canary.sum())
    champion_rows = period_size - canary_rows
    needed = params.baseline_ratio * max(canary_rows, champion_rows)
    if len(rows) < max(params.min_baseline_rows, needed):
        return None
    stratum = np.zeros(len(rows), dtype=np.int64)
    return Baseline(
        rows=period_rows(rows, np.zeros(len(rows), dtype=bool), stratum, params, slices),
        points=baseline.points,
    )


def split_baseline(
    base: Baseline,
    weight: float,
    params: LogEvidenceParams,
    slices: Sequence[str],
    threshold: float | None,
) -> dict[str, MeanEvidence]:
    """The baseline period split by the canary's rule at ``weight``, per signal."""
    would_be = base.points < weight
    rows = LogRows(
        canary=would_be,
        stratum=base.rows.stratum,
        cluster=base.rows.cluster,
        failed=base.rows.failed,
        log_latency=base.rows.log_latency,
        latency=base.rows.latency,
        slice_index=base.rows.slice_index,
        probability=base.rows.probability,
    )
    side = np.array([(~would_be).sum(), would_be.sum()])
    if side.min() < params.min_baseline_rows:
        return {}
    clusters = params.clusters

    def one(keep: npt.NDArray[np.bool_], values: FloatArray) -> MeanEvidence:
        n, s, q = cells(rows, keep, values, 1, clusters)
        return stratum_evidence(n, s, q.sum(axis=-1))

    everything = np.ones_like(rows.failed)
    failed = rows.failed.astype(np.float64)
    out = {
        "errors": one(everything, failed),
        "latency": one(rows.ok, rows.log_latency),
    }
    if threshold is not None:
        out["tail"] = one(rows.ok, (rows.latency > threshold).astype(np.float64))
    for i, name in enumerate(slices):
        out[f"slice:{name}"] = one(rows.slice_index == i, failed)
    return out


class BaselineSplits:
    """The baseline split at each stratum's weight, per signal, each weight split once.

    Args:
        base: The champion's earlier rows, or None (no baseline correction).
        weights: The routing weight of each stratum (:func:`stratum_weights`).
        params: How the log is cut.
        slices: The slices of the canary's life.
        threshold: The latency the tail signal counts exceedances of, if known.
    """

    def __init__(
        self,
        base: Baseline | None,
        weights: Sequence[float | None],
        params: LogEvidenceParams,
        slices: Sequence[str],
        threshold: float | None,
    ) -> None:
        self._base = base
        self._weights = weights
        self._params = params
        self._slices = slices
        self._threshold = threshold
        self._cache: dict[float, dict[str, MeanEvidence]] = {}

    def of(self, signal: str) -> Callable[[int], MeanEvidence | None]:
        """The baseline of ``signal`` (``errors``, ``latency``, ``tail``, ``slice:<name>``)."""

        def lookup(k: int) -> MeanEvidence | None:
            weight = self._weights[k]
            if self._base is None or weight is None:
                return None
            if weight not in self._cache:
                self._cache[weight] = split_baseline(
                    self._base, weight, self._params, self._slices, self._threshold
                )
            return self._cache[weight].get(signal)

        return lookup
