"""The Prometheus configuration: promtool accepts it, and every alert has promtool tests."""

from __future__ import annotations

import functools
import math
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitoring.prometheus import ConfigRenderError, parse_duration, render_prometheus_config
from tests.conftest import require_tool

pytestmark = pytest.mark.unit

PROMETHEUS_DIR = Path(__file__).resolve().parents[3] / "monitoring" / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
PROMTOOL_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))
SEVERITIES = {"page", "ticket"}
COMPONENTS = {"serving", "canary", "drift", "controller"}


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    promtool = require_tool("promtool")
    return subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


@functools.cache
def _alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((RULES_DIR / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


@functools.cache
def _alert_tests() -> list[dict[str, Any]]:
    return [
        case
        for path in PROMTOOL_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]


def test_shipped_config_passes_promtool_check_config() -> None:
    """The compose stack's prometheus.yml is valid, with rule files that resolve and check."""
    result = _promtool("check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout


def test_rendered_config_for_loopback_targets_passes_promtool(tmp_path: Path) -> None:
    """A config rendered for loopback ports and 1-second intervals is valid wherever it lives."""
    text = render_prometheus_config(
        ["127.0.0.1:18000", "127.0.0.1:18001"], ["127.0.0.1:19200"], ["127.0.0.1:19093"], "1s", "1s"
    )
    config_path = tmp_path / "elsewhere" / "prometheus.yml"
    config_path.parent.mkdir()
    config_path.write_text(text)

    result = _promtool("check", "config", config_path)

    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(text)
    jobs = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert jobs == {
        "mlplat-serving": ["127.0.0.1:18000", "127.0.0.1:18001"],
        "mlplat-controller": ["127.0.0.1:19200"],
    }
    assert config["global"]["evaluation_interval"] == "1s"
    # Prometheus refuses a scrape timeout (default 10 s) longer than the interval.
    assert config["global"]["scrape_timeout"] == "1s"
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:19093"
    ]


def test_rendered_config_without_controller_or_alertmanager_drops_them() -> None:
    """Empty target lists remove the job and the alerting section instead of leaving them empty."""
    config = yaml.safe_load(render_prometheus_config(["localhost:8000"], [], []))
    assert [job["job_name"] for job in config["scrape_configs"]] == ["mlplat-serving"]
    assert "alerting" not in config
    assert "scrape_timeout" not in config["global"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"serving_targets": []}, "serving_targets: needs at least one"),
        ({"serving_targets": ["http://serving:8000"]}, "serving_targets[0]"),
        ({"serving_targets": "serving:8000"}, "not a string"),
        ({"controller_targets": ["controller"]}, "controller_targets[0]: 'controller'"),
        ({"alertmanager_targets": ["am:99999"]}, "port 99999"),
        ({"scrape_interval": "15"}, "scrape_interval: '15' is not a Prometheus duration"),
        ({"evaluation_interval": "0s"}, "evaluation_interval: '0s' must be longer than zero"),
        ({"rule_files": [Path("/nonexistent/rules.yml")]}, "rule_files[0]"),
    ],
)
def test_render_rejects_bad_input_naming_the_field(kwargs: dict[str, Any], message: str) -> None:
    """Bad targets, intervals or rule files fail with the field and the rule in the message."""
    arguments: dict[str, Any] = {
        "serving_targets": ["serving:8000"],
        "controller_targets": ["controller:9200"],
        "alertmanager_targets": ["alertmanager:9093"],
        **kwargs,
    }
    with pytest.raises(ConfigRenderError, match=re.escape(message)):
        render_prometheus_config(**arguments)


def test_parse_duration_reads_prometheus_durations() -> None:
    """Compound durations add up; the unit order is Prometheus' own."""
    assert parse_duration("1m30s", "x") == 90
    assert parse_duration("500ms", "x") == 0.5
    assert parse_duration("1h", "x") == 3600
    with pytest.raises(ConfigRenderError, match="x: '30s1m'"):
        parse_duration("30s1m", "x")


