"""One scenario's simulated world: its clients, and one window of traffic at a time.

:class:`World` draws the traffic :mod:`benchmarks.judge.scenarios` describes. Our judge sees
what the controller reads from the inference log: per (stratum, variant, routing-key group,
slice) counts and sums, added window by window into the judge's evidence
(:mod:`benchmarks.judge.world_evidence`, the same arithmetic the controller does). The peers see
per-step counters (:mod:`benchmarks.judge.peer_steps`). With ``baseline_windows`` the world also
draws the champion's traffic before the canary, which our judge uses as its baseline
(difference in differences).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import special

from benchmarks.judge.draws import (
    chi2_sum,
    multinomial,
    score_bucket_probs,
    separation,
    tail_threshold,
)
from benchmarks.judge.peer_steps import DrawnWindow, peer_steps
from benchmarks.judge.scenarios import DELAYED_LOG_SD, Scenario, SimulationParams
from benchmarks.judge.window_data import StepCounters, WindowData, concat_steps
from benchmarks.judge.world_evidence import Baseline, Cells, EvidenceSoFar
from monitoring.judge.evidence import TAIL_QUANTILE, MeanEvidence, stratum_evidence
from monitoring.judge.psi import ScoreEvidence

__all__ = ["World"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class World:
    """One scenario's simulated world: its clients, and one window of traffic at a time."""

    def __init__(
        self, params: SimulationParams, scenario: Scenario, rng: np.random.Generator
    ) -> None:
        self.params, self.scenario, self.rng = params, scenario, rng
        t = scenario.traffic
        self.traffic = t
        runs, clients = params.runs, t.clients
        self.shares = t.shares()
        self.hash = rng.random((runs, clients))
        self.group = rng.integers(0, params.clusters, (runs, clients))
        self.cells = Cells(runs, params.clusters, self.group)
        self.error_offset = rng.normal(0.0, t.client_error_sd, (runs, clients))
        self.latency_offset = rng.normal(0.0, t.client_latency_sd, (runs, clients))
        base_log = math.log(t.latency_median_s) + self.latency_offset
        self.tau = tail_threshold(self.shares, base_log, t.latency_log_sd, TAIL_QUANTILE)
        self.mu = {
            "champion": separation(t.champion_auc),
            "canary": separation(t.champion_auc + scenario.auc_change),
            "canary_slice": separation(
                t.champion_auc + scenario.auc_change + scenario.slice_auc_change
            ),
        }
        self.slices = len(t.slices)
        self.slice_hit = scenario.slice_index % self.slices if scenario.slice_index >= 0 else -1
        self.evidence = EvidenceSoFar.empty(runs, params.clusters, self.slices)
        self.pending: dict[int, tuple[FloatArray, FloatArray, FloatArray]] = {}
        self.canary_requests = np.zeros(runs)
        self.history: list[tuple[StepCounters, StepCounters]] = []
        self.baselines: dict[float, Baseline] = {}
        if params.baseline_windows > 0:
            self._draw_baseline(params.baseline_windows)

    def _draw_baseline(self, windows: int) -> None:
        """The champion's traffic before the canary, split by every weight the canary will use."""
        rng, t = self.rng, self.traffic
        n_client = rng.multinomial(
            t.requests_per_window * windows, self.shares, size=self.params.runs
        )
        n_slice = rng.multinomial(n_client, t.slices)
        rate = self._champion_error_rate(np.ones(self.params.runs), 0)[:, :, None]
        e_slice = rng.binomial(n_slice, np.broadcast_to(rate, n_slice.shape))
        log_median = math.log(t.latency_median_s) + self.latency_offset
        sums, squares, slow = self._latency_draws(n_client, log_median)
        for weight in sorted(set(t.canary_weight)):
            split = self.hash < weight
            n = self.cells(n_client, split)
            e = self.cells(e_slice.sum(axis=2), split)
            x = self.cells(slow, split)
            self.baselines[weight] = Baseline(
                errors=stratum_evidence(n, e, e.sum(axis=2)),
                latency=stratum_evidence(
                    n, self.cells(sums, split), self.cells(squares, split).sum(axis=2)
                ),
                tail=stratum_evidence(n, x, x.sum(axis=2)),
                slices=[
                    stratum_evidence(
                        self.cells(n_slice[:, :, i], split),
                        self.cells(e_slice[:, :, i], split),
                        self.cells(e_slice[:, :, i], split).sum(axis=2),
                    )
                    for i in range(self.slices)
                ],
            )

    def _champion_error_rate(self, shock: FloatArray, k: int) -> FloatArray:
        """Each client's error rate on the champion during window ``k``, shape (runs, clients)."""
        t, s = self.traffic, self.scenario
        if t.base_error_rate > 0:
            base = special.expit(special.logit(t.base_error_rate) + self.error_offset)
        else:
            base = np.zeros_like(self.error_offset)
        return np.asarray(
            np.clip(base * shock[:, None] * math.exp(s.drift_error * k), 0.0, 1.0),
            dtype=np.float64,
        )

    def _latency_draws(
        self, n_client: IntArray, log_median: FloatArray, delayed: IntArray | None = None
    ) -> tuple[FloatArray, FloatArray, IntArray]:
        """Per client: sum and sum of squares of log latency, and requests above the tail."""
        rng, sd, s = self.rng, self.traffic.latency_log_sd, self.scenario
        late_n = np.zeros_like(n_client) if delayed is None else delayed
        normal = (n_client - late_n).astype(np.float64)
        late = late_n.astype(np.float64)
        log_delayed = np.log(np.exp(log_median) + s.tail_delay_s)
        sum_normal = normal * log_median + sd * np.sqrt(normal) * rng.standard_normal(normal.shape)
        sum_late = late * log_delayed + DELAYED_LOG_SD * np.sqrt(late) * rng.standard_normal(
            late.shape
        )
        squares = (
            sd * sd * chi2_sum(rng, normal - 1.0)
            + sum_normal**2 / np.maximum(normal, 1.0)
            + DELAYED_LOG_SD**2 * chi2_sum(rng, late - 1.0)
            + sum_late**2 / np.maximum(late, 1.0)
        )
        log_tau = np.log(self.tau)[:, None]
        slow = rng.binomial(n_client - late_n, special.ndtr((log_median - log_tau) / sd))
        slow += rng.binomial(late_n, special.ndtr((log_delayed - log_tau) / DELAYED_LOG_SD))
        return sum_normal + sum_late, squares, slow

    def _adjust(self, evidence: MeanEvidence, baseline: MeanEvidence | None) -> MeanEvidence:
        return evidence if baseline is None else evidence.with_baseline(baseline)

    def window(self, k: int, *, peers: bool) -> WindowData:
        """Simulate window ``k`` and return what every judge may read after it."""
        rng, t, s, p = self.rng, self.traffic, self.scenario, self.params
        weight = t.weight(k)
        canary = self.hash < weight  # (runs, clients), sticky
        n_client = rng.multinomial(t.requests_per_window, self.shares, size=p.runs)
        n_slice = rng.multinomial(n_client, t.slices)  # (runs, clients, slices)
        base = self.baselines.get(weight)
        errors, rate = self._errors(k, canary, n_client, n_slice, base)
        delayed, log_median, log_delayed = self._latency(k, canary, n_client, base)
        # Scores and delayed labels.
        shift = s.drift_inputs * k
        self._scores(n_slice, canary, shift)
        self._labels(k, n_slice, canary, shift)

        canary_now = (n_client * canary).sum(axis=1).astype(np.float64)
        canary_errors = (errors * canary).sum(axis=1).astype(np.float64)
        self.canary_requests += canary_now
        steps: tuple[StepCounters, StepCounters] | None = None
        if peers:
            expected = (n_slice * rate).sum(axis=2)  # expected errors per client
            drawn = DrawnWindow(
                weight, canary, n_client, delayed, expected, log_median, log_delayed
            )
            steps = peer_steps(rng, p, t, drawn)
            self.history.append(steps)
            self.history = self.history[-p.kayenta_lookback_windows :]
        return WindowData(
            window=k,
            evidence=self.evidence.frozen(None),
            canary_requests=self.canary_requests.copy(),
            canary_window_requests=canary_now,
            canary_window_errors=canary_errors,
            last_canary_steps=None if steps is None else steps[0],
            canary_steps=None if steps is None else concat_steps([h[0] for h in self.history]),
            baseline_steps=None if steps is None else concat_steps([h[1] for h in self.history]),
            latency_buckets=p.latency_buckets,
        )

    def _errors(
        self,
        k: int,
        canary: BoolArray,
        n_client: IntArray,
        n_slice: IntArray,
        base: Baseline | None,
    ) -> tuple[IntArray, FloatArray]:
        """Draw the window's errors into the evidence; return errors per client and the rates.

        The champion's rate per client, the canary's change on top.
        """
        rng, s = self.rng, self.scenario
        shock = np.exp(rng.normal(0.0, s.load_error_sd, self.params.runs) - s.load_error_sd**2 / 2)
        rate = self._champion_error_rate(shock, k)[:, :, None]
        added = np.zeros(self.slices)
        added += s.error_rate_increase
        if self.slice_hit >= 0:
            added[self.slice_hit] += s.slice_error_increase
        rate = np.clip(rate + canary[:, :, None] * added, 0.0, 1.0)
        e_slice = rng.binomial(n_slice, rate)
        errors = e_slice.sum(axis=2)
        for i in range(self.slices):
            n_i = self.cells(n_slice[:, :, i], canary)
            e_i = self.cells(e_slice[:, :, i], canary)
            self.evidence.slice_errors[i] += self._adjust(
                stratum_evidence(n_i, e_i, e_i.sum(axis=2)),
                None if base is None else base.slices[i],
            )
        n_cells = self.cells(n_client, canary)
        e_cells = self.cells(errors, canary)
        self.evidence.errors += self._adjust(
            stratum_evidence(n_cells, e_cells, e_cells.sum(axis=2)),
            None if base is None else base.errors,
        )
        return errors, rate

    def _latency(
        self, k: int, canary: BoolArray, n_client: IntArray, base: Baseline | None
    ) -> tuple[IntArray, FloatArray, FloatArray]:
        """Draw the window's latencies into the evidence; return what the peers' counters need.

        Log-normal per client; a share of canary requests delayed by a fixed amount (the tail).
        """
        rng, t, s = self.rng, self.traffic, self.scenario
        log_median = (
            math.log(t.latency_median_s)
            + self.latency_offset
            + rng.normal(0.0, s.load_latency_sd, self.params.runs)[:, None]
            + s.drift_latency * k
            + canary * math.log(s.latency_ratio)
        )
        delayed = rng.binomial(n_client, canary * s.tail_share)
        log_delayed = np.log(np.exp(log_median) + s.tail_delay_s)
        sums, squares, slow = self._latency_draws(n_client, log_median, delayed)
        n_cells = self.cells(n_client, canary)
        self.evidence.latency += self._adjust(
            stratum_evidence(
                n_cells, self.cells(sums, canary), self.cells(squares, canary).sum(axis=2)
            ),
            None if base is None else base.latency,
        )
        x_cells = self.cells(slow, canary)
        self.evidence.tail += self._adjust(
            stratum_evidence(n_cells, x_cells, x_cells.sum(axis=2)),
            None if base is None else base.tail,
        )
        return delayed, log_median, log_delayed

    def _scores(self, n_slice: IntArray, canary: npt.NDArray[np.bool_], shift: float) -> None:
        rng, t, p = self.rng, self.traffic, self.params

        def probs(mu: float) -> FloatArray:
            return score_bucket_probs(p.score_buckets, mu, t.default_rate, shift)

        by_variant = [(n_slice * (canary == v)[:, :, None]).sum(axis=1) for v in (False, True)]
        hit = self.slice_hit
        champion = multinomial(rng, by_variant[0].sum(axis=1), probs(self.mu["champion"]))
        if hit >= 0:
            in_hit = by_variant[1][:, hit]
            rest = by_variant[1].sum(axis=1) - in_hit
            canary_counts = multinomial(rng, rest, probs(self.mu["canary"])) + multinomial(
                rng, in_hit, probs(self.mu["canary_slice"])
            )
        else:
            canary_counts = multinomial(rng, by_variant[1].sum(axis=1), probs(self.mu["canary"]))
        stratum = ScoreEvidence.stratum(canary_counts, champion)
        self.evidence.scores = (
            stratum if self.evidence.scores is None else self.evidence.scores + stratum
        )

    def _labels(
        self, k: int, n_slice: IntArray, canary: npt.NDArray[np.bool_], shift: float
    ) -> None:
        """Draw this window's labelled rows and their losses; add the labels that arrive now."""
        rng, t, p = self.rng, self.traffic, self.params
        runs, clients, slices = n_slice.shape
        groups, lags = p.clusters, t.label_lags
        labelled = rng.binomial(n_slice, t.label_fraction)
        cell = np.repeat(np.arange(labelled.size), labelled.ravel())
        run, client, slice_ = cell // (clients * slices), (cell // slices) % clients, cell % slices
        variant = canary[run, client].astype(np.int64)
        mu_table = np.full((2, slices), self.mu["champion"])
        mu_table[1, :] = self.mu["canary"]
        if self.slice_hit >= 0:
            mu_table[1, self.slice_hit] = self.mu["canary_slice"]
        mu = mu_table[variant, slice_]
        c = float(special.logit(t.default_rate))
        positive = rng.random(cell.size) < special.expit(c + shift)
        logit = c + np.where(positive, 0.5, -0.5) * mu * mu + mu * rng.standard_normal(cell.size)
        signed = np.where(positive, -logit, logit)
        loss = np.maximum(signed, 0.0) + np.log1p(np.exp(-np.abs(signed)))
        lag = rng.integers(0, len(lags), cell.size)
        index = (
            ((lag * runs + run) * 2 + variant) * groups + self.group[run, client]
        ) * slices + slice_
        size = len(lags) * runs * 2 * groups * slices
        shape = (len(lags), runs, 2, groups, slices)
        count = np.bincount(index, minlength=size).reshape(shape).astype(np.float64)
        total = np.bincount(index, weights=loss, minlength=size).reshape(shape)
        squares = np.bincount(index, weights=loss * loss, minlength=size).reshape(shape)
        for i, delay in enumerate(lags):
            arrival = k + delay
            parts = (count[i], total[i], squares[i])
            if arrival in self.pending:
                old = self.pending[arrival]
                parts = (old[0] + parts[0], old[1] + parts[1], old[2] + parts[2])
            self.pending[arrival] = parts
        arrived = self.pending.pop(k, None)
        if arrived is None:
            return
        n, total_loss, sq = arrived
        # One stratum per (window of prediction, window of arrival): labels of one prediction
        # window arriving over several windows each compare like with like.
        self.evidence.quality += stratum_evidence(
            n.sum(axis=3), total_loss.sum(axis=3), sq.sum(axis=(2, 3))
        )
        for i in range(slices):
            self.evidence.slice_quality[i] += stratum_evidence(
                n[..., i], total_loss[..., i], sq[..., i].sum(axis=2)
            )
