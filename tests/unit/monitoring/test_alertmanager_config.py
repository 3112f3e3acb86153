"""The Alertmanager configuration: canary alerts reach the controller, the rest reach people."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitoring.alertmanager import (
    CONFIG_PATH,
    CONTROLLER_RECEIVER,
    ONCALL_RECEIVER,
    render_alertmanager_config,
)
from monitoring.prometheus import ConfigRenderError
from tests.conftest import require_tool

pytestmark = pytest.mark.unit

ALERTS_PATH = Path(__file__).resolve().parents[3] / "monitoring/prometheus/rules/alerts.yml"


def _amtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    amtool = require_tool("amtool")
    return subprocess.run(
        [amtool, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def _route(config_path: Path, labels: dict[str, str]) -> str:
    """The receiver(s) amtool resolves for an alert with ``labels``, comma-separated."""
    pairs = [f"{name}={value}" for name, value in sorted(labels.items())]
    result = _amtool("config", "routes", "test", f"--config.file={config_path}", *pairs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def _alert_labels() -> dict[str, dict[str, str]]:
    """Each alert's static labels, plus its name, as Alertmanager receives them."""
    groups = yaml.safe_load(ALERTS_PATH.read_text())["groups"]
    return {
        rule["alert"]: {"alertname": rule["alert"], **rule["labels"]}
        for group in groups
        for rule in group["rules"]
    }


def _matches(matcher: str, labels: dict[str, str]) -> bool:
    """Evaluate one Alertmanager matcher string (``name<op>"value"``) against ``labels``."""
    found = re.fullmatch(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"(.*)"\s*', matcher)
    assert found is not None, f"matcher this test cannot read: {matcher}"
    name, op, value = found.groups()
    actual = labels.get(name, "")
    if op == "=":
        return actual == value
    if op == "!=":
        return actual != value
    full = re.fullmatch(value, actual) is not None
    return full if op == "=~" else not full


def test_shipped_config_passes_amtool_check_config() -> None:
    """The compose stack's alertmanager.yml passes amtool check-config."""
    result = _amtool("check-config", CONFIG_PATH)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_canary_degraded_routes_to_the_controller_webhook() -> None:
    """A CanaryDegraded alert goes to the controller, and only there."""
    labels = {**_alert_labels()["CanaryDegraded"], "signal": "error_rate", "job": "mlplat-serving"}
    assert _route(CONFIG_PATH, labels) == CONTROLLER_RECEIVER


def test_feature_drift_routes_to_people() -> None:
    """A FeatureDriftDetected alert goes to the on-call receiver, not to the rollback automation."""
    labels = {**_alert_labels()["FeatureDriftDetected"], "variant": "champion"}
    assert _route(CONFIG_PATH, labels) == ONCALL_RECEIVER


@pytest.mark.parametrize("alertname", sorted(_alert_labels()))
def test_every_alert_reaches_its_audience(alertname: str) -> None:
    """Canary alerts reach the controller; every other alert reaches people."""
    labels = _alert_labels()[alertname]
    expected = CONTROLLER_RECEIVER if labels["component"] == "canary" else ONCALL_RECEIVER
    assert _route(CONFIG_PATH, labels) == expected


def test_controller_webhook_authenticates_with_a_token_file() -> None:
    """The controller receiver sends a bearer token read from a file, never an inline secret."""
    config = yaml.safe_load(CONFIG_PATH.read_text())
    (receiver,) = [r for r in config["receivers"] if r["name"] == CONTROLLER_RECEIVER]
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"] == "http://controller:9200/alertmanager/webhook"
    assert webhook["send_resolved"] is True
    authorization = webhook["http_config"]["authorization"]
    assert authorization["type"] == "Bearer"
    assert authorization["credentials_file"].startswith("/run/secrets/")
    assert "credentials" not in authorization


def test_serving_down_inhibits_serving_alerts_but_never_canary_ones() -> None:
    """While ServingDown fires, NoTraffic is muted; the canary alert that drives rollback is not."""
    config = yaml.safe_load(CONFIG_PATH.read_text())
    alerts = _alert_labels()

    def inhibited(alertname: str) -> bool:
        target = {**alerts[alertname], "job": "mlplat-serving"}
        source = {**alerts["ServingDown"], "job": "mlplat-serving", "instance": "serving:8000"}
        return any(
            all(_matches(m, source) for m in rule["source_matchers"])
            and all(_matches(m, target) for m in rule["target_matchers"])
            and all(source.get(label) == target.get(label) for label in rule["equal"])
            for rule in config["inhibit_rules"]
        )

    assert inhibited("NoTraffic")
    assert inhibited("ErrorBudgetFastBurn")
    assert not inhibited("CanaryDegraded")
    assert not inhibited("ServingDown")


def test_rendered_config_points_at_a_loopback_controller(tmp_path: Path) -> None:
    """A rendered config keeps the routes and sends canary alerts to the given webhook and token."""
    token_file = tmp_path / "token"
    text = render_alertmanager_config(
        "http://127.0.0.1:19200/alertmanager/webhook",
        token_file,
        oncall_webhook_url="http://127.0.0.1:19999/notify",
        group_wait="1s",
        group_interval="2s",
        repeat_interval="10s",
    )
    config_path = tmp_path / "alertmanager.yml"
    config_path.write_text(text)

    check = _amtool("check-config", config_path)

    assert check.returncode == 0, check.stdout + check.stderr
    config = yaml.safe_load(text)
    webhooks = {r["name"]: r["webhook_configs"][0] for r in config["receivers"]}
    assert webhooks[CONTROLLER_RECEIVER]["url"] == "http://127.0.0.1:19200/alertmanager/webhook"
    authorization = webhooks[CONTROLLER_RECEIVER]["http_config"]["authorization"]
    assert authorization["credentials_file"] == str(token_file)
    assert webhooks[ONCALL_RECEIVER]["url"] == "http://127.0.0.1:19999/notify"
    (controller_route,) = [
        r for r in config["route"]["routes"] if r["receiver"] == CONTROLLER_RECEIVER
    ]
    assert (
        controller_route["group_wait"],
        controller_route["group_interval"],
        controller_route["repeat_interval"],
    ) == ("1s", "2s", "10s")
    labels = {**_alert_labels()["CanaryDegraded"], "signal": "latency"}
    assert _route(config_path, labels) == CONTROLLER_RECEIVER


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"webhook_url": "controller:9200/alertmanager/webhook"}, "webhook_url:"),
        ({"oncall_webhook_url": "ftp://relay/notify"}, "oncall_webhook_url:"),
        ({"credentials_file": " "}, "credentials_file:"),
        ({"group_wait": "soon"}, "group_wait: 'soon'"),
        ({"repeat_interval": "0m"}, "repeat_interval: '0m' must be longer than zero"),
    ],
)
def test_render_rejects_bad_input_naming_the_field(kwargs: dict[str, Any], message: str) -> None:
    """Bad URLs, token paths or durations fail with the field and the rule in the message."""
    arguments: dict[str, Any] = {
        "webhook_url": "http://controller:9200/alertmanager/webhook",
        "credentials_file": "/run/secrets/token",
        **kwargs,
    }
    with pytest.raises(ConfigRenderError, match=re.escape(message)):
        render_alertmanager_config(**arguments)
