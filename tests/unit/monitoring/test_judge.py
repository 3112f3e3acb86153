"""The canary judge returns each verdict in the situation that calls for it, with its numbers."""

from __future__ import annotations

import dataclasses
import json
import math

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
    ScoreHistogram,
    SignalName,
    VariantWindow,
    Verdict,
    VerdictCode,
)
from monitoring.judge.evidence import CanaryEvidence, MeanEvidence, stratum_evidence
from monitoring.judge.observation import observation_evidence
from monitoring.judge.psi import ScoreEvidence

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


def test_is_inconclusive_when_the_hard_cap_passes_without_a_decision() -> None:
    """A small, undecided difference at the hard cap pauses the canary and pages a human."""
    config = JudgeConfig(max_windows=6, extension_factor=1)
    result = CanaryJudge(config).evaluate(
        _observe(6, _variant(4000), _variant(1000, error_rate=0.013))
    )
    assert result.verdict == Verdict.INCONCLUSIVE
    assert result.signal(SignalName.ERROR_RATE).decision == Decision.UNDECIDED
    assert "no decision after 6 windows (hard cap 6)" in result.reason


def test_extends_a_slow_but_on_course_canary_quietly_instead_of_paging() -> None:
    """Past max_windows an undecided canary keeps running while more data can settle it."""
    config = JudgeConfig(max_windows=6, extension_factor=4)
    result = CanaryJudge(config).evaluate(
        _observe(6, _variant(4000), _variant(1000, error_rate=0.013))
    )
    assert result.verdict == Verdict.CONTINUE
    assert "extended past 6 windows, up to 24" in result.reason


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


def test_says_which_signals_are_not_collected() -> None:
    """A signal with no data source is reported as not checked rather than silently passing."""
    champion = _variant(40_000).model_copy(update={"latency": None})
    canary = _variant(10_000).model_copy(update={"latency": None})
    result = CanaryJudge().evaluate(_observe(10, champion, canary))
    latency = result.signal(SignalName.LATENCY)
    assert latency.decision == Decision.NOT_COLLECTED
    assert latency.reason.startswith("not collected")
    assert result.signal(SignalName.LATENCY_TAIL).decision == Decision.NOT_COLLECTED
    assert result.verdict == Verdict.PROMOTE


def test_rolls_back_a_tail_only_latency_regression() -> None:
    """3 % of canary requests become slow: the mean barely moves, the p99 exceedance does."""
    champion = _variant(8000).model_copy(update={"latency_exceedances": 80})
    canary = _variant(2000).model_copy(update={"latency_exceedances": 80})
    observation = CanaryObservation(
        window=5, champion=champion, canary=canary, tail_threshold_s=0.13
    )
    result = CanaryJudge().evaluate(observation)
    tail = result.signal(SignalName.LATENCY_TAIL)
    assert tail.decision == Decision.WORSE
    assert tail.estimate == pytest.approx(0.03)
    assert result.signal(SignalName.LATENCY).decision != Decision.WORSE
    assert result.verdict == Verdict.ROLLBACK
    assert "latency_tail" in result.reason


def test_a_canary_bringing_errors_to_an_error_free_champion_is_never_promoted() -> None:
    """Relative-and-absolute margin: 0.3 % new errors on a clean champion cannot pass as noise."""
    judge = CanaryJudge()
    small = judge.evaluate(_observe(20, _variant(16_000, 0.0), _variant(4000, 0.003)))
    assert small.verdict == Verdict.CONTINUE
    error = small.signal(SignalName.ERROR_RATE)
    assert error.margin == pytest.approx(0.002)
    assert error.decision == Decision.UNDECIDED
    large = judge.evaluate(_observe(60, _variant(64_000, 0.0), _variant(16_000, 0.003)))
    assert large.verdict == Verdict.ROLLBACK
    clean = judge.evaluate(_observe(60, _variant(96_000, 0.0), _variant(24_000, 0.0)))
    assert clean.verdict == Verdict.PROMOTE


