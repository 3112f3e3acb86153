"""The controller's settings, its retrain trigger and how it finds when a canary started."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from ci.triggers import drift
from monitoring.controller import DriftRetrainTrigger, RetrainRequest, canary_started_at
from monitoring.judge import JudgeConfig
from monitoring.settings import MonitorSettings, MonitorSettingsError
from registry import Action, DeploymentEvent, DeploymentState, EventStatus

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


# --- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["changeme", "secret", "short-token"])
def test_a_placeholder_webhook_token_is_refused_outside_dev_mode(token: str) -> None:
    """A placeholder webhook token is refused in production and accepted in dev mode."""
    with pytest.raises(ValidationError, match="MLPLAT_MONITOR_WEBHOOK_TOKEN must be a secret"):
        MonitorSettings(webhook_token=token, environment="production")
    assert MonitorSettings(webhook_token=token, environment="dev").webhook_enabled


def test_no_token_disables_the_webhook_without_refusing_to_start() -> None:
    """Without a token the webhook is off, and the settings still load in production."""
    settings = MonitorSettings(environment="production")
    assert not settings.webhook_enabled


def test_settings_read_the_environment_with_nested_judge_fields(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Settings read MLPLAT_ variables, nested judge fields and the service's log URL."""
    monkeypatch.setenv("MLPLAT_HOME", str(tmp_path))
    monkeypatch.setenv("MLPLAT_MONITOR_JUDGE__ERROR_RATE_FLOOR", "0.002")
    monkeypatch.setenv("MLPLAT_MONITOR_SERVING_METRICS_URLS", '["http://a:8000/metrics"]')
    monkeypatch.setenv("MLPLAT_SERVING_INFERENCE_LOG_URL", "sqlite:////var/log.db")
    settings = MonitorSettings()
    assert settings.judge_config().error_rate_floor == 0.002
    assert settings.serving_metrics_urls == ("http://a:8000/metrics",)
    assert settings.resolved_inference_log_url == "sqlite:////var/log.db"
    assert settings.resolved_report_dir == tmp_path / "drift-reports"


