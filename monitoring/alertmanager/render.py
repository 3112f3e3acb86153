"""Render the shipped Alertmanager configuration for another controller and token file.

``alertmanager.yml`` next to this module is written for the docker-compose stack. Tests point the
same routes, receivers and inhibitions at a controller on a loopback port, with a token file of
their own and shorter waits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

from monitoring.prometheus.render import ConfigRenderError, parse_duration

__all__ = ["CONFIG_PATH", "CONTROLLER_RECEIVER", "ONCALL_RECEIVER", "render_alertmanager_config"]

CONFIG_PATH: Final = Path(__file__).resolve().parent / "alertmanager.yml"
"""The configuration of the docker-compose stack, and the template of rendered ones."""
CONTROLLER_RECEIVER: Final = "controller"
"""The receiver of canary alerts: the monitoring controller's webhook."""
ONCALL_RECEIVER: Final = "oncall"
"""The receiver of every other alert: people."""


def _url(value: str, field: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigRenderError(f"{field}: {value!r} must be an http:// or https:// URL")
    return value


def _receiver(config: dict[str, Any], name: str) -> dict[str, Any]:
    for receiver in config["receivers"]:
        if receiver["name"] == name:
            webhook: dict[str, Any] = receiver["webhook_configs"][0]
            return webhook
    raise LookupError(f"{CONFIG_PATH} has no receiver {name!r}")  # the shipped file is broken


def render_alertmanager_config(
    webhook_url: str,
    credentials_file: str | Path,
    *,
    oncall_webhook_url: str | None = None,
    group_wait: str = "5s",
    group_interval: str = "30s",
    repeat_interval: str = "5m",
) -> str:
    """Render ``alertmanager.yml`` for another controller webhook and bearer-token file.

    Args:
        webhook_url: The controller's webhook, e.g. ``http://127.0.0.1:9200/alertmanager/webhook``.
        credentials_file: File holding the bearer token Alertmanager sends to the controller
            (read at every delivery, so it may be written after rendering).
        oncall_webhook_url: Where alerts for people go; the shipped placeholder by default.
        group_wait: How long the controller route waits to batch the first notification.
        group_interval: How long it waits before notifying about changes to a batch.
        repeat_interval: How often it repeats a notification that still fires.

    Returns:
        The configuration as YAML text.

    Raises:
        ConfigRenderError: If a URL is not http(s), the credentials file is empty, or a
            duration is not a positive Prometheus duration.
    """
    controller_url = _url(webhook_url, "webhook_url")
    oncall_url = (
        None if oncall_webhook_url is None else _url(oncall_webhook_url, "oncall_webhook_url")
    )
    token_path = str(credentials_file)
    if not token_path.strip():
        raise ConfigRenderError("credentials_file: must name the file holding the bearer token")
    timings = {
        "group_wait": group_wait,
        "group_interval": group_interval,
        "repeat_interval": repeat_interval,
    }
    for field, value in timings.items():
        parse_duration(value, field)

    config: dict[str, Any] = yaml.safe_load(CONFIG_PATH.read_text(encoding="utf-8"))
    controller = _receiver(config, CONTROLLER_RECEIVER)
    controller["url"] = controller_url
    controller["http_config"]["authorization"]["credentials_file"] = token_path
    if oncall_url is not None:
        _receiver(config, ONCALL_RECEIVER)["url"] = oncall_url
    for route in config["route"]["routes"]:
        if route["receiver"] == CONTROLLER_RECEIVER:
            route.update(timings)
    return yaml.safe_dump(config, sort_keys=False)
