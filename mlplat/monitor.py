"""``mlplat monitor``: the controller's command, wired with the pipeline's drift rule.

The controller's retrain trigger applies the pipeline's own ``drift`` rule
(``ci/triggers.py::drift``), so that it and ``mlplat pipeline trigger drift`` decide alike.
``monitoring`` may not import ``ci`` (``pyproject.toml``'s component table); this composition
root hands the rule in.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from monitoring.cli import monitor_command

if TYPE_CHECKING:
    from ci.triggers import TriggerDecision

__all__ = ["monitor", "pipeline_drift_rule"]


def pipeline_drift_rule(
    drift_share: float,
    threshold: float,
    last_drift_run_at: datetime | None,
    cooldown: timedelta,
    now: datetime | None = None,
    evidence: str | None = None,
) -> TriggerDecision:
    """``ci/triggers.py::drift``, imported on the first drift the controller sees."""
    # Lazy on purpose: importing the ci package loads the pipeline, the registry and MLflow
    # (seconds), and ``mlplat monitor --help`` should not pay for a rule it does not apply.
    from ci.triggers import drift

    return drift(drift_share, threshold, last_drift_run_at, cooldown, now=now, evidence=evidence)


monitor = monitor_command(retrain_rule=pipeline_drift_rule)
