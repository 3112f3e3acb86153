from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import TARGET, CategoricalFeature, NumericFeature, feature
from pipeline.data import default_probability, generate
from pipeline.metrics import roc_auc
from pipeline.scenarios import (
    CREDIT_SCORE_STD,
    INCOME_SKEW_DIVISOR,
    SCENARIOS,
    UNSEEN_PURPOSE,
    InvalidMagnitudeError,
    ScenarioError,
    UnknownScenarioError,
    _relabel,
    apply_scenario,
    blend_risk,
    scenario_names,
)

pytestmark = pytest.mark.unit

NAMES = (
    "covariate-shift",
    "unseen-category",
    "null-spike",
    "prior-shift",
    "concept-drift",
    "serving-skew",
    "label-noise",
)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate(10_000, seed=21)


def numeric(name: str) -> NumericFeature:
    spec = feature(name)
    assert isinstance(spec, NumericFeature)
    return spec


def unchanged_except(before: pd.DataFrame, after: pd.DataFrame, columns: set[str]) -> None:
    others = [c for c in before.columns if c not in columns]
    pd.testing.assert_frame_equal(before[others], after[others])


def test_the_seven_named_scenarios_exist() -> None:
    """Exactly the seven named scenarios are registered, in order."""
    assert scenario_names() == NAMES
    assert set(SCENARIOS) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_scenario_is_described_in_one_line(name: str) -> None:
    """Each scenario has a one-line summary, a default inside its range, and a side."""
    scenario = SCENARIOS[name]
    assert scenario.name == name
    assert scenario.summary
    assert "\n" not in scenario.summary
    low, high = scenario.magnitude_range
    assert low <= scenario.default_magnitude <= high
    assert scenario.applies_to in {"training", "serving", "both"}


def test_only_label_noise_is_training_side_and_only_skew_is_serving_side() -> None:
    """Only label noise is training-side and only serving skew is serving-side."""
    assert [n for n in NAMES if SCENARIOS[n].applies_to == "training"] == ["label-noise"]
    assert [n for n in NAMES if SCENARIOS[n].applies_to == "serving"] == ["serving-skew"]


def test_an_unknown_name_lists_the_valid_ones(frame: pd.DataFrame) -> None:
    """An unknown scenario name is refused with the list of valid names."""
    expected = r"unknown scenario 'drift'; valid: covariate-shift, .*null-spike"
    with pytest.raises(UnknownScenarioError, match=expected):
        apply_scenario(frame, "drift")


@pytest.mark.parametrize("magnitude", [-0.1, 1.5, float("nan"), float("inf")])
def test_an_out_of_range_magnitude_is_refused_with_the_range(
    frame: pd.DataFrame, magnitude: float
) -> None:
    """A negative, too large, NaN or infinite magnitude is refused, stating the range."""
    with pytest.raises(
        InvalidMagnitudeError, match=r"null-spike: magnitude must be between 0 and 1"
    ):
        apply_scenario(frame, "null-spike", magnitude)


@pytest.mark.parametrize("name", NAMES)
def test_no_scenario_modifies_its_input(frame: pd.DataFrame, name: str) -> None:
    """No scenario modifies the frame it is given."""
    before = frame.copy(deep=True)
    apply_scenario(frame, name, seed=1)
    pd.testing.assert_frame_equal(frame, before)


@pytest.mark.parametrize("name", NAMES)
def test_a_scenario_is_deterministic_for_a_seed(frame: pd.DataFrame, name: str) -> None:
    """Each scenario gives the same frame for the same seed."""
    pd.testing.assert_frame_equal(
        apply_scenario(frame, name, seed=4), apply_scenario(frame, name, seed=4)
    )


@pytest.mark.parametrize("name", NAMES)
def test_a_scenario_keeps_the_columns(frame: pd.DataFrame, name: str) -> None:
    """Each scenario keeps the columns and their order."""
    assert list(apply_scenario(frame, name).columns) == list(frame.columns)


def test_covariate_shift_moves_credit_score_down_by_magnitude_stds(frame: pd.DataFrame) -> None:
    """Covariate shift lowers credit_score by magnitude standard deviations, within the contract."""
    assert frame["credit_score"].std() == pytest.approx(CREDIT_SCORE_STD, rel=0.03)
    one = apply_scenario(frame, "covariate-shift", 1.0)
    two = apply_scenario(frame, "covariate-shift", 2.0)
    drop_one = frame["credit_score"].mean() - one["credit_score"].mean()
    drop_two = frame["credit_score"].mean() - two["credit_score"].mean()
    assert drop_one == pytest.approx(CREDIT_SCORE_STD, rel=0.03)
    assert drop_two > 1.9 * drop_one  # a little under 2x: a few scores hit the contract floor
    assert two["credit_score"].min() >= numeric("credit_score").minimum
    assert two["credit_score"].dtype == frame["credit_score"].dtype
    unchanged_except(frame, one, {"credit_score", TARGET})


