"""The canary judge returns each verdict in the situation that calls for it, with its numbers."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pydantic
import pytest

from monitoring.judge import (
    CanaryJudge,
    CanaryObservation,
    Decision,
    JudgeConfig,
    LatencySummary,
    LossSummary,
    Moments,
    ScoreHistogram,
    SignalName,
    VariantStats,
    VariantWindow,
    Verdict,
    VerdictCode,
)

pytestmark = pytest.mark.unit

EDGES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
SHARES = (0.2, 0.25, 0.2, 0.12, 0.1, 0.08, 0.05)


def _variant(
    requests: int,
    error_rate: float = 0.01,
    *,
    latency_ratio: float = 1.0,
    loss: float = 0.3,
    shares: tuple[float, ...] = SHARES,
    labels: int | None = None,
) -> VariantWindow:
    """Cumulative data whose statistics equal their expectations (no sampling noise)."""
    labelled = labels if labels is not None else requests // 3
    counts = [round(requests * s) for s in shares]
    return VariantWindow(
        requests=requests,
        errors=round(requests * error_rate),
        latency=LatencySummary(
            count=requests,
            mean_log=math.log(0.04 * latency_ratio),
            m2_log=0.25 * (requests - 1),
        ),
        scores=ScoreHistogram(edges=EDGES, counts=tuple(counts)),
        quality=LossSummary(count=labelled, mean=loss, m2=0.36 * (labelled - 1)),
    )


def _observe(window: int, champion: VariantWindow, canary: VariantWindow) -> CanaryObservation:
    return CanaryObservation(window=window, champion=champion, canary=canary)


def test_continues_while_minimum_samples_are_not_reached() -> None:
    """Too few requests: every signal is insufficient, so the judge keeps watching."""
    result = CanaryJudge().evaluate(_observe(1, _variant(800), _variant(200, error_rate=0.05)))
    assert result.verdict == Verdict.CONTINUE
    assert result.signal(SignalName.ERROR_RATE).decision == Decision.INSUFFICIENT


def test_promotes_a_canary_that_is_not_worse_on_every_required_signal() -> None:
    """Equal error rate, latency and scores on a large sample after the minimum duration."""
    result = CanaryJudge().evaluate(_observe(10, _variant(40_000), _variant(10_000)))
    assert result.verdict == Verdict.PROMOTE
    for name in (SignalName.ERROR_RATE, SignalName.LATENCY, SignalName.PREDICTIONS):
        assert result.signal(name).decision == Decision.NOT_WORSE
    error = result.signal(SignalName.ERROR_RATE)
    assert error.ci_high is not None
    assert error.margin is not None
    assert error.ci_high < error.margin


def test_waits_for_the_minimum_duration_before_promoting() -> None:
    """The same good canary at window 2 continues: promotion needs min_windows_before_promote."""
    result = CanaryJudge(JudgeConfig(min_windows_before_promote=3)).evaluate(
        _observe(2, _variant(40_000), _variant(10_000))
    )
    assert result.verdict == Verdict.CONTINUE
    assert "minimum duration" in result.reason


def test_rolls_back_when_the_error_rate_quadruples_and_reports_the_numbers() -> None:
    """1 % to 4 % errors: the anytime-valid lower bound clears the floor; every number is kept."""
    result = CanaryJudge().evaluate(_observe(3, _variant(6000), _variant(1500, error_rate=0.04)))
    assert result.verdict == Verdict.ROLLBACK
    error = result.signal(SignalName.ERROR_RATE)
    assert error.decision == Decision.WORSE
    assert error.statistic is not None
    assert error.threshold is not None
    assert error.threshold == pytest.approx(0.001)
    assert error.statistic > error.threshold
    assert error.estimate == pytest.approx(0.03)
    assert (error.n_canary, error.n_champion) == (1500, 6000)
    assert "error_rate" in result.reason
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["verdict"] == "rollback"
    assert payload["signals"][0]["ci_low"] == pytest.approx(error.ci_low)


def test_rolls_back_a_canary_half_again_as_slow() -> None:
    """Latency x1.5 clears the 1.1 floor on the geometric-mean ratio."""
    result = CanaryJudge().evaluate(_observe(2, _variant(1600), _variant(400, latency_ratio=1.5)))
    assert result.verdict == Verdict.ROLLBACK
    latency = result.signal(SignalName.LATENCY)
    assert latency.decision == Decision.WORSE
    assert latency.estimate == pytest.approx(1.5)


def test_rolls_back_on_a_large_quality_regression_from_delayed_labels() -> None:
    """Mean log loss 0.30 to 0.40 on thousands of labels is a confident regression."""
    result = CanaryJudge().evaluate(
        _observe(8, _variant(20_000, labels=8000), _variant(5000, loss=0.4, labels=2000))
    )
    assert result.verdict == Verdict.ROLLBACK
    assert result.signal(SignalName.QUALITY).decision == Decision.WORSE


def test_is_inconclusive_when_the_maximum_duration_passes_without_a_decision() -> None:
    """A small, undecided difference at the last window pauses the canary and pages a human."""
    config = JudgeConfig(max_windows=6)
    result = CanaryJudge(config).evaluate(
        _observe(6, _variant(4000), _variant(1000, error_rate=0.013))
    )
    assert result.verdict == Verdict.INCONCLUSIVE
    assert result.signal(SignalName.ERROR_RATE).decision == Decision.UNDECIDED
    assert "no decision after 6 windows" in result.reason


def test_pauses_when_predictions_shift_beyond_the_guardrail_without_other_harm() -> None:
    """A very different score distribution with healthy operations: a person decides."""
    shifted = (0.02, 0.05, 0.08, 0.15, 0.2, 0.25, 0.25)
    result = CanaryJudge().evaluate(
        _observe(10, _variant(40_000), _variant(10_000, shares=shifted))
    )
    assert result.verdict == Verdict.INCONCLUSIVE
    predictions = result.signal(SignalName.PREDICTIONS)
    assert predictions.decision == Decision.WORSE
    assert predictions.statistic is not None
    assert predictions.threshold is not None
    assert predictions.statistic > predictions.threshold
    assert "prediction distribution" in result.reason


def test_prediction_shift_rolls_back_when_configured_to() -> None:
    """With prediction_shift_action='rollback' the same shift is a rollback."""
    shifted = (0.02, 0.05, 0.08, 0.15, 0.2, 0.25, 0.25)
    result = CanaryJudge(JudgeConfig(prediction_shift_action="rollback")).evaluate(
        _observe(10, _variant(40_000), _variant(10_000, shares=shifted))
    )
    assert result.verdict == Verdict.ROLLBACK


def test_pages_a_human_when_a_slower_canary_is_confidently_more_accurate() -> None:
    """Latency worse but quality better beyond its margin: a trade-off, not a rollback."""
    result = CanaryJudge().evaluate(
        _observe(
            10,
            _variant(40_000, labels=20_000),
            _variant(10_000, latency_ratio=1.3, loss=0.2, labels=5000),
        )
    )
    assert result.signal(SignalName.LATENCY).decision == Decision.WORSE
    assert result.signal(SignalName.QUALITY).decision == Decision.BETTER
    assert result.verdict == Verdict.INCONCLUSIVE
    assert "trade-off" in result.reason


def test_cannot_promote_without_latency_data() -> None:
    """A required signal that was never supplied blocks promotion rather than being skipped."""
    champion = _variant(40_000).model_copy(update={"latency": None})
    canary = _variant(10_000).model_copy(update={"latency": None})
    result = CanaryJudge().evaluate(_observe(10, champion, canary))
    assert result.verdict == Verdict.CONTINUE
    assert result.signal(SignalName.LATENCY).reason.startswith("no data supplied")


def test_batch_decisions_equal_single_evaluations() -> None:
    """decide() on a batch gives each canary the verdict evaluate() gives it alone."""
    cases = [
        (_variant(6000), _variant(1500, error_rate=0.04), 3),
        (_variant(40_000), _variant(10_000), 10),
        (_variant(800), _variant(200), 1),
    ]
    judge = CanaryJudge()
    singles = [judge.evaluate(_observe(w, ch, ca)).verdict for ch, ca, w in cases]

    def stack(windows: list[VariantWindow]) -> VariantStats:
        parts = [VariantStats.from_window(w) for w in windows]

        def moments(pick: Callable[[VariantStats], Moments | None]) -> Moments:
            picked = [pick(p) for p in parts]
            assert all(m is not None for m in picked)
            return Moments(
                np.concatenate([m.count for m in picked if m is not None]),
                np.concatenate([m.mean for m in picked if m is not None]),
                np.concatenate([m.m2 for m in picked if m is not None]),
            )

        return VariantStats(
            requests=np.concatenate([p.requests for p in parts]),
            errors=np.concatenate([p.errors for p in parts]),
            latency=moments(lambda p: p.latency),
            score_counts=np.concatenate(
                [p.score_counts for p in parts if p.score_counts is not None]
            ),
            quality=moments(lambda p: p.quality),
        )

    batch = judge.decide(
        stack([c[0] for c in cases]), stack([c[1] for c in cases]), window=[c[2] for c in cases]
    )
    codes = {
        Verdict.ROLLBACK: VerdictCode.ROLLBACK,
        Verdict.PROMOTE: VerdictCode.PROMOTE,
        Verdict.CONTINUE: VerdictCode.CONTINUE,
    }
    assert list(batch.verdict) == [codes[v] for v in singles]
    assert singles == [Verdict.ROLLBACK, Verdict.PROMOTE, Verdict.CONTINUE]


def test_config_refuses_a_floor_above_its_margin() -> None:
    """A rollback floor larger than the promotion margin is named in the error."""
    with pytest.raises(pydantic.ValidationError, match="error_rate_floor"):
        JudgeConfig(error_rate_floor=0.01, error_rate_margin=0.005)


def test_observation_refuses_more_errors_than_requests() -> None:
    """Inconsistent counts are rejected with the rule they break."""
    with pytest.raises(pydantic.ValidationError, match="must not exceed requests"):
        VariantWindow(requests=10, errors=11)


def test_observation_refuses_score_histograms_on_different_edges() -> None:
    """Comparing histograms binned differently would be meaningless."""
    other = ScoreHistogram(edges=(0.0, 0.5, 1.0), counts=(5, 5))
    with pytest.raises(pydantic.ValidationError, match="same edges"):
        _observe(1, _variant(100), _variant(100).model_copy(update={"scores": other}))


def test_summaries_from_raw_samples_match_their_statistics() -> None:
    """Raw latencies, labelled scores and scores reduce to the moments the judge uses."""
    latencies = [0.01, 0.02, 0.04, 0.08]
    summary = LatencySummary.from_samples(latencies)
    assert summary.count == 4
    assert summary.mean_log == pytest.approx(float(np.mean(np.log(latencies))))
    loss = LossSummary.from_labelled([0.9, 0.2], [1, 0])
    assert loss.mean == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2)
    hist = ScoreHistogram.from_scores([0.01, 0.07, 0.99], EDGES)
    assert hist.counts == (1, 1, 0, 0, 0, 0, 1)
    buckets = LatencySummary.from_histogram([0.01, 0.1, float("inf")], [0, 10, 10])
    assert buckets.count == 10
    assert buckets.mean_log == pytest.approx(math.log(math.sqrt(0.01 * 0.1)))
    with pytest.raises(ValueError, match="latency samples must be finite and > 0"):
        LatencySummary.from_samples([0.1, -1.0])
