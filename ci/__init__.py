"""The CI/CD pipeline as code: stages with their gates, training triggers and the deploy step.

The same functions back ``mlplat pipeline …``/``mlplat deploy …`` and the GitHub workflow in
``.github/workflows/ml-pipeline.yml``, so what CI enforces is what a developer runs locally.
"""

from ci.deploy import (
    MAX_CANARY_WEIGHT,
    NotServableError,
    check_canary_weight,
    promote,
    start_canary,
)
from ci.stages import RunRequest, RunSummary, run_pipeline
from ci.triggers import TriggerDecision, TriggerKind

__all__ = [
    "MAX_CANARY_WEIGHT",
    "NotServableError",
    "RunRequest",
    "RunSummary",
    "TriggerDecision",
    "TriggerKind",
    "check_canary_weight",
    "promote",
    "run_pipeline",
    "start_canary",
]
