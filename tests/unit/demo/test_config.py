"""The demo's config: defaults that work, rules that name the field, and what it builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo.config import DemoConfig, DemoConfigError, load_demo_config

pytestmark = pytest.mark.unit


def test_defaults_are_valid_and_compress_time_not_rules() -> None:
    """The shipped defaults load; the judge keeps every default but two, each shown in knobs()."""
    config = load_demo_config()
    judge = config.judge_config()
    assert judge.prediction_shift_action == "rollback"
    assert judge.error_rate_margin_min == pytest.approx(0.005)
    changed = {"prediction_shift_action", "error_rate_margin_min"}
    defaults = type(judge)()
    assert judge.model_dump(exclude=changed) == defaults.model_dump(exclude=changed)
    knobs = {row[0] for row in config.knobs()}
    assert "error-rate margin against an error-free champion" in knobs
    assert config.pipeline_config().data.n_rows == config.training_rows


def test_monitor_settings_scrape_the_service_with_no_prometheus(tmp_path: Path) -> None:
    """The controller reads the service's own /metrics and the demo's inference log."""
    settings = DemoConfig().monitor_settings(
        home=tmp_path,
        serving_url="http://127.0.0.1:8123",
        inference_log_url=f"sqlite:///{tmp_path / 'log.db'}",
        report_dir=tmp_path / "reports",
    )
    assert settings.prometheus_url is None
    assert settings.serving_metrics_urls == ("http://127.0.0.1:8123/metrics",)
    assert settings.resolved_report_dir == tmp_path / "reports"
    assert settings.resolved_state_dir == tmp_path / "monitor"
    assert settings.retrain_command is None
    assert settings.judge_window_seconds == DemoConfig().judge_window_s


def test_monitor_settings_ignore_the_callers_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shell configured for a real Prometheus cannot redirect the demo's controller."""
    monkeypatch.setenv("MLPLAT_MONITOR_PROMETHEUS_URL", "http://prometheus:9090")
    monkeypatch.setenv("MLPLAT_MONITOR_JUDGE_WINDOW_SECONDS", "600")
    settings = DemoConfig().monitor_settings(
        home=tmp_path, serving_url="http://127.0.0.1:1", inference_log_url="sqlite://",
        report_dir=tmp_path,
    )  # fmt: skip
    assert settings.prometheus_url is None
    assert settings.judge_window_seconds == DemoConfig().judge_window_s


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"canary_weight": 0.8}, "canary_weight"),
        ({"good_seed": 42}, "must differ"),
        ({"min_canary_requests": 50_000}, "min_canary_requests"),
        ({"min_canary_seconds": 500.0}, "min_canary_seconds"),
        ({"drift_window_s": 1.0, "drift_interval_s": 2.0}, "drift_window_s"),
        ({"prediction_shift_action": "ignore"}, "prediction_shift_action"),
        ({"trafic_rate": 10}, "trafic_rate"),
    ],
)
def test_a_broken_rule_is_refused_naming_it(
    tmp_path: Path, fields: dict[str, object], named: str
) -> None:
    """Each rule's violation is a DemoConfigError whose message names the field or rule."""
    import yaml

    path = tmp_path / "demo.yml"
    path.write_text(yaml.safe_dump(fields))
    with pytest.raises(DemoConfigError, match=named):
        load_demo_config(path)


def test_a_file_overrides_only_the_fields_it_names(tmp_path: Path) -> None:
    """Unnamed fields keep their defaults."""
    path = tmp_path / "demo.yml"
    path.write_text("traffic_rate: 90\nlabel_fraction: 1.0\n")
    config = load_demo_config(path)
    assert (config.traffic_rate, config.label_fraction) == (90.0, 1.0)
    assert config.judge_window_s == DemoConfig().judge_window_s


@pytest.mark.parametrize("text", ["- a list\n", "key: [unclosed\n"])
def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str) -> None:
    """A YAML list or broken YAML is a readable error, not a traceback."""
    path = tmp_path / "demo.yml"
    path.write_text(text)
    with pytest.raises(DemoConfigError, match=str(path)):
        load_demo_config(path)


def test_the_knobs_table_shows_every_policy_change() -> None:
    """The printed knobs include both policies that differ from production, with both values."""
    rows = {knob: (demo, prod) for knob, demo, prod in DemoConfig().knobs()}
    assert rows["prediction shift without proven harm"] == ("rollback", "pause")
    assert rows["retrain when this share of features drifts"] == ("0.05", "0.3")