def test_covariate_shift_labels_follow_the_unchanged_risk_model(frame: pd.DataFrame) -> None:
    """Covariate shift keeps P(default | x): the new default rate matches the new features."""
    shifted = apply_scenario(frame, "covariate-shift", 1.5, seed=2)
    expected = default_probability(shifted).mean()
    assert shifted[TARGET].mean() == pytest.approx(expected, abs=0.015)
    assert shifted[TARGET].mean() > frame[TARGET].mean() + 0.05


def test_a_one_row_batch_shifts_like_a_large_one(frame: pd.DataFrame) -> None:
    """A one-row batch is shifted by the same fixed amount as a large one."""
    one_row = apply_scenario(frame.head(1), "covariate-shift", 1.0)
    assert one_row["credit_score"].iloc[0] == frame["credit_score"].iloc[0] - CREDIT_SCORE_STD


def test_zero_covariate_shift_changes_nothing(frame: pd.DataFrame) -> None:
    """A covariate shift of magnitude zero returns the frame unchanged."""
    pd.testing.assert_frame_equal(apply_scenario(frame, "covariate-shift", 0.0), frame)


@pytest.mark.parametrize("share", [0.0, 0.05, 0.5])
def test_unseen_category_puts_exactly_a_share_of_rows_in_a_new_purpose(
    frame: pd.DataFrame, share: float
) -> None:
    """Unseen-category moves exactly the given share of rows to a purpose outside the contract."""
    out = apply_scenario(frame, "unseen-category", share)
    assert (out["loan_purpose"] == UNSEEN_PURPOSE).sum() == round(share * len(frame))
    purpose = feature("loan_purpose")
    assert isinstance(purpose, CategoricalFeature)
    assert UNSEEN_PURPOSE not in purpose.categories
    unchanged_except(frame, out, {"loan_purpose"})


@pytest.mark.parametrize("share", [0.01, 0.3, 0.9])
def test_null_spike_sets_the_null_share_of_debt_to_income(
    frame: pd.DataFrame, share: float
) -> None:
    """Null spike raises debt_to_income's nulls to the given share, never lowering them."""
    out = apply_scenario(frame, "null-spike", share)
    assert out["debt_to_income"].isna().sum() == max(
        round(share * len(frame)), frame["debt_to_income"].isna().sum()
    )
    unchanged_except(frame, out, {"debt_to_income"})


def test_the_default_null_spike_is_far_above_the_contract(frame: pd.DataFrame) -> None:
    """The default null spike is over five times the contract's null rate."""
    out = apply_scenario(frame, "null-spike")
    assert out["debt_to_income"].isna().mean() > 5 * feature("debt_to_income").max_null_rate


@pytest.mark.parametrize("rate", [0.05, 0.35, 0.6])
def test_prior_shift_resamples_to_the_requested_default_rate(
    frame: pd.DataFrame, rate: float
) -> None:
    """Prior shift resamples to the requested default rate, keeping the row count."""
    out = apply_scenario(frame, "prior-shift", rate)
    assert len(out) == len(frame)
    assert out[TARGET].mean() == pytest.approx(rate, abs=1 / len(frame))


def test_prior_shift_keeps_the_features_of_each_class(frame: pd.DataFrame) -> None:
    """Label shift: P(x | y) is unchanged, only P(y) moves."""
    out = apply_scenario(frame, "prior-shift", 0.4)
    for label in (0, 1):
        before = frame.loc[frame[TARGET] == label, "credit_score"].mean()
        after = out.loc[out[TARGET] == label, "credit_score"].mean()
        assert after == pytest.approx(before, abs=4.0)


def test_label_scenarios_need_labels(frame: pd.DataFrame) -> None:
    """Prior shift and label noise refuse a frame without the label column."""
    features = frame.drop(columns=[TARGET])
    for name in ("prior-shift", "label-noise"):
        with pytest.raises(ScenarioError, match="no 'default' column"):
            apply_scenario(features, name)


