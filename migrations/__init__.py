"""Schema migrations of the platform's own databases, with Alembic.

The deployment-events store and the inference log each have an Alembic script folder
(``migrations/events``, ``migrations/inference_log``) and a version table of their own, so a
Kubernetes Job (``deploy/kubernetes/components/db-migrations``) or ``mlplat db upgrade`` brings
either database to this release's schema before new pods start. A database the services
created themselves (compose, the demo, an older release) is adopted, not recreated; the
inference log's feature columns follow the feature contract (:mod:`migrations.contract_columns`).
"""

from migrations.contract_columns import ColumnChanges, ContractColumnError
from migrations.runner import (
    EVENTS,
    INFERENCE_LOG,
    SCHEMAS,
    MigrationError,
    Schema,
    UpgradeReport,
    current_revision,
    upgrade,
)

__all__ = [
    "EVENTS",
    "INFERENCE_LOG",
    "SCHEMAS",
    "ColumnChanges",
    "ContractColumnError",
    "MigrationError",
    "Schema",
    "UpgradeReport",
    "current_revision",
    "upgrade",
]
