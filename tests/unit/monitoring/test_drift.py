"""Drift checks: calibrated thresholds, scenario detection, noise control and the drift policy."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features import FEATURE_NAMES
from monitoring.drift import (
    CalibrationError,
    CalibrationMismatchError,
    DriftAction,
    DriftCalibration,
    DriftConfig,
    DriftDetector,
    DriftInputError,
    DriftResult,
    calibrate,
    check_drift,
    column_distance,
    recommend,
)
from monitoring.drift import report as drift_report
from pipeline.data import default_probability, generate
from pipeline.scenarios import apply_scenario

pytestmark = pytest.mark.unit

REFERENCE_ROWS = 6_000
WINDOW_ROWS = 1_000


def scored(frame: pd.DataFrame, column: str = "probability") -> pd.DataFrame:
    """Add the model's probability (here: the generator's true risk) under ``column``."""
    return frame.assign(**{column: default_probability(frame)})


def window(seed: int, rows: int = WINDOW_ROWS) -> pd.DataFrame:
    return scored(generate(rows, seed))


@pytest.fixture(scope="module")
def config() -> DriftConfig:
    return DriftConfig()


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return scored(generate(REFERENCE_ROWS, seed=1), column="prediction")


@pytest.fixture(scope="module")
def calibration(reference: pd.DataFrame, config: DriftConfig) -> DriftCalibration:
    return calibrate(reference, WINDOW_ROWS, config, seed=0)


def check(
    reference: pd.DataFrame, current: pd.DataFrame, calibration: DriftCalibration
) -> DriftResult:
    return check_drift(reference, current, calibration, DriftConfig())


# --- noise control -----------------------------------------------------------------------------


def test_clean_windows_from_another_seed_raise_at_most_one_false_alarm_in_twenty(
    reference: pd.DataFrame, calibration: DriftCalibration
) -> None:
    """Windows drawn from the same generator with other seeds are "nothing changed" windows.

    The one alarm these seeds raise is honest: window 113 is a 4-sigma draw of the generator
    (mean credit score 692 against 700 +- 2 over 200 seeds).
    """
    results = [check(reference, window(seed), calibration) for seed in range(100, 120)]
    flagged = [r.reason for r in results if r.status == "drift"]
    assert len(flagged) <= 1, flagged
    assert not any(r.dataset_drifted for r in results)


def test_uncalibrated_evidently_default_threshold_would_alarm_on_clean_windows(
    reference: pd.DataFrame, calibration: DriftCalibration
) -> None:
    """Why calibrate: a fixed 0.05 distance (a common default) sits inside the noise."""
    result = check(reference, window(100), calibration)
    noisy = [f.feature for f in result.features if f.score is not None and f.score >= 0.05]
    assert noisy, "expected some clean-window distances above 0.05 at 1,000 rows"
    assert all(f.threshold > 0.05 for f in result.features if f.method == "wasserstein")


def test_a_window_below_min_window_rows_is_insufficient_data_with_no_claims(
    reference: pd.DataFrame, calibration: DriftCalibration
) -> None:
    """A window under min_window_rows is insufficient data: no features, no verdict, no action."""
    shifted = apply_scenario(window(7, rows=150), "covariate-shift", 3.0, seed=1)
    result = check(reference, shifted, calibration)
    assert result.status == "insufficient-data"
    assert result.features == ()
    assert result.prediction is None
    assert not result.dataset_drifted
    assert recommend(result, "champion").actions == ()


def test_thresholds_shrink_as_the_calibrated_window_grows(
    reference: pd.DataFrame, config: DriftConfig
) -> None:
    """Noise falls like 1/sqrt(rows): larger windows earn tighter thresholds."""
    quick = config.model_copy(update={"calibration_chunks": 30})
    small = calibrate(reference, 250, quick, seed=0)
    large = calibrate(reference, 2_000, quick, seed=0)
    for name in ("credit_score", "loan_purpose"):
        assert large.column(name).threshold < small.column(name).threshold


def test_per_column_false_alarm_rate_is_split_over_the_checked_columns(
    calibration: DriftCalibration, config: DriftConfig
) -> None:
    """The many-features rule: Bonferroni over features plus the prediction column."""
    columns = len(FEATURE_NAMES) + 1
    family = 0.0013498980316301035  # one-sided tail of a 3-sigma normal event
    assert calibration.column_alpha == pytest.approx(family / columns)
    assert config.sigmas == 3.0


# --- scenarios ---------------------------------------------------------------------------------


def test_covariate_shift_flags_credit_score_and_not_the_other_features(
    reference: pd.DataFrame, calibration: DriftCalibration
) -> None:
    """A covariate shift flags credit_score and at most one other feature, not the dataset."""
    shifted = scored(apply_scenario(generate(WINDOW_ROWS, 7), "covariate-shift", 1.0, seed=1))
    result = check(reference, shifted, calibration)
    assert result.status == "drift"
    assert "credit_score" in result.drifted_features
    assert len(result.drifted_features) <= 2, result.drifted_features
    assert not result.dataset_drifted


def test_unseen_category_flags_loan_purpose(
    reference: pd.DataFrame, calibration: DriftCalibration
) -> None:
    """An unseen category flags loan_purpose alone, scored by Jensen-Shannon, not as nulls."""
    drifted = apply_scenario(window(8), "unseen-category", 0.2, seed=1)
    result = check(reference, drifted, calibration)
    assert result.drifted_features == ("loan_purpose",)
    purpose = next(f for f in result.features if f.feature == "loan_purpose")
    assert purpose.method == "jensenshannon"
    assert not purpose.null_spike


def test_serving_skew_flags_annual_income(
    reference: pd.DataFrame, calibration: DriftCalibration
) -> None:
    """Serving skew flags annual_income with a score over five times its threshold."""
    skewed = apply_scenario(window(9), "serving-skew", 1.0, seed=1)
    result = check(reference, skewed, calibration)
    assert "annual_income" in result.drifted_features
    income = next(f for f in result.features if f.feature == "annual_income")
    assert income.score is not None
    assert income.score > 5 * income.threshold


def test_null_spike_is_flagged_as_a_null_spike_of_debt_to_income(
    reference: pd.DataFrame, calibration: DriftCalibration
) -> None:
    """Evidently drops nulls before scoring, so the null share is judged on its own."""
    spiked = apply_scenario(window(10), "null-spike", 0.3, seed=1)
    result = check(reference, spiked, calibration)
    dti = next(f for f in result.features if f.feature == "debt_to_income")
    assert dti.null_spike
    assert dti.drifted
    assert dti.null_share == pytest.approx(0.3, abs=0.01)
    assert not dti.distance_drifted  # nulls are missing at random: the values did not move
    assert result.drifted_features == ("debt_to_income",)


def test_an_all_null_column_is_reported_without_a_score_and_without_crashing(
    reference: pd.DataFrame, calibration: DriftCalibration
) -> None:
    """An all-null column is drifted as a null spike with no score, and the result is JSON."""
    spiked = apply_scenario(window(11), "null-spike", 1.0, seed=1)
    result = check(reference, spiked, calibration)
    dti = next(f for f in result.features if f.feature == "debt_to_income")
    assert dti.score is None
    assert dti.null_spike
    assert dti.drifted
    assert "debt_to_income" not in result.scores()
    json.dumps(result.to_dict())


def test_prediction_drift_is_detected_when_the_scores_shift_but_inputs_do_not(
    reference: pd.DataFrame, calibration: DriftCalibration
) -> None:
    """Shifted scores on unchanged inputs are prediction drift, with no feature drifted."""
    current = window(12)
    logit = np.log(current["probability"] / (1 - current["probability"]))
    current = current.assign(probability=1 / (1 + np.exp(-(logit + 0.5))))
    result = check(reference, current, calibration)
    assert result.prediction is not None
    assert result.prediction.drifted
    assert result.drifted_features == ()
    assert result.status == "drift"


def test_prediction_column_names_are_configurable(
    reference: pd.DataFrame, calibration: DriftCalibration
) -> None:
    """The window's prediction column is configurable; the default name is required otherwise."""
    config = DriftConfig(window_prediction_column="score")
    current = window(13).rename(columns={"probability": "score"})
    result = check_drift(reference, current, calibration, config)
    assert result.prediction is not None
    assert result.prediction.feature == "prediction"
    with pytest.raises(DriftInputError, match="'probability'"):
        check_drift(reference, current, calibration, DriftConfig())


