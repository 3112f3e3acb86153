"""The judge's evidence from the inference log: windows, routing-key groups, slices, a baseline.

Cumulative counters (Prometheus, ``/metrics``) can only say "so many requests, so many errors
since the canary started": one stratum of independent requests
(:func:`monitoring.observation.observation_evidence`). The inference log keeps every row with
its time, its routing key's unsalted hash, its latency, its slice and whether the model failed
(``serving/inference_log.py``), which is what the judge's protections need
(``monitoring/evidence.py``; ADR 0006):

* **strata** — one per judge window since the canary started, so a weight ramp under a
  platform-wide drift compares like with like; labels are stratified by the window of the
  prediction crossed with the window of the label's arrival;
* **clusters** — rows are grouped by their routing hash (``floor(hash * clusters)``), so a
  customer's correlated requests widen the bounds (cluster-robust variance);
* **slices** — the contract's slice column (``features.SEGMENT``), for the per-slice error and
  quality checks;
* **baseline** — the champion's rows *before* the canary started, split by the very rule the
  canary used (``salted(hash, canary_salt(version)) < weight``), remove the chance difference
  between the two customer sets (difference in differences). The weight of each stratum is read
  off the rows themselves: the canary's largest salted point and the champion's smallest one
  above it bracket it.

Everything here is a pure function of data frames, so the same code is tested on a hand-made
frame, on a real SQLite log, and runs in the controller.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from interfaces.routing import canary_salt, salted
from monitoring.evidence import (
    TAIL_QUANTILE,
    CanaryEvidence,
    MeanEvidence,
    ScoreEvidence,
    stratum_evidence,
)
from monitoring.sources import SCORE_EDGES

__all__ = [
    "BaselineRows",
    "LogEvidenceParams",
    "UnusableLog",
    "build_evidence",
    "prepare_baseline",
    "salted_points",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Scores are clipped before log loss: a confident wrong answer costs a lot, not infinity.
_LOG_LOSS_EPS = 1e-6
# Weights people set are round numbers; a threshold is snapped to this grid when the rows allow.
_WEIGHT_GRID = 0.01


class UnusableLog(ValueError):  # noqa: N818 - reads as a state, like SourceUnavailable
    """The log cannot say what the judge needs (rows from an older service, say); use counters."""


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


def salted_points(hashes: Sequence[float] | FloatArray, version: int) -> FloatArray:
    """The points the split of the canary of ``version`` compares, from logged hashes."""
    salt = canary_salt(version)
    return np.fromiter((salted(float(h), salt) for h in hashes), dtype=np.float64)


@dataclass(frozen=True)
class _Rows:
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
        return ~self.failed & np.isfinite(self.latency)


def _period_rows(
    frame: pd.DataFrame,
    canary: npt.NDArray[np.bool_],
    stratum: IntArray,
    params: LogEvidenceParams,
    slices: Sequence[str],
) -> _Rows:
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
    return _Rows(
        canary=canary,
        stratum=stratum,
        cluster=cluster.astype(np.int64),
        failed=failed,
        log_latency=log_latency,
        latency=latency,
        slice_index=slice_index,
        probability=frame["probability"].to_numpy(dtype=np.float64),
    )


def _cells(
    rows: _Rows, keep: npt.NDArray[np.bool_], values: FloatArray, strata: int, clusters: int
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


def _strata_evidence(
    rows: _Rows,
    keep: npt.NDArray[np.bool_],
    values: FloatArray,
    strata: int,
    clusters: int,
    baseline: Callable[[int], MeanEvidence | None],
) -> MeanEvidence:
    """Sum over strata of each stratum's evidence, each less its baseline if it has one."""
    n, s, q = _cells(rows, keep, values, strata, clusters)
    total = MeanEvidence.empty(1, clusters)
    for k in range(strata):
        if not (n[k, 0].any() or n[k, 1].any()):
            continue
        part = stratum_evidence(n[k][None], s[k][None], q[k].sum(axis=-1)[None])
        base = baseline(k)
        total += part if base is None else part.with_baseline(base)
    return total


@dataclass(frozen=True)
class _Baseline:
    """The champion's rows before the canary, with their salted points."""

    rows: _Rows
    points: FloatArray


