"""The training-trigger rules: each fires when it should and declines, with a reason, otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ci import triggers
from ci.triggers import TriggerKind

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_new_data_fires_without_a_champion() -> None:
    """With no champion there is nothing to compare against, so new data always trains."""
    decision = triggers.new_data("sha256:abc", None)
    assert decision.fire
    assert decision.kind is TriggerKind.NEW_DATA


def test_new_data_declines_when_the_champion_saw_the_same_dataset() -> None:
    """Identical digests mean nothing new: the trigger says so and does not fire."""
    decision = triggers.new_data("sha256:abcdef123456", "sha256:abcdef123456")
    assert not decision.fire
    assert "nothing new" in decision.reason


def test_new_data_fires_when_the_digest_differs() -> None:
    """A different digest is new data and names both digests."""
    decision = triggers.new_data("sha256:111111111111", "sha256:222222222222")
    assert decision.fire
    assert "sha256:11111" in decision.reason
    assert "sha256:22222" in decision.reason


def test_schedule_declines_a_recent_run_and_fires_an_old_one() -> None:
    """The schedule fires only once the newest run is older than the allowed age."""
    recent = triggers.schedule(NOW - timedelta(hours=2), timedelta(hours=24), now=NOW)
    stale = triggers.schedule(NOW - timedelta(hours=30), timedelta(hours=24), now=NOW)
    assert not recent.fire
    assert "nothing to do" in recent.reason
    assert stale.fire


def test_schedule_fires_when_nothing_was_ever_trained() -> None:
    """No run at all is the stalest possible state."""
    assert triggers.schedule(None, timedelta(hours=24), now=NOW).fire


def test_manual_always_fires_but_needs_a_reason() -> None:
    """A person may always retrain, and the audit log must say why."""
    assert triggers.manual("ana@host", "new features").fire
    with pytest.raises(ValueError, match="needs a reason"):
        triggers.manual("ana@host", "  ")


def test_drift_fires_above_threshold_once_per_cooldown() -> None:
    """Drift above the threshold retrains, but one episode starts at most one run per cool-down."""
    fired = triggers.drift(0.5, 0.3, None, timedelta(hours=6), now=NOW, evidence="report.html")
    cooling = triggers.drift(0.5, 0.3, NOW - timedelta(hours=1), timedelta(hours=6), now=NOW)
    again = triggers.drift(0.5, 0.3, NOW - timedelta(hours=7), timedelta(hours=6), now=NOW)
    assert fired.fire
    assert fired.details["evidence"] == "report.html"
    assert not cooling.fire
    assert "cool-down" in cooling.reason
    assert again.fire


def test_drift_below_threshold_does_nothing() -> None:
    """A little drift is not a reason to retrain."""
    decision = triggers.drift(0.1, 0.3, None, timedelta(hours=6), now=NOW)
    assert not decision.fire
    assert "no drift" in decision.reason


def test_drift_share_outside_unit_interval_is_refused() -> None:
    """A share is a fraction; anything else is a caller bug named in the message."""
    with pytest.raises(ValueError, match="drift_share"):
        triggers.drift(1.5, 0.3, None, timedelta(hours=6), now=NOW)
