"""The peer judges behave as their documentation says."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest
from scipy import optimize, stats

from benchmarks.judge.argo import ArgoAnalysisTemplate, ArgoMetric, ArgoThresholdJudge
from benchmarks.judge.kayenta import KayentaConfig, KayentaMannWhitneyJudge, KayentaMetric
from benchmarks.judge.mann_whitney import mann_whitney_shift_interval
from benchmarks.judge.promql import histogram_quantile
from monitoring.judge import Verdict, VerdictCode

pytestmark = pytest.mark.unit


def _argo(failure_limit: int, count: int = 30, **metric: object) -> ArgoThresholdJudge:
    template = ArgoAnalysisTemplate(
        metrics=(
            ArgoMetric(
                name="error-rate",
                success_condition="result < 0.02",
                failure_limit=failure_limit,
                **metric,
            ),
        ),
        count=count,
    )
    return ArgoThresholdJudge(template)


@pytest.mark.parametrize("failure_limit", [0, 1, 3])
def test_argo_fails_on_exactly_failure_limit_plus_one_failed_measurements(
    failure_limit: int,
) -> None:
    """Argo fails when failed > failureLimit: the (failureLimit + 1)-th failure, not earlier."""
    judge = _argo(failure_limit)
    verdicts = []
    # Alternate passing and failing windows so failures are not consecutive.
    for value in [0.01, 0.03] * (failure_limit + 2):
        verdicts.append(judge.measure({"error-rate": value}).verdict)
    failures_seen = 0
    for index, value in enumerate([0.01, 0.03] * (failure_limit + 2)):
        failures_seen += value >= 0.02
        expected = Verdict.ROLLBACK if failures_seen > failure_limit else Verdict.CONTINUE
        assert verdicts[index] == expected, f"measurement {index + 1}"
    assert verdicts.count(Verdict.CONTINUE) == 2 * (failure_limit + 1) - 1


def test_argo_succeeds_when_count_is_reached_within_the_failure_limit() -> None:
    """After `count` measurements within failureLimit failures the analysis is Successful."""
    judge = _argo(1, count=4)
    verdicts = [judge.measure({"error-rate": v}).verdict for v in (0.01, 0.05, 0.01, 0.01)]
    assert verdicts == [Verdict.CONTINUE] * 3 + [Verdict.PROMOTE]


def test_argo_is_inconclusive_when_neither_condition_holds() -> None:
    """Both conditions set and neither true: Inconclusive, which pauses the rollout."""
    judge = _argo(3, failure_condition="result > 0.05")
    result = judge.measure({"error-rate": 0.03})
    assert result.verdict == Verdict.INCONCLUSIVE
    assert result.metrics[0].outcome == "Inconclusive"


def test_argo_finished_runs_keep_their_verdict() -> None:
    """A failed AnalysisRun takes no more measurements: later good windows don't revive it."""
    judge = ArgoThresholdJudge(
        ArgoAnalysisTemplate(
            metrics=(ArgoMetric(name="e", success_condition="result < 0.02"),), count=10
        ),
        batch_size=2,
    )
    first = judge.measure_batch({"e": np.array([0.05, 0.01])})
    second = judge.measure_batch({"e": np.array([0.01, 0.01])})
    assert list(first) == [VerdictCode.ROLLBACK, VerdictCode.CONTINUE]
    assert list(second) == [VerdictCode.ROLLBACK, VerdictCode.CONTINUE]


def test_argo_condition_must_be_a_comparison_of_result() -> None:
    """An unsupported condition names the form it should take."""
    with pytest.raises(pydantic.ValidationError, match="result <op> <number>"):
        ArgoMetric(name="e", success_condition="len(result) > 0")


def _kayenta(metrics: int, intervals: int = 5) -> KayentaMannWhitneyJudge:
    config = KayentaConfig(
        metrics=tuple(KayentaMetric(name=f"m{i}", direction="increase") for i in range(metrics)),
        intervals=intervals,
    )
    return KayentaMannWhitneyJudge(config)


