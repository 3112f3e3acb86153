"""The judge's evidence from the inference log: windows, routing-key groups, slices, a baseline.

Cumulative counters (Prometheus, ``/metrics``) can only say "so many requests, so many errors
since the canary started": one stratum of independent requests
(:func:`monitoring.judge.observation.observation_evidence`). The inference log keeps every row with
its time, its routing key's unsalted hash, its latency, its slice and whether the model failed
(``interfaces/inference_log.py``), which is what the judge's protections need
(``monitoring/judge/evidence.py``; ADR 0006):

* **strata** — one per judge window since the canary started, so a weight ramp under a
  platform-wide drift compares like with like; labels are stratified by the window of the
  prediction crossed with the window of the label's arrival;
* **clusters** — rows are grouped by their routing hash (``floor(hash * clusters)``), so a
  customer's correlated requests widen the bounds (cluster-robust variance);
* **slices** — the contract's slice column (``features.SEGMENT``), for the per-slice error and
  quality checks;
* **baseline** — the champion's rows *before* the canary started, split by the very rule the
  canary used, remove the chance difference between the two customer sets (difference in
  differences; ``monitoring/judge/baseline.py``).

Everything here is a pure function of data frames, so the same code is tested on a hand-made
frame, on a real SQLite log, and runs in the controller.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from monitoring.judge.baseline import (
    Baseline,
    BaselineRows,
    BaselineSplits,
    prepare_baseline,
    salted_points,
    stratum_weights,
    usable_baseline,
)
from monitoring.judge.evidence import TAIL_QUANTILE, CanaryEvidence, MeanEvidence
from monitoring.judge.log_rows import (
    LogEvidenceParams,
    LogRows,
    of_versions,
    period_rows,
    strata_evidence,
)
from monitoring.judge.psi import ScoreEvidence

__all__ = [
    "BaselineRows",
    "LogEvidenceParams",
    "UnusableLog",
    "build_evidence",
    "prepare_baseline",
    "salted_points",
]

FloatArray = npt.NDArray[np.float64]

# Scores are clipped before log loss: a confident wrong answer costs a lot, not infinity.
_LOG_LOSS_EPS = 1e-6


class UnusableLog(ValueError):  # noqa: N818 - reads as a state, like SourceUnavailable
    """The log cannot say what the judge needs (rows from an older service, say); use counters."""


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
        rows: :meth:`monitoring.sources.inference_log.InferenceLogReader.judge_rows` over the
            canary's life (other versions and other periods are ignored).
        labels: :meth:`~monitoring.sources.inference_log.InferenceLogReader.judge_labels` over
            the same.
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
    mine = _canary_life(rows, champion, canary, started, now, params)
    slices = sorted({str(v) for v in mine["slice"].dropna()})
    strata = max(1, math.ceil((now - started) / params.window_seconds))
    stratum = np.clip(
        ((mine["ts"].to_numpy() - started) // params.window_seconds).astype(np.int64),
        0,
        strata - 1,
    )
    is_canary = (mine["variant"] == "canary").to_numpy()
    period = period_rows(mine, is_canary, stratum, params, slices)
    base = usable_baseline(baseline, champion, canary, params, slices, len(mine), is_canary)
    threshold = _tail_threshold(base, tail_threshold_s)
    points = salted_points(mine["routing_hash"].to_numpy(dtype=np.float64), canary)
    weights = stratum_weights(
        points[is_canary], points[~is_canary], stratum[is_canary], stratum[~is_canary], strata
    )
    splits = BaselineSplits(base, weights, params, slices, threshold)
    errors, latency, tail, slice_errors = _row_signals(
        period, strata, params.clusters, slices, threshold, splits.of
    )
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


def _canary_life(
    rows: pd.DataFrame,
    champion: int,
    canary: int,
    started: float,
    now: float,
    params: LogEvidenceParams,
) -> pd.DataFrame:
    """The rows of the pair over ``[started, now)``, refusing a log an older service wrote."""
    mine = of_versions(rows, champion, canary)
    mine = mine[(mine["ts"] >= started) & (mine["ts"] < now)]
    unrecorded = mine["routing_hash"].isna() | (~mine["failed"] & mine["latency_s"].isna())
    if len(mine) and float(unrecorded.mean()) > params.max_unrecorded_share:
        raise UnusableLog(
            f"{int(unrecorded.sum())} of {len(mine)} logged rows of the canary's life lack a "
            "routing hash or a latency (written by an older service)"
        )
    return mine[~unrecorded]


def _tail_threshold(base: Baseline | None, fallback: float | None) -> float | None:
    """The champion's tail quantile before the canary, when the baseline is rich enough."""
    threshold = fallback
    if base is not None:
        champion_latency = base.rows.latency[base.rows.ok]
        if champion_latency.size * (1.0 - TAIL_QUANTILE) >= 10:
            threshold = float(np.quantile(champion_latency, TAIL_QUANTILE))
    return threshold


def _row_signals(
    period: LogRows,
    strata: int,
    clusters: int,
    slices: Sequence[str],
    threshold: float | None,
    baseline_of: Callable[[str], Callable[[int], MeanEvidence | None]],
) -> tuple[MeanEvidence, MeanEvidence, MeanEvidence | None, dict[str, MeanEvidence]]:
    """Errors, latency, its tail and per-slice errors of the logged rows, stratum by stratum."""
    ok = period.ok
    everything = np.ones_like(period.failed)
    errors = strata_evidence(
        period, everything, period.failed.astype(np.float64), strata, clusters,
        baseline_of("errors"),
    )  # fmt: skip
    latency = strata_evidence(
        period, ok, period.log_latency, strata, clusters, baseline_of("latency")
    )
    tail = None
    if threshold is not None:
        slow = (period.latency > threshold).astype(np.float64)
        tail = strata_evidence(period, ok, slow, strata, clusters, baseline_of("tail"))
    failed = period.failed.astype(np.float64)
    slice_errors = {
        name: strata_evidence(
            period, period.slice_index == i, failed, strata, clusters, baseline_of(f"slice:{name}")
        )
        for i, name in enumerate(slices)
    }
    return errors, latency, tail, slice_errors


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
    mine = of_versions(labels, champion, canary)
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
    rows = period_rows(frame, (mine["variant"] == "canary").to_numpy(), stratum, params, slices)
    loss = _log_loss(rows.probability, mine["label"].to_numpy(dtype=np.float64))
    everything = np.ones_like(rows.failed)

    def none(_k: int) -> MeanEvidence | None:
        return None

    quality = strata_evidence(rows, everything, loss, len(pairs), params.clusters, none)
    per_slice = {
        name: strata_evidence(rows, rows.slice_index == i, loss, len(pairs), params.clusters, none)
        for i, name in enumerate(slices)
    }
    return quality, per_slice


def _scores(
    rows: LogRows, strata: int, params: LogEvidenceParams, latency: MeanEvidence
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