def test_the_inference_log_defaults_to_the_services_default_file(tmp_path: Path) -> None:
    """The inference log defaults to the service's SQLite file under the home folder."""
    settings = MonitorSettings(home=tmp_path)
    assert settings.resolved_inference_log_url == f"sqlite:///{tmp_path.resolve()}/inference-log.db"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("prometheus_url", "prometheus:9090", "must be an http:// or https:// URL"),
        ("serving_metrics_urls", ["serving:8000/metrics"], "must be an http:// or https:// URL"),
        ("interval_seconds", 0, "greater than 0"),
        ("retrain_command", [], "give the program and its arguments"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(field: str, value: object, message: str) -> None:
    """A bad URL, interval or retrain command is refused with a message naming the field."""
    with pytest.raises(ValidationError, match=message) as info:
        MonitorSettings(**{field: value})  # type: ignore[arg-type]
    assert field in str(info.value)


def test_a_judge_config_file_replaces_the_defaults(tmp_path: Path) -> None:
    """A judge config file's values replace the JudgeConfig defaults."""
    path = tmp_path / "judge.yml"
    path.write_text("min_windows_before_promote: 5\nerror_rate_floor: 0.003\n", encoding="utf-8")
    config = MonitorSettings(judge_config_file=path).judge_config()
    assert config == JudgeConfig(min_windows_before_promote=5, error_rate_floor=0.003)


def test_a_bad_judge_config_file_is_refused_naming_the_field(tmp_path: Path) -> None:
    """An invalid or missing judge config file raises MonitorSettingsError saying why."""
    path = tmp_path / "judge.yml"
    path.write_text("error_rate_floor: 0.5\nerror_rate_margin: 0.01\n", encoding="utf-8")
    with pytest.raises(MonitorSettingsError, match=r"error_rate_floor .* must not exceed"):
        MonitorSettings(judge_config_file=path).judge_config()
    with pytest.raises(MonitorSettingsError, match=r"missing\.yml.*No such file"):
        MonitorSettings(judge_config_file=tmp_path / "missing.yml").judge_config()


def test_a_judge_file_and_judge_variables_together_are_refused(tmp_path: Path) -> None:
    """A judge config file and judge settings given together are refused."""
    with pytest.raises(ValidationError, match="judge_config_file and judge"):
        MonitorSettings(judge_config_file=tmp_path / "j.yml", judge=JudgeConfig())


# --- when did the canary start? -------------------------------------------------------------------


def event(number: int, action: Action, state: DeploymentState) -> DeploymentEvent:
    at = T0 + timedelta(minutes=number)
    return DeploymentEvent(
        id=number, model_name="m", action=action, status=EventStatus.APPLIED, alias=None,
        from_version=None, to_version=None, state=state, actor="t", reason="r", evidence=None,
        details={}, status_reason=None, created_at=at, applied_at=at,
    )  # fmt: skip


def newest_first(*events: DeploymentEvent) -> list[DeploymentEvent]:
    return sorted(events, key=lambda e: e.id, reverse=True)


def test_the_canary_starts_when_it_first_got_traffic_and_a_ramp_keeps_that_start() -> None:
    """A canary starts when it first got traffic; a later weight change keeps that start."""
    history = newest_first(
        event(1, Action.BOOTSTRAP, DeploymentState(champion=1)),
        event(2, Action.CHALLENGER, DeploymentState(champion=1, challenger=2)),
        event(3, Action.CANARY, DeploymentState(champion=1, challenger=2, canary_weight=0.1)),
        event(4, Action.REGISTER, DeploymentState(champion=1, challenger=2, canary_weight=0.1)),
        event(5, Action.CANARY, DeploymentState(champion=1, challenger=2, canary_weight=0.5)),
    )
    assert canary_started_at(history, 2) == T0 + timedelta(minutes=3)


def test_a_resumed_canary_starts_afresh_and_an_unknown_one_has_no_start() -> None:
    """A paused then resumed canary starts at the resume; an unknown version has no start."""
    live = DeploymentState(champion=1, challenger=2, canary_weight=0.2)
    history = newest_first(
        event(1, Action.CANARY, live),
        event(2, Action.CANARY, DeploymentState(champion=1, challenger=2)),  # paused
        event(3, Action.CANARY, live),  # resumed
    )
    assert canary_started_at(history, 2) == T0 + timedelta(minutes=3)
    assert canary_started_at(history, 3) is None
    assert canary_started_at([], 2) is None


# --- the retrain trigger --------------------------------------------------------------------------


def request(at: datetime, share: float = 0.5) -> RetrainRequest:
    return RetrainRequest(
        model_version=1, drift_share=share, drifted_features=("credit_score",),
        severity="warning", reasons=("input drift",), evidence="/reports/v1.html", at=at,
    )  # fmt: skip


def test_the_retrain_trigger_fires_once_per_cooldown_and_remembers_across_restarts(
    tmp_path: Path,
) -> None:
    """The retrain trigger fires once per cooldown, not below threshold, and persists decisions."""
    state = tmp_path / "monitor" / "retrain-decisions.json"
    trigger = DriftRetrainTrigger(state, threshold=0.3, cooldown=timedelta(hours=6), rule=drift)
    first = trigger(request(T0))
    assert first.fire
    assert first.details["command"] is None
    assert not DriftRetrainTrigger(state, 0.3, timedelta(hours=6), rule=drift)(
        request(T0 + timedelta(hours=1))
    ).fire
    below = trigger(request(T0 + timedelta(hours=7), share=0.1))
    assert not below.fire
    assert "no drift" in below.reason
    assert trigger(request(T0 + timedelta(hours=7))).fire
    recorded = json.loads(state.read_text(encoding="utf-8"))
    assert [d["fire"] for d in recorded["decisions"]] == [True, False, False, True]
    assert recorded["last_fired_at"] == (T0 + timedelta(hours=7)).isoformat()


def test_the_retrain_trigger_starts_its_command_detached_with_the_numbers(tmp_path: Path) -> None:
    """On firing, the retrain command runs with the drift share and evidence filled in."""
    out = tmp_path / "started.txt"
    script = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(' '.join(sys.argv[2:]))"
    trigger = DriftRetrainTrigger(
        tmp_path / "retrain-decisions.json",
        threshold=0.3,
        cooldown=timedelta(hours=6),
        command=[sys.executable, "-c", script, str(out), "{drift_share}", "{evidence}"],
        rule=drift,
    )
    decision = trigger(request(T0, share=0.42))
    assert decision.fire
    deadline = time.monotonic() + 30
    while not out.exists() or not out.read_text():
        assert time.monotonic() < deadline, "the retrain command did not run within 30 s"
        time.sleep(0.05)
    assert out.read_text() == "0.4200 /reports/v1.html"
    for child in trigger._children:
        child.wait(timeout=30)