def test_broad_drift_marks_the_dataset_as_drifted(
    reference: pd.DataFrame, calibration: DriftCalibration
) -> None:
    """Four scenarios at once drift the dataset, and the recommendation is critical."""
    broken = window(14)
    for name in ("covariate-shift", "unseen-category", "null-spike", "serving-skew"):
        broken = apply_scenario(broken, name, seed=2)
    result = check(reference, broken, calibration)
    assert result.share_drifted >= 4 / len(FEATURE_NAMES)
    assert result.dataset_drifted
    assert recommend(result, "champion").severity == "critical"


# --- consistency of the distances --------------------------------------------------------------


def test_calibration_split_scoring_equals_the_check_distance(reference: pd.DataFrame) -> None:
    """The calibration's O(rows) split scoring is the same distance the check computes."""
    from monitoring.drift.calibration import _prepare

    config = DriftConfig()
    in_window = np.zeros(len(reference), dtype=bool)
    in_window[np.random.default_rng(5).choice(len(reference), 800, replace=False)] = True
    for column in ("credit_score", "debt_to_income", "loan_purpose", "prediction"):
        fast = _prepare(reference, column, config).score(in_window)
        slow = column_distance(
            reference[column][~in_window], reference[column][in_window], config.method_for(column)
        )
        assert fast == pytest.approx(slow, rel=1e-9, abs=1e-12), column