def test_rule_files_pass_promtool_check_rules() -> None:
    """Recording and alert rules parse, and promtool's linter finds nothing."""
    result = _promtool("check", "rules", *sorted(RULES_DIR.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", PROMTOOL_TESTS, ids=lambda path: path.name)
def test_promtool_rule_unit_tests_pass(test_file: Path) -> None:
    """Each promtool unit-test file passes (alerts fire and stay quiet where they should)."""
    result = _promtool("test", "rules", test_file)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    """Adding an alert without promtool tests for both outcomes fails this test."""
    firing = {case["alertname"] for case in _alert_tests() if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in _alert_tests() if not case.get("exp_alerts")}
    alerts = {rule["alert"] for rule in _alert_rules()}

    assert alerts - firing == set(), "alerts without a promtool test that shows them firing"
    assert alerts - quiet == set(), "alerts without a promtool test that shows them quiet"
    assert (firing | quiet) - alerts == set(), "promtool tests of alerts that do not exist"


def test_promtool_tests_load_the_shipped_rules() -> None:
    """The unit tests exercise the shipped rule files, not copies of them."""
    for path in PROMTOOL_TESTS:
        rule_files = yaml.safe_load(path.read_text())["rule_files"]
        resolved = {(path.parent / name).resolve() for name in rule_files}
        assert resolved, path.name
        assert resolved <= {p.resolve() for p in RULES_DIR.glob("*.yml")}, path.name


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_has_severity_component_and_runbook(rule: dict[str, Any]) -> None:
    """Each alert says how urgent it is, who it is for, what happened and where the runbook is."""
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["labels"]["component"] in COMPONENTS
    annotations = rule["annotations"]
    assert {"summary", "description", "runbook_url"} <= annotations.keys()
    assert "{{" in annotations["summary"] + annotations["description"], "no labels or value"
    assert annotations["runbook_url"] == f"docs/runbook.md#{rule['alert'].lower()}"


def test_only_canary_alerts_are_labelled_for_the_controller() -> None:
    """component="canary" sends an alert to the controller: the judge's trigger and the breaker."""
    canary = [rule["alert"] for rule in _alert_rules() if rule["labels"]["component"] == "canary"]
    assert canary == ["CanaryDegraded", "CanaryCircuitBreaker"]


def test_exactly_one_alert_is_a_circuit_breaker_and_it_is_a_canary_alert() -> None:
    """breaker="true" bypasses the judge: one alert has it, and it goes to the controller."""
    breakers = [rule for rule in _alert_rules() if rule["labels"].get("breaker") == "true"]
    assert [rule["alert"] for rule in breakers] == ["CanaryCircuitBreaker"]
    (breaker,) = breakers
    assert breaker["labels"]["component"] == "canary"
    assert {rule["labels"].get("breaker") for rule in _alert_rules()} == {None, "true"}


def test_canary_alerts_fire_with_the_model_version_they_are_about() -> None:
    """Every firing promtool case of a canary alert names model_version (the controller's guard)."""
    canary = {rule["alert"] for rule in _alert_rules() if rule["labels"]["component"] == "canary"}
    cases = [c for c in _alert_tests() if c["alertname"] in canary and c.get("exp_alerts")]
    assert {c["alertname"] for c in cases} == canary
    for case in cases:
        for alert in case["exp_alerts"]:
            assert alert["exp_labels"].get("model_version"), case


def _binomial_tail(n: int, p: float, k: int) -> float:
    """P(Bin(n, p) >= k), exactly."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def _chernoff(n: int, p: float) -> float:
    """exp(-n D(1/2 || p)): the bound on P(failed share >= 1/2) at n requests."""
    divergence = 0.5 * math.log(0.5 / p) + 0.5 * math.log(0.5 / (1 - p))
    return math.exp(-n * divergence)


def test_the_breaker_rule_states_its_false_trip_rate_as_computed_here() -> None:
    """The figures in the breaker's comment are the binomial tail and the Chernoff bound."""
    text = (RULES_DIR / "alerts.yml").read_text()
    comment = text[: text.index("- alert: CanaryCircuitBreaker")].rsplit("- alert:", 1)[-1]
    assert "False trips on a healthy canary" in comment
    assert f"{_binomial_tail(50, 0.01, 25):.1e}" in comment  # 9.9e-37
    assert f"{_chernoff(50, 0.01):.1e}" in comment  # 8.8e-36
    assert f"{_binomial_tail(50, 0.05, 25):.1e}" in comment
    assert f"{_binomial_tail(50, 0.10, 25):.1e}" in comment
    # The bound falls with every request, so 50 is the worst case the rule allows.
    assert all(_chernoff(n + 1, 0.01) < _chernoff(n, 0.01) for n in range(50, 200))
    assert 5_760 * _chernoff(50, 0.01) < 1e-31


def test_drift_alert_says_it_retrains_and_does_not_roll_back() -> None:
    """FeatureDriftDetected is a ticket whose text sends people to retraining, not rollback."""
    (rule,) = [rule for rule in _alert_rules() if rule["alert"] == "FeatureDriftDetected"]
    assert rule["labels"]["severity"] == "ticket"
    assert "retraining" in rule["annotations"]["description"]
    assert "does NOT roll back" in rule["annotations"]["description"]


def test_recording_rule_names_follow_level_metric_operations() -> None:
    """Recorded series are named level:metric:operations, and every name is unique."""
    groups = yaml.safe_load((RULES_DIR / "recording.yml").read_text())["groups"]
    names = [rule["record"] for group in groups for rule in group["rules"]]
    for name in names:
        assert re.fullmatch(r"[a-z_]+:mlplat_[a-z0-9_]+:[a-z0-9_]+", name), name
    assert len(names) == len(set(names))