def _series(metrics: int, high: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Baseline 1..20 for every metric; the first ``high`` canary metrics shifted by +100."""
    baseline = {f"m{i}": [float(v) for v in range(1, 21)] for i in range(metrics)}
    canary = {
        name: [v + (100.0 if i < high else 0.0) for v in values]
        for i, (name, values) in enumerate(baseline.items())
    }
    return canary, baseline


@pytest.mark.parametrize(
    ("metrics", "high", "interval", "expected"),
    [
        (4, 0, 1, Verdict.CONTINUE),  # 100: above marginal, not the last interval
        (4, 1, 1, Verdict.ROLLBACK),  # 75: "not above the marginal score threshold"
        (5, 1, 1, Verdict.CONTINUE),  # 80: above marginal 75
        (5, 1, 5, Verdict.ROLLBACK),  # 80 at the last interval: below pass 95
        (4, 0, 5, Verdict.PROMOTE),  # 100 at the last interval: pass
        (2, 1, 1, Verdict.ROLLBACK),  # 50
    ],
)
def test_kayenta_score_is_share_of_passing_metrics_against_marginal_and_pass(
    metrics: int, high: int, interval: int, expected: Verdict
) -> None:
    """Score = % of metrics classified Pass; <= marginal fails now; the last must reach pass."""
    judge = _kayenta(metrics)
    canary, baseline = _series(metrics, high)
    result = judge.judge(canary, baseline, interval=interval)
    assert result.verdict == expected
    assert [m.outcome for m in result.metrics].count("High") == high
    assert sum(m.failed for m in result.metrics) == high
    assert f"{100.0 * (metrics - high) / metrics:.1f}" in result.reason


def test_kayenta_direction_increase_ignores_a_decrease() -> None:
    """A metric that only fails upward passes when the canary is lower."""
    judge = _kayenta(1)
    baseline = {"m0": [float(v) for v in range(100, 120)]}
    canary = {"m0": [float(v) for v in range(1, 21)]}
    assert judge.judge(canary, baseline, interval=1).metrics[0].outcome == "Pass"


@pytest.mark.parametrize(
    ("groups", "expected"), [(("g",), Verdict.PROMOTE), ((), Verdict.ROLLBACK)]
)
def test_kayenta_identical_series_pass_and_missing_series_are_nodata(
    groups: tuple[str, ...], expected: Verdict
) -> None:
    """Identical data is Pass; an empty series is NODATA and is left out of its group's score.

    As in ``WeightedSumScorer``, a group with no data is skipped but keeps its weight: sharing a
    group with a passing metric scores 100, alone in its group it costs half the score (50).
    """
    config = KayentaConfig(
        metrics=(KayentaMetric(name="m0", groups=groups), KayentaMetric(name="m1", groups=groups)),
        intervals=1,
    )
    result = KayentaMannWhitneyJudge(config).judge(
        {"m0": [1.0, 2.0, 3.0], "m1": []}, {"m0": [3.0, 2.0, 1.0], "m1": [1.0]}, interval=1
    )
    assert [m.outcome for m in result.metrics] == ["Pass", "Nodata"]
    assert result.verdict == expected


def _kayenta_interval_by_brent(
    control: np.ndarray, experiment: np.ndarray, conf: float
) -> tuple[float, float]:
    """Kayenta's MannWhitney.calculateConfidenceInterval, ported line by line."""
    y, x = control, experiment
    nx, ny = len(x), len(y)

    def f(mu: float, q: float) -> float:
        ranks = stats.rankdata(np.concatenate([x - mu, y]))
        _, ties = np.unique(ranks, return_counts=True)
        dz = ranks[:nx].sum() - nx * (nx + 1) / 2 - nx * ny / 2
        sigma = np.sqrt(
            nx * ny / 12 * ((nx + ny + 1) - (ties**3 - ties).sum() / ((nx + ny) * (nx + ny - 1)))
        )
        return float((dz - np.sign(dz) * 0.5) / sigma - q)

    lo, hi = x.min() - y.max(), x.max() - y.min()
    z = stats.norm.ppf((1 - conf) / 2)

    def root(q: float) -> float:
        if f(lo, q) <= 0:
            return float(lo)
        if f(hi, q) >= 0:
            return float(hi)
        return float(optimize.brentq(lambda m: f(m, q), lo, hi, xtol=1e-12))

    return root(-z), root(z)


def test_mann_whitney_interval_matches_kayentas_root_finding_including_ties() -> None:
    """Counting pairwise differences gives the roots Kayenta's solver converges to."""
    rng = np.random.default_rng(21)
    for trial in range(60):
        n, m = int(rng.integers(4, 20)), int(rng.integers(4, 20))
        if trial % 2:
            x, y = rng.binomial(40, 0.03, n) / 40, rng.binomial(40, 0.01, m) / 40
        else:
            x, y = rng.normal(0.5, 1, n), rng.normal(0, 1, m)
        if np.unique(np.concatenate([x, y])).size == 1:
            continue
        lower, upper, _ = mann_whitney_shift_interval(x[None], y[None], confidence=0.98)
        expected = _kayenta_interval_by_brent(y, x, 0.98)
        assert lower[0] == pytest.approx(expected[0], abs=1e-9)
        assert upper[0] == pytest.approx(expected[1], abs=1e-9)


def test_histogram_quantile_follows_prometheus() -> None:
    """Linear interpolation inside the bucket; the +Inf bucket returns the last finite bound."""
    bounds = [0.1, 0.2, 0.5]
    assert histogram_quantile(0.5, bounds, [10, 10, 0, 0])[()] == pytest.approx(0.1)
    assert histogram_quantile(0.75, bounds, [10, 10, 0, 0])[()] == pytest.approx(0.15)
    assert histogram_quantile(0.25, bounds, [10, 10, 0, 0])[()] == pytest.approx(0.05)
    assert histogram_quantile(0.99, bounds, [1, 1, 1, 97])[()] == pytest.approx(0.5)
    assert np.isnan(histogram_quantile(0.5, bounds, [0, 0, 0, 0])[()])