def test_concept_drift_changes_labels_not_features(frame: pd.DataFrame) -> None:
    """Concept drift changes over 5% of labels, no feature, and keeps the default rate."""
    out = apply_scenario(frame, "concept-drift", 1.0)
    unchanged_except(frame, out, {TARGET})
    assert (out[TARGET] != frame[TARGET]).mean() > 0.05
    assert out[TARGET].mean() == pytest.approx(frame[TARGET].mean(), abs=0.03)


def test_concept_drift_labels_follow_the_drifted_risk_function(frame: pd.DataFrame) -> None:
    """Concept-drifted labels are ranked better by the drifted risk function than the old."""
    out = apply_scenario(frame, "concept-drift", 1.0)
    old_risk = roc_auc(out[TARGET], default_probability(frame))
    new_risk = roc_auc(out[TARGET], default_probability(frame, blend_risk(1.0)))
    assert new_risk > old_risk + 0.03


def test_concept_drift_grows_with_magnitude(frame: pd.DataFrame) -> None:
    """Concept drift changes no label at zero and more labels as the magnitude grows."""
    changed = [
        (apply_scenario(frame, "concept-drift", m)[TARGET] != frame[TARGET]).mean()
        for m in (0.0, 0.5, 1.0)
    ]
    assert changed[0] == 0.0
    assert changed[0] < changed[1] < changed[2]


def test_concept_drift_without_labels_leaves_a_serving_batch_alone(frame: pd.DataFrame) -> None:
    """Concept drift leaves a batch without labels unchanged."""
    features = frame.drop(columns=[TARGET])
    pd.testing.assert_frame_equal(apply_scenario(features, "concept-drift"), features)


def test_serving_skew_sends_income_in_thousands_still_in_range(frame: pd.DataFrame) -> None:
    """Serving skew divides annual_income into thousands, still within its contract range."""
    out = apply_scenario(frame, "serving-skew", 1.0)
    np.testing.assert_allclose(out["annual_income"], frame["annual_income"] / INCOME_SKEW_DIVISOR)
    assert out["annual_income"].min() >= numeric("annual_income").minimum
    unchanged_except(frame, out, {"annual_income"})


def test_partial_serving_skew_hits_a_share_of_rows(frame: pd.DataFrame) -> None:
    """A partial serving skew changes exactly that share of rows."""
    out = apply_scenario(frame, "serving-skew", 0.25)
    assert (out["annual_income"] != frame["annual_income"]).sum() == round(0.25 * len(frame))


@pytest.mark.parametrize("share", [0.0, 0.1, 0.3])
def test_label_noise_flips_exactly_a_share_of_labels(frame: pd.DataFrame, share: float) -> None:
    """Label noise flips exactly the given share of labels, nothing else, still 0 or 1."""
    out = apply_scenario(frame, "label-noise", share)
    assert (out[TARGET] != frame[TARGET]).sum() == round(share * len(frame))
    unchanged_except(frame, out, {TARGET})
    assert set(out[TARGET].unique()) <= {0, 1}


def test_the_coupling_draws_from_the_new_probabilities_and_changes_few_labels() -> None:
    """Relabelling hits the new default rate and only moves labels the way the risk moved."""
    rng = np.random.default_rng(0)
    n = 200_000
    p_old = np.full(n, 0.2)
    labels = (rng.random(n) < p_old).astype(np.int64)
    raised = _relabel(labels, p_old, np.full(n, 0.5), rng)
    lowered = _relabel(labels, p_old, np.full(n, 0.1), rng)
    assert raised.mean() == pytest.approx(0.5, abs=0.005)
    assert lowered.mean() == pytest.approx(0.1, abs=0.005)
    assert not ((labels == 1) & (raised == 0)).any()  # rising risk never clears a default
    assert not ((labels == 0) & (lowered == 1)).any()  # falling risk never adds one


@pytest.mark.parametrize("name", ["null-spike", "concept-drift", "covariate-shift"])
def test_a_credit_scenario_on_other_data_is_refused_by_name(frame: pd.DataFrame, name: str) -> None:
    """Rows without the credit columns a scenario needs get a ScenarioError, not a KeyError."""
    other = frame[["age", TARGET]]
    with pytest.raises(ScenarioError, match="only prior-shift, label-noise apply"):
        apply_scenario(other, name, seed=0)


def test_label_scenarios_apply_to_any_data(frame: pd.DataFrame) -> None:
    """label-noise and prior-shift need nothing but the label: they run on any columns."""
    other = frame[["age", TARGET]]
    noisy = apply_scenario(other, "label-noise", 0.1, seed=0)
    assert (noisy[TARGET] != other[TARGET]).sum() == round(0.1 * len(other))
