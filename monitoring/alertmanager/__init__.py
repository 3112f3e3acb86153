"""Alertmanager configuration: canary alerts to the controller, the rest to people.

The YAML file is the product (``alertmanager.yml``); this package renders it for another
controller webhook and token file.
"""

from monitoring.alertmanager.render import (
    CONFIG_PATH,
    CONTROLLER_RECEIVER,
    ONCALL_RECEIVER,
    render_alertmanager_config,
)

__all__ = ["CONFIG_PATH", "CONTROLLER_RECEIVER", "ONCALL_RECEIVER", "render_alertmanager_config"]