def _weights(
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


def build_evidence(
    rows: pd.DataFrame,
    labels: pd.DataFrame,
    baseline: pd.DataFrame | BaselineRows | None,
    *,
    champion: int,
    canary: int,
    started: float,
    now: float,
    params: LogEvidenceParams,
    tail_threshold_s: float | None = None,
) -> CanaryEvidence:
    """The judge's evidence for canary ``canary`` against ``champion`` over ``[started, now)``.

    Args:
        rows: :meth:`serving.inference_log.InferenceLogReader.judge_rows` over the canary's
            life (other versions and other periods are ignored).
        labels: :meth:`~serving.inference_log.InferenceLogReader.judge_labels` over the same.
        baseline: ``judge_rows`` of a period before ``started`` (the champion's rows are used),
            best prepared once per canary with :func:`prepare_baseline`; or None.
        champion: The champion's version.
        canary: The canary's version.
        started: Unix time the canary started taking traffic.
        now: Unix time of the look; labels that arrived later are not seen.
        params: How to cut the log.
        tail_threshold_s: The latency whose exceedances the tail signal counts, when the
            baseline is too thin to give the champion's tail quantile (e.g. from histogram
            buckets); the baseline's quantile is preferred.

    Raises:
        UnusableLog: Too many rows of the canary's life lack a routing hash or a latency.
    """
    mine = _of_versions(rows, champion, canary)
    mine = mine[(mine["ts"] >= started) & (mine["ts"] < now)]
    unrecorded = mine["routing_hash"].isna() | (~mine["failed"] & mine["latency_s"].isna())
    if len(mine) and float(unrecorded.mean()) > params.max_unrecorded_share:
        raise UnusableLog(
            f"{int(unrecorded.sum())} of {len(mine)} logged rows of the canary's life lack a "
            "routing hash or a latency (written by an older service)"
        )
    mine = mine[~unrecorded]
    slices = sorted({str(v) for v in mine["slice"].dropna()})
    strata = max(1, math.ceil((now - started) / params.window_seconds))
    stratum = np.clip(
        ((mine["ts"].to_numpy() - started) // params.window_seconds).astype(np.int64),
        0,
        strata - 1,
    )
    is_canary = (mine["variant"] == "canary").to_numpy()
    period = _period_rows(mine, is_canary, stratum, params, slices)
    base = _baseline(baseline, champion, canary, params, slices, len(mine), is_canary)
    threshold = tail_threshold_s
    if base is not None:
        champion_latency = base.rows.latency[base.rows.ok]
        if champion_latency.size * (1.0 - TAIL_QUANTILE) >= 10:
            threshold = float(np.quantile(champion_latency, TAIL_QUANTILE))
    points = salted_points(mine["routing_hash"].to_numpy(dtype=np.float64), canary)
    weights = _weights(
        points[is_canary], points[~is_canary], stratum[is_canary], stratum[~is_canary], strata
    )
    clusters = params.clusters
    split_cache: dict[float, dict[str, MeanEvidence]] = {}

    def baseline_of(signal: str) -> Callable[[int], MeanEvidence | None]:
        def lookup(k: int) -> MeanEvidence | None:
            weight = weights[k]
            if base is None or weight is None:
                return None
            if weight not in split_cache:
                split_cache[weight] = _split(base, weight, params, slices, threshold)
            return split_cache[weight].get(signal)

        return lookup

    ok = period.ok
    everything = np.ones_like(period.failed)
    errors = _strata_evidence(
        period, everything, period.failed.astype(np.float64), strata, clusters,
        baseline_of("errors"),
    )  # fmt: skip
    latency = _strata_evidence(
        period, ok, period.log_latency, strata, clusters, baseline_of("latency")
    )
    tail = None
    if threshold is not None:
        slow = (period.latency > threshold).astype(np.float64)
        tail = _strata_evidence(period, ok, slow, strata, clusters, baseline_of("tail"))
    failed = period.failed.astype(np.float64)
    slice_errors = {
        name: _strata_evidence(
            period, period.slice_index == i, failed, strata, clusters, baseline_of(f"slice:{name}")
        )
        for i, name in enumerate(slices)
    }
    quality, slice_quality = _quality(labels, champion, canary, started, now, params, slices)
    return CanaryEvidence(
        errors=errors,
        latency=latency,
        latency_tail=tail,
        quality=quality,
        scores=_scores(period, strata, params, latency),
        slice_errors=slice_errors,
        slice_quality=slice_quality,
        tail_threshold_s=threshold,
    )


def _of_versions(frame: pd.DataFrame, champion: int, canary: int) -> pd.DataFrame:
    """Rows the champion served as champion and the canary as canary."""
    variant, version = frame["variant"], frame["model_version"]
    keep = ((variant == "champion") & (version == champion)) | (
        (variant == "canary") & (version == canary)
    )
    return frame[keep]


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


def _baseline(
    baseline: pd.DataFrame | BaselineRows | None,
    champion: int,
    canary: int,
    params: LogEvidenceParams,
    slices: Sequence[str],
    period_rows: int,
    is_canary: npt.NDArray[np.bool_],
) -> _Baseline | None:
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
    champion_rows = period_rows - canary_rows
    needed = params.baseline_ratio * max(canary_rows, champion_rows)
    if len(rows) < max(params.min_baseline_rows, needed):
        return None
    stratum = np.zeros(len(rows), dtype=np.int64)
    return _Baseline(
        rows=_period_rows(rows, np.zeros(len(rows), dtype=bool), stratum, params, slices),
        points=baseline.points,
    )


def _split(
    base: _Baseline,
    weight: float,
    params: LogEvidenceParams,
    slices: Sequence[str],
    threshold: float | None,
) -> dict[str, MeanEvidence]:
    """The baseline period split by the canary's rule at ``weight``, per signal."""
    would_be = base.points < weight
    rows = _Rows(
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
        n, s, q = _cells(rows, keep, values, 1, clusters)
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


def _log_loss(probability: FloatArray, label: FloatArray) -> FloatArray:
    p = np.clip(probability, _LOG_LOSS_EPS, 1.0 - _LOG_LOSS_EPS)
    return np.asarray(-(label * np.log(p) + (1.0 - label) * np.log1p(-p)), dtype=np.float64)


def _quality(
    labels: pd.DataFrame,
    champion: int,
    canary: int,
    started: float,
    now: float,
    params: LogEvidenceParams,
    slices: Sequence[str],
) -> tuple[MeanEvidence | None, dict[str, MeanEvidence]]:
    """Log loss of labelled predictions, one stratum per (prediction window, arrival window)."""
    mine = _of_versions(labels, champion, canary)
    mine = mine[
        (mine["ts"] >= started)
        & (mine["ts"] < now)
        & (mine["received_ts"] < now)
        & mine["routing_hash"].notna()
    ]
    if not len(mine):
        return None, {}
    w = params.window_seconds
    made = ((mine["ts"].to_numpy() - started) // w).astype(np.int64)
    arrived = ((mine["received_ts"].to_numpy() - started) // w).astype(np.int64)
    arrived = np.maximum(arrived, made)
    pairs = sorted(set(zip(made.tolist(), arrived.tolist(), strict=True)))
    key = {pair: i for i, pair in enumerate(pairs)}
    stratum = np.fromiter(
        (key[(m, a)] for m, a in zip(made.tolist(), arrived.tolist(), strict=True)),
        dtype=np.int64,
        count=len(mine),
    )
    frame = mine.assign(failed=False, latency_s=np.nan)
    rows = _period_rows(frame, (mine["variant"] == "canary").to_numpy(), stratum, params, slices)
    loss = _log_loss(rows.probability, mine["label"].to_numpy(dtype=np.float64))
    everything = np.ones_like(rows.failed)

    def none(_k: int) -> MeanEvidence | None:
        return None

    quality = _strata_evidence(rows, everything, loss, len(pairs), params.clusters, none)
    per_slice = {
        name: _strata_evidence(rows, rows.slice_index == i, loss, len(pairs), params.clusters, none)
        for i, name in enumerate(slices)
    }
    return quality, per_slice


def _scores(
    rows: _Rows, strata: int, params: LogEvidenceParams, latency: MeanEvidence
) -> ScoreEvidence | None:
    """Score histograms per stratum, the champion's reweighted to the canary's time profile."""
    scored = ~rows.failed & np.isfinite(rows.probability)
    if not scored.any():
        return None
    edges = np.asarray(params.score_edges, dtype=np.float64)
    bins = len(edges) - 1
    clipped = np.clip(rows.probability[scored], edges[0], edges[-1])
    bin_index = np.clip(np.searchsorted(edges, clipped, side="right") - 1, 0, bins - 1)
    index = (rows.stratum[scored] * 2 + rows.canary[scored]) * bins + bin_index
    counts = np.bincount(index, minlength=strata * 2 * bins).reshape(strata, 2, bins)
    # Clustered scores are noisier than independent ones; the latency signal's design effect
    # (a per-request quantity of the same customers) is the inflation applied.
    design = latency.design_effect()
    total: ScoreEvidence | None = None
    for k in range(strata):
        part = ScoreEvidence.stratum(counts[k, 1][None], counts[k, 0][None], design)
        total = part if total is None else total + part
    return total
