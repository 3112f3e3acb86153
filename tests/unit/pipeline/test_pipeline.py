"""The composed pipeline on tiny in-memory data."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from features import TARGET
from pipeline.config import PipelineConfig
from pipeline.pipeline import STAGES, PipelineResult, run
from pipeline.scenarios import ScenarioError, UnknownScenarioError
from pipeline.train import split

pytestmark = pytest.mark.unit

Run = tuple[PipelineResult, list[tuple[str, str]]]


@pytest.fixture(scope="module")
def noisy(small_frame: pd.DataFrame, tiny_cfg: PipelineConfig, clean_run: Run) -> PipelineResult:
    """Label noise in training, judged against the clean model as champion."""
    before = small_frame.copy(deep=True)
    result = run(small_frame, tiny_cfg, clean_run[0].model, scenario="label-noise")
    pd.testing.assert_frame_equal(small_frame, before)  # the input frame is never modified
    return result


def test_a_clean_dataset_goes_through_every_stage_and_passes(clean_run: Run) -> None:
    """A clean dataset runs every stage in order, is timed per stage, and passes."""
    result, events = clean_run
    assert result.passed
    assert result.stopped_at is None
    assert result.model is not None
    assert result.verdict is not None
    assert not result.verdict.compared_to_champion
    assert events == [(stage, status) for stage in STAGES for status in ("running", "passed")]
    assert set(result.timings) == set(STAGES)


def test_the_holdout_is_the_deterministic_split(
    clean_run: Run, small_frame: pd.DataFrame, tiny_cfg: PipelineConfig
) -> None:
    """The run's holdout is the deterministic split of the data for the configured seed."""
    _, holdout = split(small_frame, tiny_cfg.data.holdout_fraction, tiny_cfg.data.seed)
    assert clean_run[0].holdout is not None
    pd.testing.assert_frame_equal(clean_run[0].holdout, holdout)


def test_a_failed_validation_stops_before_training(
    small_frame: pd.DataFrame, tiny_cfg: PipelineConfig
) -> None:
    """A failed validation stops the run: nothing trained, later stages reported skipped."""
    events: list[tuple[str, str]] = []
    result = run(
        small_frame,
        tiny_cfg,
        None,
        scenario="null-spike",
        on_stage=lambda s, st: events.append((s, st)),
    )
    assert result.stopped_at == "validate"
    assert not result.passed
    assert result.model is None
    assert result.evaluation is None
    assert result.verdict is None
    assert [f.rule for f in result.validation.failures] == ["null_rate"]
    assert events == [
        ("validate", "running"),
        ("validate", "failed"),
        *[(stage, "skipped") for stage in STAGES[1:]],
    ]


def test_a_training_side_scenario_corrupts_the_training_split_only(
    noisy: PipelineResult, clean_run: Run
) -> None:
    """Label noise flips 30% of training labels and leaves the holdout untouched."""
    clean = clean_run[0]
    assert noisy.holdout is not None
    assert noisy.train is not None
    assert clean.train is not None
    pd.testing.assert_frame_equal(noisy.holdout, clean.holdout)
    flipped = (noisy.train[TARGET] != clean.train[TARGET]).mean()
    assert flipped == pytest.approx(0.3, abs=0.001)
    assert noisy.scenario == "label-noise"
    assert noisy.magnitude == 0.3


def test_a_champion_is_scored_on_the_same_holdout(noisy: PipelineResult) -> None:
    """With a champion, both are scored on the same holdout and the gate compares them."""
    assert noisy.champion_evaluation is not None
    assert noisy.evaluation is not None
    assert noisy.evaluation.rows.same_rows_as(noisy.champion_evaluation.rows)
    assert noisy.verdict is not None
    assert noisy.verdict.compared_to_champion
    assert any(c.name == "auc_non_regression" for c in noisy.verdict.checks)


def test_the_label_noise_candidate_is_stopped_at_the_gate(noisy: PipelineResult) -> None:
    """The label-noise candidate is trained but stopped at the gate, with reasons."""
    assert noisy.stopped_at == "gate"
    assert not noisy.passed
    assert noisy.model is not None  # trained, kept for investigation, never promoted
    assert noisy.verdict is not None
    assert noisy.verdict.reasons()


def test_a_serving_only_scenario_is_refused(
    small_frame: pd.DataFrame, tiny_cfg: PipelineConfig
) -> None:
    """A scenario that applies to serving traffic only is refused by the pipeline."""
    with pytest.raises(ScenarioError, match="serving traffic only"):
        run(small_frame, tiny_cfg, None, scenario="serving-skew")


def test_an_unknown_scenario_is_refused(
    small_frame: pd.DataFrame, tiny_cfg: PipelineConfig
) -> None:
    """An unknown scenario name is refused with UnknownScenarioError."""
    with pytest.raises(UnknownScenarioError):
        run(small_frame, tiny_cfg, None, scenario="nope")


def test_the_result_serialises_without_frames_or_model(clean_run: Run) -> None:
    """The result serialises to JSON with row counts instead of frames or the model."""
    result = clean_run[0]
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["passed"] is True
    assert result.holdout is not None
    assert payload["rows"]["holdout"] == len(result.holdout)
    assert payload["verdict"]["passed"] is True
    assert payload["champion_evaluation"] is None
