"""The judge's evidence from inference-log rows: strata, clusters, slices, baseline, failures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.log_traffic import Traffic, World
from monitoring.judge import CanaryJudge, SignalName, Verdict
from monitoring.judge.counters import VariantCounts, build_observation
from monitoring.judge.evidence import TAIL_QUANTILE
from monitoring.judge.log_evidence import LogEvidenceParams, UnusableLog, build_evidence
from monitoring.judge.observation import observation_evidence

pytestmark = pytest.mark.unit

START = 1_800_000_000.0
WINDOW = 60.0
PARAMS = LogEvidenceParams(window_seconds=WINDOW)
NO_LABELS = pd.DataFrame(
    {c: [] for c in ("ts", "variant", "model_version", "routing_hash", "slice", "probability",
                     "label", "received_ts")}
)  # fmt: skip


def verdicts(world: World, windows: int, *, baseline_windows: int = 0) -> list[Verdict]:
    """The judge's verdict after each window of one canary's life."""
    baseline = None
    if baseline_windows:
        baseline = world.rows(START - baseline_windows * WINDOW, baseline_windows, canary=False)
    rows = world.rows(START, windows)
    judge = CanaryJudge()
    out = []
    for k in range(1, windows + 1):
        evidence = build_evidence(
            rows, NO_LABELS, baseline, champion=1, canary=2, started=START,
            now=START + k * WINDOW, params=PARAMS,
        )  # fmt: skip
        verdict = judge.evaluate(evidence, window=k).verdict
        out.append(verdict)
        if verdict is not Verdict.CONTINUE:
            break
    return out


def test_clustered_customers_widen_the_error_bound_beyond_independent_requests() -> None:
    """A few hundred heterogeneous customers: the cluster-robust variance exceeds the iid one."""
    world = World(Traffic(customer_error_sd=1.2, customer_latency_sd=0.6), seed=1)
    evidence = build_evidence(
        world.rows(START, 10), NO_LABELS, None, champion=1, canary=2, started=START,
        now=START + 10 * WINDOW, params=PARAMS,
    )  # fmt: skip
    assert evidence.errors.design_effect()[0] > 1.3
    assert evidence.latency is not None
    assert evidence.latency.design_effect()[0] > 3.0


def test_identical_variants_from_clustered_customers_are_not_rolled_back() -> None:
    """Clustered A/A: ten canaries of twenty windows each, none rolled back."""
    traffic = Traffic(customer_error_sd=1.2, customer_latency_sd=0.6)
    outcomes = [verdicts(World(traffic, seed=seed), 20)[-1] for seed in range(10)]
    assert Verdict.ROLLBACK not in outcomes, outcomes


def test_the_same_clustered_traffic_pooled_as_independent_requests_is_overconfident() -> None:
    """The counters' view (one stratum, iid) of the same rows gives a narrower latency bound."""
    world = World(Traffic(customer_error_sd=1.2, customer_latency_sd=0.6), seed=3)
    rows = world.rows(START, 10)
    evidence = build_evidence(
        rows, NO_LABELS, None, champion=1, canary=2, started=START,
        now=START + 10 * WINDOW, params=PARAMS,
    )  # fmt: skip
    assert evidence.latency is not None
    iid = evidence.latency.iid_variance[0] / evidence.latency.weight[0] ** 2
    assert evidence.latency.variance()[0] > 3 * iid


def test_a_canary_adding_three_points_of_errors_is_rolled_back() -> None:
    """+3 points of server errors on the canary's customers: rolled back within 20 windows."""
    history = verdicts(World(Traffic(canary_error=0.03), seed=4), 20)
    assert history[-1] is Verdict.ROLLBACK, history