def test_wasserstein_is_scipys_distance_normed_by_the_reference_std() -> None:
    """The Wasserstein score is scipy's distance divided by the reference's standard deviation."""
    from scipy import stats

    rng = np.random.default_rng(3)
    ref = pd.Series(np.round(rng.normal(0, 2, 700), 1), name="x")
    cur = pd.Series(np.round(rng.normal(0.3, 2, 300), 1), name="x")
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert column_distance(ref, cur, "wasserstein", "numeric") == pytest.approx(expected)


def test_an_unknown_category_is_finite_under_jensen_shannon_and_psi() -> None:
    """A category unseen in the reference gives finite, positive Jensen-Shannon and PSI scores."""
    ref = pd.Series(["a"] * 60 + ["b"] * 40, name="c")
    cur = pd.Series(["a"] * 50 + ["b"] * 30 + ["new"] * 20, name="c")
    js = column_distance(ref, cur, "jensenshannon", "categorical")
    psi = column_distance(ref, cur, "psi", "categorical")
    assert js is not None
    assert 0 < js < 1
    assert psi is not None
    assert np.isfinite(psi)
    assert psi > 0


@pytest.mark.slow
def test_evidently_report_shows_the_same_scores_as_the_check(
    reference: pd.DataFrame, calibration: DriftCalibration
) -> None:
    """The HTML report and the exported gauge never disagree: Evidently computes the same."""
    config = DriftConfig()
    current = apply_scenario(window(15), "unseen-category", 0.1, seed=1)
    current = apply_scenario(current, "null-spike", 0.2, seed=1)
    result = check_drift(reference, current, calibration, config)
    specs = [
        drift_report.ColumnSpec(f.feature, kind, f.method, f.threshold)
        for f, kind in zip(
            (*result.features, result.prediction),
            [calibration.column(n).kind for n in FEATURE_NAMES] + ["numeric"],
            strict=True,
        )
        if f is not None
    ]
    renamed = current.rename(columns={"probability": "prediction"})
    report = drift_report.build_value_drift_report(reference, renamed, specs)
    ours = {f.feature: f.score for f in (*result.features, result.prediction) if f is not None}
    assert set(report.scores) == set(ours)
    for name, score in ours.items():
        assert report.scores[name] == pytest.approx(score, rel=1e-9, abs=1e-12), name


