"""The demo's checks: a scenario passes only when the controller and the registry agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from demo.training import annualised_debt_to_income
from demo.verdicts import (
    ScenarioResult,
    assess_canary,
    assess_drift,
    compact_judgement,
)
from monitoring.controller import CanaryReport, DriftReport
from registry import Action, DeploymentEvent, DeploymentState, EventStatus

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def canary(state: str, event_id: int | None = 7, reason: str = "roll back: PSI") -> CanaryReport:
    return CanaryReport(
        version=2, champion=1, started_at=NOW, window=2, state=state,  # type: ignore[arg-type]
        verdict=None, reason=reason, action="rejected", event_id=event_id,
    )  # fmt: skip


def test_a_rollback_passes_when_the_version_is_rejected_and_the_champion_stays() -> None:
    """Rolled back, event written, version rejected, champion unchanged: as expected."""
    outcome, passed, why = assess_canary(
        "rolled_back", canary("rolled_back"), version=2, rejected=True,
        champion_before=1, champion_after=1,
    )  # fmt: skip
    assert (outcome, passed, why) == ("rolled_back", True, "roll back: PSI")


@pytest.mark.parametrize(
    ("report", "rejected", "champion_after", "says"),
    [
        (None, False, 1, "no verdict"),
        (canary("paused", reason="pause and page a human"), False, 1, "expected rolled_back"),
        (canary("rolled_back", event_id=None), True, 1, "no event"),
        (canary("rolled_back"), False, 1, "not marked rejected"),
        (canary("rolled_back"), True, 2, "champion moved"),
    ],
)
def test_a_rollback_fails_when_anything_disagrees(
    report: CanaryReport | None, rejected: bool, champion_after: int, says: str
) -> None:
    """Each way the controller's word and the registry can disagree fails with its reason."""
    _, passed, why = assess_canary(
        "rolled_back", report, version=2, rejected=rejected,
        champion_before=1, champion_after=champion_after,
    )  # fmt: skip
    assert not passed
    assert says in why


def test_a_promotion_passes_only_when_the_registry_names_the_canary_champion() -> None:
    """The controller saying "promoted" is not enough: the champion alias must have moved."""
    report = canary("promoted", reason="promote: ...")
    ok = assess_canary("promoted", report, version=2, rejected=False,
                       champion_before=1, champion_after=2)  # fmt: skip
    stale = assess_canary("promoted", report, version=2, rejected=False,
                          champion_before=1, champion_after=1)  # fmt: skip
    assert ok[1]
    assert not stale[1]
    assert "champion is v1" in stale[2]


def drift_report(
    fire: bool = True,
    actions: tuple[str, ...] = ("alert", "retrain"),
    retrain: dict[str, object] | None = None,
) -> DriftReport:
    return DriftReport(
        variant="champion", version=3, status="drift", rows=400,
        reason="drifted: credit_score", share_drifted=1 / 13, drifted_features=("credit_score",),
        recommendation={"actions": list(actions)},
        retrain=retrain if retrain is not None else {"fire": fire, "reason": "cool-down"},
    )  # fmt: skip


def event(action: Action, event_id: int = 9) -> DeploymentEvent:
    return DeploymentEvent(
        id=event_id, model_name="m", action=action, status=EventStatus.APPLIED, alias="champion",
        from_version=3, to_version=2, state=DeploymentState(champion=2), actor="a", reason="r",
        evidence=None, details={}, status_reason=None, created_at=NOW, applied_at=NOW,
    )  # fmt: skip


def test_drift_passes_with_alert_retrain_and_no_moves() -> None:
    """Flagged, alert and retrain asked, the trigger fired, nothing moved: as expected."""
    assert assess_drift(drift_report(), [], champion_before=3, champion_after=3) == (
        "alert+retrain", True, "drifted: credit_score",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("drift", "moves", "after", "says"),
    [
        (None, [], 3, "flagged no drift"),
        (drift_report(), [event(Action.ROLLBACK)], 2, "aliases moved: rollback (event 9)"),
        (drift_report(), [], 2, "champion moved"),
        (drift_report(actions=("alert",)), [], 3, "not alert and retrain"),
        (drift_report(fire=False), [], 3, "cool-down"),
    ],
)
def test_drift_fails_on_a_rollback_or_a_missing_action(
    drift: DriftReport | None, moves: list[DeploymentEvent], after: int, says: str
) -> None:
    """A rollback for drift, a moved champion, or no retrain request all fail, with the reason."""
    _, passed, why = assess_drift(drift, moves, champion_before=3, champion_after=after)
    assert not passed
    assert says in why


def test_drift_in_the_retrain_cool_down_still_passes_as_asked_and_recorded() -> None:
    """Over the threshold but in the cool-down of an earlier alert: asked, recorded, not refired."""
    decision = {"fire": False, "drift_share": 1 / 13, "threshold": 0.05,
                "reason": "drift seen but a run started 9s ago (cool-down 6.0h)"}  # fmt: skip
    outcome, passed, why = assess_drift(
        drift_report(retrain=decision), [], champion_before=3, champion_after=3
    )
    assert (outcome, passed) == ("alert+retrain", True)
    assert "cool-down" in why


def test_drift_below_the_retrain_threshold_fails() -> None:
    """A trigger that said "no drift" (share under its threshold) is a misconfigured demo."""
    decision = {"fire": False, "drift_share": 1 / 13, "threshold": 0.3,
                "reason": "no drift: 8% of features drifted, threshold 30%"}  # fmt: skip
    _, passed, why = assess_drift(
        drift_report(retrain=decision), [], champion_before=3, champion_after=3
    )
    assert not passed
    assert "threshold 30%" in why


def test_the_judgement_is_compacted_to_each_signals_numbers() -> None:
    """Only the decision and the numbers of each signal are kept, by signal name."""
    judgement: dict[str, Any] = {
        "verdict": "rollback", "window": 2, "reason": "roll back",
        "signals": [{"name": "prediction_distribution", "decision": "worse", "estimate": 0.6,
                     "threshold": 0.3, "n_canary": 500, "n_champion": 510, "units": "PSI",
                     "reason": "long words"}],
    }  # fmt: skip
    compact = compact_judgement(judgement)
    signal = compact["signals"]["prediction_distribution"]
    assert (compact["verdict"], signal["decision"], signal["estimate"]) == (
        "rollback",
        "worse",
        0.6,
    )
    assert "reason" not in signal
    assert compact_judgement(None) == {}


def test_a_result_serialises_with_rounded_times() -> None:
    """Times are rounded for the summary; unset ones stay null."""
    result = ScenarioResult("k", "t", "promoted", seconds_to_verdict=12.34567)
    data = result.to_dict()
    assert data["seconds_to_verdict"] == 12.35
    assert data["verdict_at"] is None


def test_the_upstream_defect_annualises_debt_to_income_only() -> None:
    """A twelfth of the ratio, nulls kept, every other column and the input untouched."""
    frame = pd.DataFrame({"debt_to_income": [0.36, None, 1.2], "age": [30, 40, 50]})
    out = annualised_debt_to_income(frame)
    assert out["debt_to_income"].tolist()[0] == pytest.approx(0.03)
    assert pd.isna(out["debt_to_income"].iloc[1])
    assert out["age"].tolist() == [30, 40, 50]
    assert frame["debt_to_income"].iloc[0] == 0.36
