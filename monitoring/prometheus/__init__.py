"""Prometheus configuration: scrape jobs, recording and alert rules, and their renderer.

The YAML files are the product (``prometheus.yml``, ``rules/*.yml``, promtool tests in
``tests/*.test.yml``); this package renders the scrape configuration for other targets.
"""

from monitoring.prometheus.render import (
    CONFIG_PATH,
    RULE_FILES,
    ConfigRenderError,
    parse_duration,
    render_prometheus_config,
)

__all__ = [
    "CONFIG_PATH",
    "RULE_FILES",
    "ConfigRenderError",
    "parse_duration",
    "render_prometheus_config",
]