@pytest.mark.slow
def test_evidently_stattests_agree_with_the_port_for_every_method(
    reference: pd.DataFrame,
) -> None:
    """Our distances equal Evidently's stattests for every method and column kind."""
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    current = apply_scenario(window(16), "unseen-category", 0.1, seed=1)
    for method in ("wasserstein", "jensenshannon", "psi"):
        for column in ("age", "loan_term_months", "employment_years", "segment", "loan_purpose"):
            kind = "categorical" if column in ("segment", "loan_purpose") else "numeric"
            if kind == "categorical" and method == "wasserstein":
                continue
            column_type = ColumnType.Categorical if kind == "categorical" else ColumnType.Numerical
            test = get_registered_stattest(method, column_type)
            expected = test(
                reference[column].dropna(), current[column].dropna(), column_type, 0.1
            ).drift_score
            ours = column_distance(reference[column], current[column], method)
            assert ours == pytest.approx(expected, rel=1e-9, abs=1e-12), (method, column)


# --- HTML report -------------------------------------------------------------------------------


@pytest.mark.slow
def test_html_report_is_written_self_contained_and_without_network(
    reference: pd.DataFrame,
    calibration: DriftCalibration,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The HTML report is self-contained, opens no connection and leaves no temp file."""
    import socket

    from monitoring.drift import write_html_report

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the drift report tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    path = tmp_path / "reports" / "champion-v3.html"
    written = write_html_report(
        reference, window(17), path, DriftConfig(), calibration=calibration, title="champion v3"
    )
    assert written == path
    html = path.read_text(encoding="utf-8")
    assert len(html) > 100_000
    assert "<html" in html
    assert '<script src="http' not in html
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


# --- wiring errors -----------------------------------------------------------------------------


def test_a_calibration_of_another_reference_is_refused(
    calibration: DriftCalibration, config: DriftConfig
) -> None:
    """A calibration made on another reference is refused."""
    other = scored(generate(REFERENCE_ROWS, seed=2), column="prediction")
    with pytest.raises(CalibrationMismatchError, match="another reference"):
        check_drift(other, window(18), calibration, config)


def test_a_calibration_with_other_methods_is_refused(
    reference: pd.DataFrame, calibration: DriftCalibration
) -> None:
    """A calibration made with other distance methods is refused, naming the feature."""
    with pytest.raises(
        CalibrationMismatchError,
        match="age: calibrated with 'wasserstein' but the config uses 'psi'",
    ):
        check_drift(reference, window(19), calibration, DriftConfig(numeric_method="psi"))


def test_a_calibration_with_another_strictness_is_refused(
    reference: pd.DataFrame, calibration: DriftCalibration
) -> None:
    """A calibration made with other sigmas is refused, stating what it was made with."""
    with pytest.raises(CalibrationMismatchError, match="sigmas=3, tail_model='gamma'"):
        check_drift(reference, window(19), calibration, DriftConfig(sigmas=4.0))


def test_a_window_smaller_than_the_calibrated_one_is_refused(
    reference: pd.DataFrame, calibration: DriftCalibration, config: DriftConfig
) -> None:
    """A window smaller than the calibrated size is refused, saying to calibrate for it."""
    with pytest.raises(CalibrationMismatchError, match="calibrate for <= 600"):
        check_drift(reference, window(20, rows=600), calibration, config)


def test_calibration_needs_a_reference_twice_the_window(
    reference: pd.DataFrame, config: DriftConfig
) -> None:
    """Calibrating needs a reference twice the window and a window of min_window_rows."""
    with pytest.raises(CalibrationError, match="at least 8000 rows"):
        calibrate(reference, 4_000, config)
    with pytest.raises(CalibrationError, match="min_window_rows=200"):
        calibrate(reference, 100, config)


def test_a_missing_or_mistyped_column_is_named(
    reference: pd.DataFrame, calibration: DriftCalibration, config: DriftConfig
) -> None:
    """A missing or non-numeric window column raises DriftInputError naming it."""
    with pytest.raises(DriftInputError, match="'segment'"):
        check_drift(reference, window(21).drop(columns=["segment"]), calibration, config)
    bad = window(22).assign(age="forty")
    with pytest.raises(DriftInputError, match="window column 'age' must be numeric"):
        check_drift(reference, bad, calibration, config)


def test_config_rejects_a_feature_outside_the_contract() -> None:
    """DriftConfig refuses a feature that is not in the contract."""
    with pytest.raises(ValidationError, match="'salary' is not a contract feature"):
        DriftConfig(features=("age", "salary"))


def test_calibration_round_trips_through_json(calibration: DriftCalibration) -> None:
    """A calibration survives a JSON round trip unchanged."""
    assert DriftCalibration.model_validate_json(calibration.model_dump_json()) == calibration


def test_detector_uses_the_largest_calibrated_size_not_above_the_window(
    reference: pd.DataFrame,
) -> None:
    """The detector calibrates for the largest size not above the window, and caches it."""
    detector = DriftDetector(reference, DriftConfig(calibration_chunks=20))
    assert [detector.rung(n) for n in (200, 399, 400, 1_500, 50_000)] == [
        200,
        200,
        400,
        800,
        3_000,
    ]
    first = detector.calibration_for(1_000)
    assert detector.calibration_for(1_500) is first
    result = detector.check(window(23, rows=1_200))
    assert result.calibration_window_rows == 800
    assert result.status in ("ok", "drift")


def test_detector_refuses_a_reference_too_small_for_the_minimum_window() -> None:
    """The detector refuses a reference too small for the minimum window."""
    with pytest.raises(CalibrationError, match="at least 400"):
        DriftDetector(scored(generate(300, 1), column="prediction"))


# --- policy ------------------------------------------------------------------------------------


def test_drift_actions_cannot_express_a_rollback() -> None:
    """Rollback is not among the drift actions: drift never rolls back."""
    assert "rollback" not in typing.get_args(DriftAction)


def test_champion_input_drift_alerts_and_triggers_retraining_never_a_rollback(
    reference: pd.DataFrame, calibration: DriftCalibration
) -> None:
    """Input drift on the champion alerts and retrains (warning), saying a rollback won't help."""
    shifted = scored(apply_scenario(generate(WINDOW_ROWS, 24), "covariate-shift", 1.0, seed=1))
    advice = recommend(check(reference, shifted, calibration), "champion")
    assert advice.actions == ("alert", "retrain")
    assert advice.alert
    assert advice.retrain
    assert advice.severity == "warning"
    assert any("rolling back would not help" in r for r in advice.reasons)


def test_canary_input_drift_is_context_for_the_judge_not_an_action(
    reference: pd.DataFrame, calibration: DriftCalibration
) -> None:
    """Input drift on a canary only informs the judge: no alert, no retrain."""
    shifted = scored(apply_scenario(generate(WINDOW_ROWS, 25), "covariate-shift", 1.0, seed=1))
    advice = recommend(check(reference, shifted, calibration), "canary")
    assert advice.actions == ("inform-judge",)
    assert not advice.alert
    assert not advice.retrain


def test_champion_prediction_drift_alone_alerts_without_retraining(
    reference: pd.DataFrame, calibration: DriftCalibration
) -> None:
    """Prediction drift alone on the champion alerts without retraining."""
    current = window(26)
    current = current.assign(probability=np.clip(current["probability"] * 1.6, 0, 1))
    advice = recommend(check(reference, current, calibration), "champion")
    assert advice.actions == ("alert",)


def test_a_clean_window_recommends_nothing(
    reference: pd.DataFrame, calibration: DriftCalibration
) -> None:
    """A clean window recommends no action at severity none, and serialises to JSON."""
    advice = recommend(check(reference, window(27), calibration), "champion")
    assert advice.actions == ()
    assert advice.severity == "none"
    json.dumps(advice.to_dict())
