"""Input and prediction drift of one inference-log window against a model version's reference.

A drift check compares a window of logged traffic (one variant) with the reference sample that
was logged with the model version serving it (training rows plus the model's probability in a
``prediction`` column, see ``pipeline/tracking.py::reference_sample``). It answers three
questions per window: which features moved (a distance per feature, and whether it is beyond
what sampling noise explains), did the share of nulls move, and did the score distribution move.

**Distances, not p-values.** Every score is an effect size: the Wasserstein distance normed by
the reference's standard deviation for numeric columns ("how many reference standard deviations
of mass had to move") and the Jensen-Shannon distance for categorical ones (bounded in [0, 1],
and finite when a category appears that the reference never had, where PSI and KL blow up).
A p-value answers "is there *any* difference", and on a few thousand rows the answer is yes for
differences nobody cares about, so a fixed ``p < 0.05`` rule turns more traffic into more alerts.
A distance stays put as the sample grows; only its noise shrinks. The exported gauge
(``interfaces/metric_names.py::FEATURE_DRIFT_SCORE``) is this distance: higher means more drift.

**Thresholds are calibrated, not guessed.** What a distance looks like when nothing changed
depends on the column and on the window size (the noise shrinks like ``1/sqrt(rows)``). So
:func:`calibrate` draws ``calibration_chunks`` "nothing changed" windows from the reference
itself: each round splits the reference at random into a pseudo-window of ``window_rows`` rows
and a pseudo-reference of the rest, and scores one against the other with the very distance the
check uses. From the mean and standard deviation of those scores, a column's threshold is the
point the no-change score exceeds with probability ``column_alpha``, and at least
``threshold_floor`` (so a column whose reference is nearly constant does not call a negligible
change drift). The null share gets the same treatment, on ``|window share - reference share|``.

The tail is modelled by a Gamma distribution with that mean and standard deviation, not by
``mean + z * std``: distances are non-negative and skewed to the right, and a normal model puts
their upper tail several times too low. On this project's generator (8 references of 10,000
rows, 50 clean 2,000-row windows each, 100 calibration windows) the normal rule false-alarmed
on 3.5% of windows at the same ``column_alpha`` and the Gamma rule on 0.25%, against a target
of 0.13%; neither lost the scenarios (a 0.2-sigma shift of ``credit_score``, 1% of rows with an
unseen ``loan_purpose``, a 4% null share on ``debt_to_income`` were all caught in 20 of 20
windows). ``tail_model="normal"`` gives the textbook rule.

**Many features at once.** Each window runs one test per column (features and prediction), and
an alert fires on *any* of them, so the per-column false-alarm probability is the family's split
evenly (Bonferroni): ``column_alpha = Phi(-sigmas) / k`` for ``k`` columns. With ``sigmas=3``
the window as a whole should false-alarm about as often as one 3-sigma event (0.13%), however
many features the contract grows. Separately, ``dataset_drifted`` says the drift is *broad*:
at least ``share_threshold`` of the features moved together, the usual signature of an upstream
change (a unit change, a broken join) rather than of one feature's world moving. Whatever the
per-window rate, a check that runs every few minutes will false-alarm now and then: alert rules
should ask for the drift to persist over consecutive windows before paging anyone.

**Windows smaller than ``min_window_rows`` are not judged** (status ``insufficient-data``): with
too few rows every distance is mostly noise and the calibrated thresholds are wide anyway.
Thresholds calibrated for ``w``-row windows are only valid for windows of at least ``w`` rows
(a smaller window is noisier); :class:`DriftDetector` keeps one calibration per window size on a
doubling ladder and uses the largest one not above the window, which errs towards fewer alerts.

**One distance function for calibration and check.** Calibration scores a hundred
pseudo-windows per column, and an Evidently ``Report`` costs 0.5 to 1.5 s per window (most of it
drawing plots), so the
distances are computed here with numpy/scipy (:func:`column_distance`) for *both* the calibration
and the check. They are ports of Evidently 0.7's own stattests (``wasserstein``,
``jensenshannon``, ``psi``: same normalisation, same binning, same treatment of nulls and
infinities), and ``tests/unit/monitoring/test_drift.py`` pins that the Evidently HTML report
(:func:`write_html_report`, ``monitoring/drift/report.py``) shows the same numbers.

**Policy** (:func:`recommend`): input drift on the champion raises an alert and asks the
pipeline's ``drift`` training trigger (``ci/triggers.py::drift``) for a retrain; it is never a
rollback reason, because the previous model would see exactly the same inputs. On a canary, input
drift is context for the canary judge, not a rollback signal either: canary and champion are
served the same traffic. Whether the canary's *predictions* depart from the champion's is the
judge's question, answered on both variants' live scores, not here.

The package, module by module: :mod:`~monitoring.drift.config` (parameters and errors),
:mod:`~monitoring.drift.distances`, :mod:`~monitoring.drift.calibration`,
:mod:`~monitoring.drift.check`, :mod:`~monitoring.drift.report` (Evidently's HTML),
:mod:`~monitoring.drift.detector` (calibrations cached per window size) and
:mod:`~monitoring.drift.policy`.
"""

from monitoring.drift.calibration import ColumnCalibration, DriftCalibration, calibrate
from monitoring.drift.check import DriftResult, FeatureDrift, check_drift
from monitoring.drift.config import (
    CalibrationError,
    CalibrationMismatchError,
    DriftAction,
    DriftConfig,
    DriftError,
    DriftInputError,
    DriftStatus,
    Severity,
)
from monitoring.drift.detector import DriftDetector
from monitoring.drift.distances import column_distance
from monitoring.drift.policy import DriftRecommendation, recommend
from monitoring.drift.report import write_html_report

__all__ = [
    "CalibrationError",
    "CalibrationMismatchError",
    "ColumnCalibration",
    "DriftAction",
    "DriftCalibration",
    "DriftConfig",
    "DriftDetector",
    "DriftError",
    "DriftInputError",
    "DriftRecommendation",
    "DriftResult",
    "DriftStatus",
    "FeatureDrift",
    "Severity",
    "calibrate",
    "check_drift",
    "column_distance",
    "recommend",
    "write_html_report",
]
