"""The demo's summary: ok only when every scenario passed, written atomically, readable."""

from __future__ import annotations

import pytest
from rich.console import Console

from demo.summary import build_summary, headline, summary_table
from demo.verdicts import ScenarioResult

pytestmark = pytest.mark.unit


def result(key: str, passed: bool = True, **evidence: object) -> ScenarioResult:
    return ScenarioResult(key, key, "x", outcome="x" if passed else "y", passed=passed,
                          why="" if passed else "expected x", evidence=dict(evidence))  # fmt: skip


def summary(results: list[ScenarioResult], error: str | None = None) -> dict[str, object]:
    return build_summary(
        results, seconds=12.345, config={"traffic_rate": 150}, setup={}, deployment={},
        events=["e1"], files={"summary": "s"}, error=error,
    )  # fmt: skip


def test_ok_only_when_every_scenario_passed_and_nothing_failed() -> None:
    """One failed scenario, an early stop or no scenario at all make the summary not ok."""
    assert summary([result("a"), result("b")])["ok"] is True
    assert summary([result("a"), result("b", passed=False)])["ok"] is False
    assert summary([result("a")], error="interrupted")["ok"] is False
    assert summary([])["ok"] is False
    assert summary([result("a")])["seconds"] == 12.3


def test_the_headline_quotes_the_numbers_that_decided() -> None:
    """A canary's row shows PSI against its threshold and the labelled log loss."""
    judgement = {"signals": {
        "prediction_distribution": {"decision": "worse", "estimate": 0.6, "threshold": 0.31},
        "quality": {"decision": "undecided", "estimate": 0.044, "n_canary": 232},
    }}  # fmt: skip
    text = headline(result("skew", judgement=judgement).to_dict())
    assert "PSI 0.6 vs threshold 0.31 (worse)" in text
    assert "+0.044 nats on 232 labels" in text


def test_the_headline_of_drift_says_what_drifted_and_what_was_asked() -> None:
    """The drift row names the features, the actions, the trigger and the moves."""
    text = headline(result(
        "drift", drift_check={"drifted_features": ["credit_score"], "share_drifted": 0.077,
                              "rows": 400},
        recommendation={"actions": ["alert", "retrain"]}, retrain_decision={"fire": True},
        events_while_drifting=[],
    ).to_dict())  # fmt: skip
    assert "drifted: credit_score" in text
    assert "retrain trigger fired" in text
    assert "events while drifting: 0" in text


def test_the_table_says_which_scenario_failed_and_why() -> None:
    """A failed row is marked and carries its reason."""
    console = Console(width=160, record=True)
    console.print(summary_table(summary([result("good-canary"), result("skew", passed=False)])))
    text = console.export_text()
    assert "✓ x" in text
    assert "✗ y" in text
    assert "expected x" in text