def _stack(parts: list[CanaryEvidence]) -> CanaryEvidence:
    """Evidence of several single canaries as one batch."""

    def join(values: list[object]) -> object:
        first = values[0]
        if first is None:
            return None
        if isinstance(first, np.ndarray):
            return np.concatenate(values)  # type: ignore[arg-type]
        if isinstance(first, MeanEvidence | ScoreEvidence):
            return type(first)(
                **{
                    f.name: join([getattr(v, f.name) for v in values])
                    for f in dataclasses.fields(first)
                }
            )
        if isinstance(first, dict):
            return {k: join([v[k] for v in values]) for k in first}  # type: ignore[index]
        return first

    return CanaryEvidence(
        **{f.name: join([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(parts[0])}
    )


def test_batch_decisions_equal_single_evaluations() -> None:
    """decide() on a batch gives each canary the verdict evaluate() gives it alone."""
    cases = [
        _observe(3, _variant(6000), _variant(1500, error_rate=0.04)),
        _observe(10, _variant(40_000), _variant(10_000)),
        _observe(1, _variant(800), _variant(200)),
    ]
    judge = CanaryJudge()
    singles = [judge.evaluate(case).verdict for case in cases]
    batch = judge.decide(
        _stack([observation_evidence(c) for c in cases]), window=[c.window for c in cases]
    )
    codes = {
        Verdict.ROLLBACK: VerdictCode.ROLLBACK,
        Verdict.PROMOTE: VerdictCode.PROMOTE,
        Verdict.CONTINUE: VerdictCode.CONTINUE,
    }
    assert list(batch.verdict) == [codes[v] for v in singles]
    assert singles == [Verdict.ROLLBACK, Verdict.PROMOTE, Verdict.CONTINUE]


def _errors_by_slice(
    champion: dict[str, tuple[int, int]], canary: dict[str, tuple[int, int]]
) -> dict[str, MeanEvidence]:
    """One stratum per slice from ``{slice: (requests, errors)}`` of each variant."""
    out = {}
    for name in champion:
        (n0, e0), (n1, e1) = champion[name], canary[name]
        n = np.array([[[n0], [n1]]], dtype=float)
        e = np.array([[[e0], [e1]]], dtype=float)
        out[name] = stratum_evidence(n, e, e.sum(axis=2))
    return out


def _evidence_with_slices(slices: dict[str, MeanEvidence]) -> CanaryEvidence:
    base = observation_evidence(_observe(20, _variant(40_000), _variant(10_000)))
    return dataclasses.replace(base, slice_errors=slices)


def test_rolls_back_a_regression_confined_to_one_slice_and_names_it() -> None:
    """+3 points of errors on a 10 % slice is invisible overall but clear within the slice."""
    slices = _errors_by_slice(
        {"big": (36_000, 360), "small": (4000, 40)}, {"big": (9000, 90), "small": (1000, 40)}
    )
    result = CanaryJudge().evaluate(_evidence_with_slices(slices), window=20)
    reading = result.signal(SignalName.SLICE_ERROR_RATE)
    assert reading.decision == Decision.WORSE
    assert reading.slice == "small"
    assert result.verdict == Verdict.ROLLBACK
    assert "in slice 'small'" in result.reason


def test_a_big_slice_without_enough_traffic_yet_blocks_promotion() -> None:
    """A slice carrying >= slice_min_share of the canary must be judged before promotion."""
    slices = _errors_by_slice(
        {"big": (38_000, 380), "new": (2000, 20)}, {"big": (9900, 99), "new": (100, 1)}
    )
    judge = CanaryJudge(JudgeConfig(slice_min_share=0.005))
    result = judge.evaluate(_evidence_with_slices(slices), window=20)
    assert result.signal(SignalName.SLICE_ERROR_RATE).decision == Decision.UNDECIDED
    assert result.verdict == Verdict.CONTINUE
    thin = CanaryJudge(JudgeConfig(slice_min_share=0.05)).evaluate(
        _evidence_with_slices(slices), window=20
    )
    assert thin.verdict == Verdict.PROMOTE


def test_rollback_budget_is_split_across_signals_and_slices_and_sums_to_alpha() -> None:
    """Weighted Bonferroni: every test's share, slices included, adds up to alpha_rollback."""
    config = JudgeConfig()
    for slices in (0, 1, 3, 10):
        alpha = config.rollback_alpha(slices)
        per_slice = {SignalName.SLICE_ERROR_RATE, SignalName.SLICE_QUALITY}
        total = sum(a * (slices if n in per_slice else 1) for n, a in alpha.items())
        assert total == pytest.approx(config.alpha_rollback)
        assert (SignalName.SLICE_ERROR_RATE in alpha) == (slices > 0)
    with pytest.raises(pydantic.ValidationError, match="rollback_alpha_shares"):
        JudgeConfig(rollback_alpha_shares={"error_rate": 1.0})


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
