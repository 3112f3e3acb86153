from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from pipeline.metrics import (
    brier,
    classification_metrics,
    expected_calibration_error,
    log_loss,
    roc_auc,
    slice_metrics,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = (rng.random(5_000) < 0.2).astype(int)
    # Rounded scores create many ties, which rank-based AUC must count as halves.
    p = np.clip(np.round(0.2 + 0.3 * y + rng.normal(0, 0.2, y.size), 2), 0.0, 1.0)
    return y, p


def test_roc_auc_matches_scikit_learn_with_ties(scored: tuple[np.ndarray, np.ndarray]) -> None:
    """ROC AUC equals scikit-learn's on tied scores."""
    y, p = scored
    assert roc_auc(y, p) == pytest.approx(sk.roc_auc_score(y, p), abs=1e-12)


def test_log_loss_matches_scikit_learn(scored: tuple[np.ndarray, np.ndarray]) -> None:
    """Log loss equals scikit-learn's with the same clipping."""
    y, p = scored
    assert log_loss(y, p) == pytest.approx(sk.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15)))


def test_log_loss_stays_finite_for_confident_mistakes() -> None:
    """Log loss stays finite for predictions of exactly 0 or 1 that are wrong."""
    assert np.isfinite(log_loss([1, 0], [0.0, 1.0]))


def test_brier_matches_scikit_learn(scored: tuple[np.ndarray, np.ndarray]) -> None:
    """The Brier score equals scikit-learn's."""
    y, p = scored
    assert brier(y, p) == pytest.approx(sk.brier_score_loss(y, p))


def test_calibration_error_of_a_hand_worked_example() -> None:
    """Expected calibration error matches a hand-worked two-bin example."""
    # Bin [0.1, 0.2): predictions 0.1, 0.1 vs rate 0.5 -> gap 0.4 on 2 rows.
    # Bin [0.9, 1.0]: predictions 0.9, 1.0 vs rate 1.0 -> gap 0.05 on 2 rows.
    y = [0, 1, 1, 1]
    p = [0.1, 0.1, 0.9, 1.0]
    assert expected_calibration_error(y, p, bins=10) == pytest.approx((2 * 0.4 + 2 * 0.05) / 4)


def test_calibration_error_is_near_zero_for_calibrated_scores() -> None:
    """Calibrated scores have an expected calibration error under 0.01."""
    rng = np.random.default_rng(1)
    p = rng.random(200_000)
    y = (rng.random(p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.01


def test_calibration_error_sees_a_systematic_overestimate() -> None:
    """Scores 0.2 too high have an expected calibration error of about 0.2."""
    rng = np.random.default_rng(1)
    p = rng.random(50_000) * 0.5
    y = (rng.random(p.size) < p).astype(int)
    assert expected_calibration_error(y, p + 0.2) == pytest.approx(0.2, abs=0.01)


def test_auc_is_undefined_for_a_single_class() -> None:
    """AUC raises for one class, and the metrics report it as None."""
    with pytest.raises(ValueError, match="only one class"):
        roc_auc([1, 1], [0.2, 0.3])
    assert classification_metrics([1, 1], [0.2, 0.3]).auc is None


def test_mismatched_lengths_are_refused() -> None:
    """Labels and scores of different lengths are refused with both lengths named."""
    with pytest.raises(ValueError, match="y_true has 2 values but y_score has 1"):
        brier([0, 1], [0.5])


def test_slice_metrics_compute_each_slice_on_its_own_rows(
    scored: tuple[np.ndarray, np.ndarray],
) -> None:
    """Slice metrics are computed on each slice's own rows only."""
    y, p = scored
    keys = np.where(np.arange(y.size) % 3 == 0, "a", "b")
    result = slice_metrics(y, p, keys)
    assert list(result) == ["a", "b"]
    assert result["a"].rows + result["b"].rows == y.size
    mask = keys == "a"
    assert result["a"].auc == pytest.approx(sk.roc_auc_score(y[mask], p[mask]))
    assert result["b"].brier == pytest.approx(sk.brier_score_loss(y[~mask], p[~mask]))


def test_classification_metrics_are_json_ready(scored: tuple[np.ndarray, np.ndarray]) -> None:
    """Classification metrics serialise to a dict of plain numbers with the expected keys."""
    y, p = scored
    as_dict = classification_metrics(y, p).to_dict()
    assert set(as_dict) == {
        "rows",
        "positive_rate",
        "mean_prediction",
        "auc",
        "log_loss",
        "brier",
        "ece",
    }
    assert all(isinstance(v, int | float) for v in as_dict.values())
