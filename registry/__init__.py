"""Model registry: versions with lineage, champion/challenger aliases, canary weight, events.

MLflow's registry holds the deployment state (aliases ``champion``/``challenger`` and the
``mlplat.canary_weight`` tag); a relational event log (SQLite or PostgreSQL) records every move,
and :meth:`ModelRegistry.reconcile` keeps the two in agreement across crashes. Start with
:func:`open_registry`.
"""

from registry.errors import (
    EventStoreError,
    EventStoreUnavailable,
    InvalidMoveError,
    LeaseLostError,
    ModelNotFoundError,
    MoveInProgressError,
    MoveNotRecordedError,
    NoPreviousChampionError,
    RegistryError,
    RegistryUnavailable,
    StaleStateError,
    VersionNotFoundError,
)
from registry.event_store import EventStore
from registry.events import Action, DeploymentEvent, EventStatus, JsonValue
from registry.factory import ensure_experiment, open_registry, registry_from_settings
from registry.registry import ModelRegistry
from registry.settings import RegistrySettings, get_settings
from registry.state import (
    CANARY_WEIGHT_TAG,
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION_TAG,
    DeploymentState,
)
from registry.versions import (
    CODE_VERSION_TAG,
    DATA_DIGEST_TAG,
    GATE_VERDICT_TAG,
    STATUS_TAG,
    ModelVersionInfo,
)

__all__ = [
    "CANARY_WEIGHT_TAG",
    "CHALLENGER",
    "CHAMPION",
    "CODE_VERSION_TAG",
    "DATA_DIGEST_TAG",
    "GATE_VERDICT_TAG",
    "PREVIOUS_CHAMPION_TAG",
    "STATUS_TAG",
    "Action",
    "DeploymentEvent",
    "DeploymentState",
    "EventStatus",
    "EventStore",
    "EventStoreError",
    "EventStoreUnavailable",
    "InvalidMoveError",
    "JsonValue",
    "LeaseLostError",
    "ModelNotFoundError",
    "ModelRegistry",
    "ModelVersionInfo",
    "MoveInProgressError",
    "MoveNotRecordedError",
    "NoPreviousChampionError",
    "RegistryError",
    "RegistrySettings",
    "RegistryUnavailable",
    "StaleStateError",
    "VersionNotFoundError",
    "ensure_experiment",
    "get_settings",
    "open_registry",
    "registry_from_settings",
]