def test_a_regression_in_one_thin_slice_is_rolled_back_on_that_slice() -> None:
    """+10 points of errors in the 10 % small-business slice only (about 45 of its customers)."""
    traffic = Traffic(
        canary_slice_error=("small_business", 0.10), rows_per_window=3000, customers=1500,
        weight=lambda _k: 0.3,
    )  # fmt: skip
    world = World(traffic, seed=5)
    rows = world.rows(START, 20)
    judge = CanaryJudge()
    for k in range(1, 21):
        evidence = build_evidence(
            rows, NO_LABELS, None, champion=1, canary=2, started=START,
            now=START + k * WINDOW, params=PARAMS,
        )  # fmt: skip
        result = judge.evaluate(evidence, window=k)
        if result.verdict is not Verdict.CONTINUE:
            break
    assert set(evidence.slice_errors) == {"mass", "affluent", "small_business"}
    assert result.verdict is Verdict.ROLLBACK, result.reason
    assert "slice" in result.reason


def test_a_shared_drift_during_a_ramp_cancels_within_windows() -> None:
    """A shared drift during a 5 → 20 → 50 % ramp cancels within windows.

    Errors rise for everyone over time: the pooled rates differ, the time-matched estimate
    stays within noise of zero.
    """
    ramp = Traffic(
        drift_error=0.004, customer_error_sd=0.0, customers=5000, rows_per_window=4000,
        weight=lambda k: 0.05 if k < 5 else 0.2 if k < 10 else 0.5,
    )  # fmt: skip
    rows = World(ramp, seed=6).rows(START, 15)
    evidence = build_evidence(
        rows, NO_LABELS, None, champion=1, canary=2, started=START,
        now=START + 15 * WINDOW, params=PARAMS,
    )  # fmt: skip
    pooled = rows.groupby("variant")["failed"].mean()
    sd = float(np.sqrt(evidence.errors.variance()[0]))
    assert pooled["canary"] - pooled["champion"] > 4 * sd
    assert abs(evidence.errors.estimate[0]) < 3 * sd


def test_a_baseline_split_by_the_canarys_rule_removes_the_customer_sets_difference() -> None:
    """Same customers before the canary: difference in differences shrinks the A/A offset."""
    traffic = Traffic(customer_latency_sd=0.8, customers=150)
    without, with_baseline = [], []
    for seed in range(8):
        world = World(traffic, seed=100 + seed)
        baseline = world.rows(START - 60 * WINDOW, 60, canary=False)
        rows = world.rows(START, 10)
        plain = build_evidence(
            rows, NO_LABELS, None, champion=1, canary=2, started=START,
            now=START + 10 * WINDOW, params=PARAMS,
        )  # fmt: skip
        adjusted = build_evidence(
            rows, NO_LABELS, baseline, champion=1, canary=2, started=START,
            now=START + 10 * WINDOW, params=PARAMS,
        )  # fmt: skip
        assert plain.latency is not None
        assert adjusted.latency is not None
        assert adjusted.latency.baseline_shift is not None
        without.append(abs(plain.latency.estimate[0]))
        with_baseline.append(abs(adjusted.latency.estimate[0]))
    assert np.mean(with_baseline) < 0.5 * np.mean(without), (with_baseline, without)


def test_the_tail_threshold_is_the_champions_quantile_before_the_canary() -> None:
    """With a baseline the tail signal counts exceedances of its champion p99."""
    world = World(Traffic(), seed=7)
    baseline = world.rows(START - 30 * WINDOW, 30, canary=False)
    evidence = build_evidence(
        world.rows(START, 3), NO_LABELS, baseline, champion=1, canary=2, started=START,
        now=START + 3 * WINDOW, params=PARAMS, tail_threshold_s=99.0,
    )  # fmt: skip
    ok = baseline[~baseline["failed"]]["latency_s"]
    assert evidence.tail_threshold_s == pytest.approx(float(np.quantile(ok, TAIL_QUANTILE)))
    assert evidence.latency_tail is not None


def test_rows_without_routing_data_make_the_log_unusable() -> None:
    """Rows an older service wrote (no hash, no latency) are not judged as if they were."""
    rows = World(Traffic(), seed=8).rows(START, 2)
    rows.loc[rows.index[:100], ["routing_hash", "latency_s"]] = np.nan
    with pytest.raises(UnusableLog, match="older service"):
        build_evidence(
            rows, NO_LABELS, None, champion=1, canary=2, started=START,
            now=START + 2 * WINDOW, params=PARAMS,
        )  # fmt: skip


