"""Render the shipped Prometheus configuration for other targets and intervals.

``prometheus.yml`` next to this module is written for the docker-compose stack (``serving:8000``,
``controller:9200``, ``alertmanager:9093``, 15 s intervals). Tests and other deployments need the
same scrape jobs, rules and alerting with their own addresses; rendering from the shipped file,
rather than writing a second one, means they exercise the configuration that ships.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import yaml

__all__ = [
    "CONFIG_PATH",
    "RULE_FILES",
    "ConfigRenderError",
    "parse_duration",
    "render_prometheus_config",
]

_HERE: Final = Path(__file__).resolve().parent
CONFIG_PATH: Final = _HERE / "prometheus.yml"
"""The configuration of the docker-compose stack, and the template of rendered ones."""
RULE_FILES: Final = (_HERE / "rules" / "recording.yml", _HERE / "rules" / "alerts.yml")
"""The rule files, as absolute paths (a rendered configuration may live anywhere)."""

SERVING_JOB: Final = "mlplat-serving"
CONTROLLER_JOB: Final = "mlplat-controller"
_DEFAULT_SCRAPE_TIMEOUT_SECONDS: Final = 10.0

# Prometheus' duration syntax: units largest first, each at most once, e.g. "1m30s", "500ms".
_DURATION: Final = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_UNIT_SECONDS: Final = (365 * 86400.0, 7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0, 0.001)
# host:port, where host is a name, an IPv4 address or a bracketed IPv6 address; no scheme.
_TARGET: Final = re.compile(
    r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?):\d{1,5}$"
)


class ConfigRenderError(ValueError):
    """A value that cannot go into a rendered configuration; the message names field and rule."""


def parse_duration(value: str, field: str) -> float:
    """Return the seconds in a Prometheus duration such as ``"15s"`` or ``"1m30s"``.

    Args:
        value: The duration.
        field: The name to blame in the error message.

    Raises:
        ConfigRenderError: If ``value`` is not a positive Prometheus duration.
    """
    match = _DURATION.match(value) if value else None
    if match is None:
        raise ConfigRenderError(
            f"{field}: {value!r} is not a Prometheus duration (e.g. '500ms', '15s', '1m30s')"
        )
    seconds = sum(
        int(amount) * unit
        for amount, unit in zip(match.groups(), _UNIT_SECONDS, strict=True)
        if amount
    )
    if seconds <= 0:
        raise ConfigRenderError(f"{field}: {value!r} must be longer than zero")
    return seconds


def _targets(values: Sequence[str], field: str, *, required: bool) -> list[str]:
    if isinstance(values, str):
        # A bare string is a sequence of characters: catch it before it becomes "s", "e", ...
        raise ConfigRenderError(f"{field}: must be a list of 'host:port' strings, not a string")
    if required and not values:
        raise ConfigRenderError(f"{field}: needs at least one 'host:port' target")
    for index, target in enumerate(values):
        if not isinstance(target, str) or not _TARGET.match(target):
            raise ConfigRenderError(
                f"{field}[{index}]: {target!r} must be 'host:port' (no scheme, no path)"
            )
        port = int(target.rsplit(":", 1)[1])
        if not 0 < port < 65536:
            raise ConfigRenderError(f"{field}[{index}]: port {port} is outside 1-65535")
    return list(values)


def render_prometheus_config(
    serving_targets: Sequence[str],
    controller_targets: Sequence[str],
    alertmanager_targets: Sequence[str],
    scrape_interval: str = "15s",
    evaluation_interval: str = "15s",
    *,
    rule_files: Sequence[Path] = RULE_FILES,
) -> str:
    """Render ``prometheus.yml`` with other targets and intervals.

    Everything else (job names, metrics paths, external labels, the rules) stays as shipped; the
    rule files are referenced by absolute path, so the result can be written anywhere.

    Args:
        serving_targets: ``host:port`` of each inference service instance (at least one).
        controller_targets: ``host:port`` of the monitoring controller (may be empty).
        alertmanager_targets: ``host:port`` of each Alertmanager (may be empty: no alerting).
        scrape_interval: How often targets are scraped, e.g. ``"1s"`` in tests.
        evaluation_interval: How often rules are evaluated.
        rule_files: Rule files to load; the shipped ones by default.

    Returns:
        The configuration as YAML text.

    Raises:
        ConfigRenderError: If a target is not ``host:port``, an interval is not a positive
            Prometheus duration, or a rule file does not exist.
    """
    serving = _targets(serving_targets, "serving_targets", required=True)
    controller = _targets(controller_targets, "controller_targets", required=False)
    alertmanagers = _targets(alertmanager_targets, "alertmanager_targets", required=False)
    scrape_seconds = parse_duration(scrape_interval, "scrape_interval")
    parse_duration(evaluation_interval, "evaluation_interval")
    for index, path in enumerate(rule_files):
        if not Path(path).is_file():
            raise ConfigRenderError(f"rule_files[{index}]: {str(path)!r} is not a file")

    config: dict[str, Any] = yaml.safe_load(CONFIG_PATH.read_text(encoding="utf-8"))
    config["global"]["scrape_interval"] = scrape_interval
    config["global"]["evaluation_interval"] = evaluation_interval
    if scrape_seconds < _DEFAULT_SCRAPE_TIMEOUT_SECONDS:
        # Prometheus refuses a scrape timeout longer than the scrape interval.
        config["global"]["scrape_timeout"] = scrape_interval
    config["rule_files"] = [str(Path(path).resolve()) for path in rule_files]
    if alertmanagers:
        config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": alertmanagers}]}]
    else:
        del config["alerting"]
    targets = {SERVING_JOB: serving, CONTROLLER_JOB: controller}
    jobs = []
    for job in config["scrape_configs"]:
        wanted = targets[job["job_name"]]
        if wanted:
            job["static_configs"] = [{"targets": wanted}]
            jobs.append(job)
    config["scrape_configs"] = jobs
    return yaml.safe_dump(config, sort_keys=False)
