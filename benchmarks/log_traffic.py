"""Synthetic inference-log rows, as ``InferenceLogReader.judge_rows`` returns them.

Traffic from a fixed set of customers, each with its own error rate and latency (a realistic B2B
shape: a few heavy customers, many light ones), routed by the service's own rule
(:func:`interfaces.routing.variant_at` on the customer's hash, salted by the canary's version), so
the canary keeps the same customers from window to window. A test sets what differs between
the variants; everything else is shared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from features import FEATURE_NAMES, SEGMENT
from interfaces.inference_log import FailedRecord, InferenceRecord
from interfaces.routing import CANARY, canary_salt, key_hash, variant_at

SEGMENTS = ("mass", "affluent", "small_business")
SEGMENT_SHARES = (0.6, 0.3, 0.1)


@dataclass(frozen=True)
class Traffic:
    """The shape of the traffic and what the canary changes.

    Attributes:
        customers: Distinct routing keys.
        rows_per_window: Rows logged per window (both variants).
        window_seconds: Length of a window.
        error_rate: Typical per-row failure rate of the champion.
        customer_error_sd: Spread of customers' error rates (logit scale).
        latency_median_s: Typical latency.
        customer_latency_sd: Spread of customers' median latencies (log scale).
        latency_sd: Spread of one customer's latencies (log scale).
        canary_error: Added to the canary's failure rate.
        canary_slice_error: ``(segment, added rate)``: added in that segment only.
        drift_error: Added to every variant's failure rate per window (shared drift).
        weight: The canary's weight in window ``k``.
    """

    customers: int = 300
    rows_per_window: int = 1500
    window_seconds: float = 60.0
    error_rate: float = 0.01
    customer_error_sd: float = 1.0
    latency_median_s: float = 0.05
    customer_latency_sd: float = 0.4
    latency_sd: float = 0.3
    canary_error: float = 0.0
    canary_slice_error: tuple[str, float] | None = None
    drift_error: float = 0.0
    weight: Callable[[int], float] = lambda _k: 0.2


class World:
    """One set of customers and the rows they send."""

    def __init__(self, traffic: Traffic, seed: int, canary_version: int = 2) -> None:
        self.traffic = traffic
        self.rng = np.random.default_rng(seed)
        rng, n = self.rng, traffic.customers
        self.keys = [f"cust-{seed}-{i}" for i in range(n)]
        self.hash = np.array([key_hash(k) for k in self.keys])
        self.share = rng.pareto(1.5, n) + 1.0
        self.share /= self.share.sum()
        self.segment = rng.choice(len(SEGMENTS), n, p=SEGMENT_SHARES)
        self.error_logit = special.logit(traffic.error_rate) + rng.normal(
            0, traffic.customer_error_sd, n
        )
        self.log_latency = np.log(traffic.latency_median_s) + rng.normal(
            0, traffic.customer_latency_sd, n
        )
        self.salt = canary_salt(canary_version)

    def rows(self, start: float, windows: int, *, canary: bool = True) -> pd.DataFrame:
        """``windows`` windows of rows from ``start``; ``canary=False``: all to the champion."""
        t, rng = self.traffic, self.rng
        frames = []
        for k in range(windows):
            weight = t.weight(k) if canary else 0.0
            on_canary = np.array([variant_at(h, weight, self.salt) == CANARY for h in self.hash])
            who = rng.choice(t.customers, t.rows_per_window, p=self.share)
            to_canary = on_canary[who]
            rate = special.expit(self.error_logit[who]) + t.drift_error * k
            rate = rate + to_canary * t.canary_error
            if t.canary_slice_error is not None:
                name, added = t.canary_slice_error
                rate = rate + to_canary * (self.segment[who] == SEGMENTS.index(name)) * added
            failed = rng.random(t.rows_per_window) < np.clip(rate, 0.0, 1.0)
            latency = np.exp(self.log_latency[who] + rng.normal(0, t.latency_sd, who.size))
            frames.append(
                pd.DataFrame(
                    {
                        "ts": start + (k + rng.random(who.size)) * t.window_seconds,
                        "variant": np.where(to_canary, "canary", "champion"),
                        "model_version": np.where(to_canary, 2, 1),
                        "routing_hash": self.hash[who],
                        "latency_s": latency,
                        "failed": failed,
                        "slice": np.asarray(SEGMENTS)[self.segment[who]],
                        "probability": np.where(failed, np.nan, rng.beta(2, 5, who.size)),
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)


def as_records(frame: pd.DataFrame, features: list[object]) -> list[InferenceRecord | FailedRecord]:
    """The rows as the service logs them (``features``: a contract row; its slice is replaced)."""
    records: list[InferenceRecord | FailedRecord] = []
    at = None if SEGMENT is None else FEATURE_NAMES.index(SEGMENT)
    for i, r in enumerate(frame.itertuples(index=False)):
        row = features if at is None else [*features[:at], r.slice, *features[at + 1 :]]
        if r.failed:
            records.append(
                FailedRecord(
                    r.ts,
                    f"req-{i}",
                    0,
                    r.variant,
                    int(r.model_version),
                    r.routing_hash,
                    r.latency_s,
                    r.slice,
                )
            )
        else:
            records.append(
                InferenceRecord(
                    r.ts,
                    f"req-{i}",
                    0,
                    r.variant,
                    int(r.model_version),
                    r.probability,
                    int(r.probability >= 0.5),
                    row,
                    r.routing_hash,
                    r.latency_s,
                )
            )
    return records