def test_rows_of_other_versions_and_before_the_start_are_ignored() -> None:
    """A replica still serving an old champion, and rows before the canary, do not count."""
    rows = World(Traffic(), seed=9).rows(START, 2)
    stray = rows.head(500).assign(model_version=7, failed=True)
    early = rows.head(500).assign(ts=START - 10.0, failed=True)
    evidence = build_evidence(
        pd.concat([rows, stray, early]), NO_LABELS, None, champion=1, canary=2,
        started=START, now=START + 2 * WINDOW, params=PARAMS,
    )  # fmt: skip
    assert evidence.errors.count[0].sum() == len(rows)
    assert evidence.errors.total[0].sum() == rows["failed"].sum()


def test_one_stratum_of_independent_rows_matches_the_counters_view() -> None:
    """Each row its own customer, one window: the same numbers as cumulative counters give."""
    world = World(Traffic(customers=20_000, customer_error_sd=0.0, rows_per_window=4000), seed=10)
    rows = world.rows(START, 1)
    evidence = build_evidence(
        rows, NO_LABELS, None, champion=1, canary=2, started=START, now=START + WINDOW,
        params=LogEvidenceParams(window_seconds=WINDOW, clusters=1),
    )  # fmt: skip
    counts = rows.groupby("variant").agg(n=("failed", "size"), e=("failed", "sum"))
    empty = np.zeros(1)
    observation = build_observation(
        1,
        {
            "champion": VariantCounts(int(counts.n["champion"]), int(counts.e["champion"])),
            "canary": VariantCounts(int(counts.n["canary"]), int(counts.e["canary"])),
        },
        {"champion": empty, "canary": empty},
        {"champion": (empty, empty.astype(np.int64)), "canary": (empty, empty.astype(np.int64))},
    )
    counters = observation_evidence(observation)
    assert evidence.errors.estimate[0] == pytest.approx(counters.errors.estimate[0])
    assert evidence.errors.variance()[0] == pytest.approx(counters.errors.variance()[0])


def test_labels_are_compared_within_prediction_and_arrival_windows() -> None:
    """Only labels that arrived by the look count; the loss is compared by variant."""
    rows = World(Traffic(), seed=11).rows(START, 4)
    scored = rows[~rows["failed"]].head(2000)
    rng = np.random.default_rng(0)
    labels = scored.assign(
        label=(rng.random(len(scored)) < scored["probability"]).astype(int),
        received_ts=scored["ts"] + rng.uniform(0, 3 * WINDOW, len(scored)),
    )[list(NO_LABELS.columns)]
    now = START + 4 * WINDOW
    evidence = build_evidence(
        rows, labels, None, champion=1, canary=2, started=START, now=now, params=PARAMS,
    )  # fmt: skip
    assert evidence.quality is not None
    arrived = int((labels["received_ts"] < now).sum())
    assert evidence.quality.count[0].sum() == arrived
    assert set(evidence.slice_quality) == {"mass", "affluent", "small_business"}


def test_a_slice_served_by_a_handful_of_customers_is_not_judged() -> None:
    """Six customers on the canary in a slice compare those customers, not the models."""
    traffic = Traffic(customers=60, customer_error_sd=1.5)
    rows = World(traffic, seed=12).rows(START, 10)
    evidence = build_evidence(
        rows, NO_LABELS, None, champion=1, canary=2, started=START, now=START + 10 * WINDOW,
        params=PARAMS,
    )  # fmt: skip
    thin = evidence.slice_errors["small_business"]
    assert thin.variant_clusters[0, 1] < 20
    reading = CanaryJudge().evaluate(evidence, window=10).signal(SignalName.SLICE_ERROR_RATE)
    assert reading.decision.value in {"insufficient_data", "not_worse"}
