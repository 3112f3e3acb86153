"""A typed view of one registered model in MLflow, with MLflow's quirks kept in here.

Two quirks matter. The SQLite store hands back versions and alias targets as ``int`` while the
REST client hands back ``str``: everything leaving this module is ``int``. And MLflow reports
"server down" as a generic ``MlflowException`` wrapping a ``requests`` error: this module turns
it into :class:`registry.errors.RegistryUnavailable` naming the URI.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import requests
import sqlalchemy as sa
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from registry.errors import (
    InvalidMoveError,
    ModelNotFoundError,
    RegistryError,
    RegistryUnavailable,
    VersionNotFoundError,
)
from registry.state import (
    CANARY_WEIGHT_TAG,
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION_TAG,
    DeploymentState,
    format_weight,
    interim_weight,
    parse_version,
    validate_weight,
)
from registry.versions import REJECTED, STATUS_TAG, ModelVersionInfo

__all__ = ["MlflowModelStore", "unavailable_as_error"]

logger = logging.getLogger(__name__)

_NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
_ALREADY_EXISTS = {"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"}
_UNAVAILABLE_CODES = {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}


def _unavailable_cause(exc: BaseException) -> str | None:
    """Why ``exc`` means the store cannot be reached, or ``None`` if it means something else."""
    if isinstance(exc, requests.exceptions.RequestException):
        return type(exc).__name__
    if isinstance(exc, sa.exc.OperationalError):
        return str(exc.orig).splitlines()[0] if exc.orig is not None else "database error"
    if isinstance(exc, MlflowException):
        underlying = exc.__cause__ or exc.__context__
        if isinstance(underlying, requests.exceptions.ConnectionError):
            return "connection refused or host unreachable"
        if isinstance(underlying, requests.exceptions.Timeout):
            return "request timed out"
        if isinstance(underlying, requests.exceptions.RequestException):
            return type(underlying).__name__
        if exc.error_code in _UNAVAILABLE_CODES:
            return str(exc.error_code)
        if str(exc.message).startswith("API request to"):
            # The REST client's wording for "no usable answer after retries" (5xx, reset...).
            return str(exc.message).split(" failed with ", 1)[-1][:200]
    return None


@contextmanager
def unavailable_as_error(uri: str) -> Iterator[None]:
    """Raise :class:`RegistryUnavailable` naming ``uri`` when MLflow cannot be reached."""
    try:
        yield
    except RegistryError:
        raise
    except Exception as exc:
        cause = _unavailable_cause(exc)
        if cause is None:
            raise
        raise RegistryUnavailable(uri, cause) from exc


def _version_info(model_name: str, mv: Any) -> ModelVersionInfo:
    version = parse_version(mv.version)
    return ModelVersionInfo(
        version=version,
        run_id=mv.run_id or None,
        source=str(mv.source),
        model_uri=f"models:/{model_name}/{version}",
        tags=dict(mv.tags or {}),
        aliases=tuple(sorted(mv.aliases or ())),
        created_at=datetime.fromtimestamp(int(mv.creation_timestamp) / 1000, tz=UTC),
        status=str(mv.status),
    )


def _logged_model_id(model_uri: str) -> str | None:
    """``m-…`` from an MLflow 3 logged-model URI ``models:/m-…`` (what ``log_model`` returns)."""
    prefix = "models:/m-"
    if model_uri.startswith(prefix) and "/" not in model_uri[len("models:/") :]:
        return model_uri[len("models:/") :]
    return None


class MlflowModelStore:
    """Reads and writes the deployment state of one registered model.

    Args:
        client: An MLflow client whose registry URI points at the store.
        model_name: The registered model.
    """

    def __init__(self, client: MlflowClient, model_name: str) -> None:
        self._client = client
        self.model_name = model_name

    @property
    def uri(self) -> str:
        """The tracking/registry URI, for messages."""
        return str(self._client.tracking_uri)

    @contextmanager
    def _calls(self, version: int | None = None) -> Iterator[None]:
        """Translate MLflow failures into registry errors."""
        with unavailable_as_error(self.uri):
            try:
                yield
            except MlflowException as exc:
                if exc.error_code != _NOT_FOUND:
                    raise
                if version is not None and "Registered Model" not in str(exc.message):
                    raise VersionNotFoundError(self.model_name, version) from exc
                raise ModelNotFoundError(self.model_name) from exc

    # -- model and versions --------------------------------------------------------------

    def exists(self) -> bool:
        """Whether the registered model exists."""
        try:
            with self._calls():
                self._client.get_registered_model(self.model_name)
        except ModelNotFoundError:
            return False
        return True

    def ensure_model(self) -> None:
        """Create the registered model unless it exists (safe under concurrent callers)."""
        with self._calls():
            try:
                self._client.create_registered_model(
                    self.model_name, description="Managed by mlplat: see the deployment events."
                )
            except MlflowException as exc:
                if exc.error_code not in _ALREADY_EXISTS:
                    raise

    def create_version(self, model_uri: str, run_id: str | None, tags: Mapping[str, str]) -> int:
        """Register ``model_uri`` as a new version with ``tags``, in one MLflow call.

        Returns:
            The new version number.
        """
        with self._calls():
            mv = self._client.create_model_version(
                self.model_name,
                source=model_uri,
                run_id=run_id,
                tags=dict(tags),
                model_id=_logged_model_id(model_uri),
            )
        return parse_version(mv.version)

    def find_versions(self, model_uri: str, run_id: str | None) -> list[int]:
        """Versions registered from ``model_uri`` (by ``run_id`` when given), oldest first."""
        query = f"name='{self.model_name}'"
        if run_id:
            query += f" and run_id='{run_id}'"
        found: list[int] = []
        token: str | None = None
        with self._calls():
            while True:
                page = self._client.search_model_versions(query, page_token=token)
                found.extend(parse_version(mv.version) for mv in page if mv.source == model_uri)
                token = page.token
                if not token:
                    break
        return sorted(found)

    def delete_version(self, version: int) -> None:
        """Delete one version (only ever a duplicate this process just created)."""
        with self._calls(version):
            self._client.delete_model_version(self.model_name, str(version))

    def version(self, version: int) -> ModelVersionInfo:
        """One version.

        Raises:
            VersionNotFoundError: If it does not exist.
            ModelNotFoundError: If the model does not exist.
        """
        with self._calls(version):
            mv = self._client.get_model_version(self.model_name, str(version))
        return _version_info(self.model_name, mv)

    def artifact_uri(self, version: int) -> str:
        """Where the files of ``version`` are stored (MLflow's download URI).

        Raises:
            VersionNotFoundError: If it does not exist.
            ModelNotFoundError: If the model does not exist.
        """
        with self._calls(version):
            return str(self._client.get_model_version_download_uri(self.model_name, str(version)))

    def versions(self, *, with_aliases: bool = True) -> list[ModelVersionInfo]:
        """All versions, oldest first.

        Args:
            with_aliases: Fill in ``aliases`` (MLflow's search leaves them out, so this costs one
                more call).
        """
        found: list[ModelVersionInfo] = []
        token: str | None = None
        with self._calls():
            while True:
                page = self._client.search_model_versions(
                    f"name='{self.model_name}'", page_token=token
                )
                found.extend(_version_info(self.model_name, mv) for mv in page)
                token = page.token
                if not token:
                    break
            aliases: Mapping[str, object] = (
                self._client.get_registered_model(self.model_name).aliases or {}
                if with_aliases and found
                else {}
            )
        by_version: dict[int, list[str]] = {}
        for alias, target in aliases.items():
            by_version.setdefault(parse_version(target), []).append(alias)
        return sorted(
            (replace(v, aliases=tuple(sorted(by_version.get(v.version, [])))) for v in found),
            key=lambda info: info.version,
        )

    def reject_version(self, version: int) -> None:
        """Tag ``version`` as rejected."""
        with self._calls(version):
            self._client.set_model_version_tag(self.model_name, str(version), STATUS_TAG, REJECTED)

    # -- deployment state ----------------------------------------------------------------

    def observe(self) -> DeploymentState:
        """The deployment state as MLflow holds it now (one call).

        Raises:
            ModelNotFoundError: If the model does not exist.
        """
        with self._calls():
            model = self._client.get_registered_model(self.model_name)
        aliases: Mapping[str, object] = model.aliases or {}
        tags: Mapping[str, str] = model.tags or {}
        return DeploymentState(
            champion=self._alias(aliases, CHAMPION),
            challenger=self._alias(aliases, CHALLENGER),
            canary_weight=self._weight(tags.get(CANARY_WEIGHT_TAG)),
            previous_champion=self._tag_version(tags.get(PREVIOUS_CHAMPION_TAG)),
        )

    def apply(
        self, current: DeploymentState, target: DeploymentState, *, reject: int | None = None
    ) -> None:
        """Make MLflow hold ``target``, writing only what differs from ``current``.

        The order keeps serving safe if the process dies between two writes: the canary weight
        is cut first (see :func:`registry.state.interim_weight`) and raised last. Every write is
        absolute, so repeating ``apply`` is harmless.

        Args:
            current: What MLflow holds now (as last observed).
            target: What it must hold afterwards.
            reject: A version to tag rejected on the way.
        """
        interim = interim_weight(current, target)
        with self._calls():
            if interim != current.canary_weight:
                self._set_tag(CANARY_WEIGHT_TAG, format_weight(interim))
            if reject is not None:
                self.reject_version(reject)
            if target.previous_champion != current.previous_champion:
                self._set_or_delete_tag(PREVIOUS_CHAMPION_TAG, target.previous_champion)
            if target.champion != current.champion:
                self._set_or_delete_alias(CHAMPION, target.champion)
            if target.challenger != current.challenger:
                self._set_or_delete_alias(CHALLENGER, target.challenger)
            if target.canary_weight != interim:
                self._set_tag(CANARY_WEIGHT_TAG, format_weight(target.canary_weight))

    # -- internals -----------------------------------------------------------------------

    def _set_tag(self, key: str, value: str) -> None:
        self._client.set_registered_model_tag(self.model_name, key, value)

    def _set_or_delete_tag(self, key: str, version: int | None) -> None:
        if version is None:
            self._client.delete_registered_model_tag(self.model_name, key)
        else:
            self._set_tag(key, str(version))

    def _set_or_delete_alias(self, alias: str, version: int | None) -> None:
        if version is None:
            self._client.delete_registered_model_alias(self.model_name, alias)
        else:
            self._client.set_registered_model_alias(self.model_name, alias, str(version))

    def _alias(self, aliases: Mapping[str, object], alias: str) -> int | None:
        value = aliases.get(alias)
        return None if value is None else parse_version(value, field_name=f"alias {alias!r}")

    def _weight(self, text: str | None) -> float:
        if text is None:
            return 0.0
        try:
            weight = float(text)
        except ValueError:
            weight = float("nan")
        if not 0.0 <= weight <= 1.0:  # NaN fails this too
            # Fail safe: a hand-edited, unreadable weight sends no traffic to the challenger.
            logger.warning(
                "%s tag %s=%r is not a weight in [0, 1]; treating it as 0",
                self.model_name,
                CANARY_WEIGHT_TAG,
                text,
            )
            return 0.0
        return validate_weight(weight)

    def _tag_version(self, text: str | None) -> int | None:
        if text is None:
            return None
        try:
            return parse_version(text, field_name=PREVIOUS_CHAMPION_TAG)
        except InvalidMoveError:
            logger.warning("%s tag %s=%r is not a version; ignoring it", self.model_name,
                           PREVIOUS_CHAMPION_TAG, text)  # fmt: skip
            return None
