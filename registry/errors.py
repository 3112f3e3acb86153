"""Domain errors of the registry: each message says what was wrong and what to do about it.

The CLI catches :class:`RegistryError` and prints its message; no caller should need to read an
MLflow or SQLAlchemy stack trace to find out that a server is down or a version does not exist.
"""

from __future__ import annotations

import re

__all__ = [
    "EventStoreError",
    "EventStoreUnavailable",
    "InvalidMoveError",
    "LeaseLostError",
    "ModelNotFoundError",
    "MoveInProgressError",
    "MoveNotRecordedError",
    "NoPreviousChampionError",
    "RegistryError",
    "RegistryUnavailable",
    "StaleStateError",
    "VersionNotFoundError",
    "redact_url",
]

_PASSWORD_IN_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+):[^@/\s]*@")


def redact_url(url: str) -> str:
    """``url`` with the password of any ``user:password@`` replaced by ``***``, safe to print."""
    return _PASSWORD_IN_URL.sub(r"\g<scheme>:***@", url)


class RegistryError(Exception):
    """Base class: every error this package raises on purpose."""


class RegistryUnavailable(RegistryError):  # noqa: N818 - reads as a state, like TimeoutError
    """The MLflow tracking/registry store cannot be reached."""

    def __init__(self, uri: str, cause: str) -> None:
        self.uri = redact_url(uri)
        super().__init__(
            f"MLflow registry at {self.uri} is unavailable: {cause}. "
            "Check that the server is running and MLFLOW_TRACKING_URI is right."
        )


class EventStoreError(RegistryError):
    """The deployment-events database refused an operation."""


class EventStoreUnavailable(EventStoreError):  # noqa: N818 - same naming as above
    """The deployment-events database URL is invalid or the database cannot be reached."""

    def __init__(self, url: str, cause: str) -> None:
        self.url = redact_url(url)
        super().__init__(
            f"deployment-events database at {self.url} is unavailable: {cause}. "
            "Check MLPLAT_EVENTS_URL (a SQLAlchemy URL such as sqlite:///path/events.db or "
            "postgresql+psycopg://user@host/db) and that the database is running."
        )


class ModelNotFoundError(RegistryError):
    """The registered model does not exist."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        super().__init__(
            f"registered model {model_name!r} does not exist; register a version first"
        )


class VersionNotFoundError(RegistryError):
    """The model version does not exist."""

    def __init__(self, model_name: str, version: int | str) -> None:
        self.model_name = model_name
        self.version = version
        super().__init__(f"model {model_name!r} has no version {version}")


class NoPreviousChampionError(RegistryError):
    """A rollback was asked for but there is no earlier champion to return to."""

    def __init__(self, model_name: str, champion: int | None) -> None:
        self.model_name = model_name
        super().__init__(
            f"cannot roll back {model_name!r}: champion is {champion} and no previous champion "
            "is recorded (a rollback needs a promote before it, and only undoes that one)"
        )


class InvalidMoveError(RegistryError, ValueError):
    """The requested move breaks a rule (bad weight, rejected version, champion as challenger)."""


class StaleStateError(RegistryError):
    """A compare-and-set failed: the deployment state is not what the caller expected."""


class MoveInProgressError(RegistryError):
    """Another process has a move of the same model in flight."""


class LeaseLostError(MoveInProgressError):
    """This process's lock on a model expired and another took it: it must not write on."""


class MoveNotRecordedError(EventStoreError):
    """A move reached MLflow (it is live) but its event could not be marked applied.

    Attributes:
        event_id: The event that stays pending until reconcile marks it applied.
        summary: What is live now, in words.
    """

    def __init__(self, event_id: int, summary: str, cause: str) -> None:
        self.event_id = event_id
        self.summary = summary
        super().__init__(
            f"{summary} — this is live in MLflow. Its deployment event {event_id} could not be "
            f"marked applied ({cause}), so it stays pending; the next move or "
            "`mlplat deploy reconcile` marks it applied once the event database answers. "
            "Do not repeat the move."
        )
