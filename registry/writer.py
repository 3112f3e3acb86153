"""How the registry writes: under the model's lock, after a repair, each write with its event.

Every alias move runs in three steps — write a *pending* event, move the alias in MLflow, mark the
event *applied* — after a reconcile that finishes whatever a dead process left half done, and
all of it holding the model's lock (:mod:`registry.lock`), so no other process plans from,
repairs or records as "external" a move that is still being made. Failpoints between the steps
(:mod:`registry.failpoints`) let the tests kill a mover at each of them.

A registration holds the same lock, so a retried one finds the version the first one made.
What a move *is* (which aliases go where, and whether it is allowed) is planned by the pure
functions of :mod:`registry.moves`; :class:`registry.ModelRegistry` pairs each public move with
its plan and documents what each write means.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from registry.database import short_error
from registry.errors import (
    EventStoreError,
    InvalidMoveError,
    ModelNotFoundError,
    MoveNotRecordedError,
)
from registry.event_store import EventStore
from registry.events import Action, DeploymentEvent, JsonValue
from registry.failpoints import Failpoints
from registry.lock import ModelLock, new_owner_id
from registry.mlflow_store import MlflowModelStore
from registry.moves import Move
from registry.reconcile import Reconciler
from registry.state import DeploymentState

__all__ = ["RegistryWriter", "require_reason"]

logger = logging.getLogger(__name__)


class RegistryWriter:
    """Carries out the writes of one model: registrations, alias moves, repairs.

    Args:
        store: The model in MLflow.
        events: The event log.
        reconciler: Repairs what a dead mover left, before each move.
        actor: Recorded as who acted.
        failpoints: Test-only fault injection between the steps.
        lock_lease_seconds: How long the model lock outlives a dead mover.
        lock_timeout_seconds: How long a move waits for another move of the same model.
    """

    def __init__(
        self,
        store: MlflowModelStore,
        events: EventStore,
        reconciler: Reconciler,
        actor: str,
        failpoints: Failpoints,
        *,
        lock_lease_seconds: float,
        lock_timeout_seconds: float,
    ) -> None:
        self._store = store
        self._events = events
        self._reconciler = reconciler
        self._actor = actor
        self._failpoints = failpoints
        self.lock_lease_seconds = lock_lease_seconds
        self.lock_timeout_seconds = lock_timeout_seconds
        self.model_name = store.model_name

    def register(
        self,
        model_uri: str,
        run_id: str | None,
        tags: Mapping[str, str],
        reason: str,
        evidence: str | None,
        details: Mapping[str, JsonValue] | None,
    ) -> int:
        """Register ``model_uri`` once, under the lock (:meth:`registry.ModelRegistry.register`).

        Returns:
            The version number: the existing one if ``model_uri`` was registered before.
        """
        require_reason(reason)
        self._store.ensure_model()
        with self.locked():
            self._reconciler.run(scan_versions=True)
            existing = self._store.find_versions(model_uri, run_id)
            if existing:
                return existing[0]
            created = self._store.create_version(model_uri, run_id, tags)
            version = self._keep_one(model_uri, run_id, created)
            self._events.record(
                self.model_name,
                Action.REGISTER,
                state=self._events.applied_state(self.model_name),
                actor=self._actor,
                reason=reason,
                to_version=version,
                evidence=evidence,
                details={"model_uri": model_uri, "run_id": run_id, **tags, **dict(details or {})},
            )
        return version

    def _keep_one(self, model_uri: str, run_id: str | None, created: int) -> int:
        """The one version of ``model_uri``: duplicates a retried create made are deleted."""
        found = self._store.find_versions(model_uri, run_id) or [created]
        for duplicate in found[1:]:
            logger.warning(
                "%s: version %d duplicates version %d (a retried create); deleting it",
                self.model_name,
                duplicate,
                found[0],
            )
            self._store.delete_version(duplicate)
        return found[0]

    def reconcile(self, *, wait: bool) -> list[DeploymentEvent]:
        """Repair under the lock; skip (``[]``) if a live move holds it and ``wait`` is false.

        See :meth:`registry.ModelRegistry.reconcile`.
        """
        lock = self.lock()
        if lock.acquire(wait=wait) is None:
            logger.info(
                "reconcile of %s skipped: a move is in flight (%s)",
                self.model_name,
                self._events.lock_holder(self.model_name).describe(),
            )
            return []
        try:
            return self._reconciler.run(scan_versions=True)[0]
        except ModelNotFoundError:
            return self._reconciler.abort_orphans()
        finally:
            lock.release()

    def lock(self) -> ModelLock:
        """The model's lock for one acquisition by this actor (not taken yet)."""
        return self._events.lock(
            self.model_name,
            owner=new_owner_id(self._actor),
            lease_seconds=self.lock_lease_seconds,
            timeout_seconds=self.lock_timeout_seconds,
        )

    @contextmanager
    def locked(self) -> Iterator[ModelLock]:
        """Hold the model lock (waiting for it) for the body; always released after."""
        lock = self.lock()
        lock.acquire()
        try:
            self._failpoints.hit("registry.after_lock")
            yield lock
        finally:
            lock.release()

    def move(
        self,
        plan: Callable[[DeploymentState], Move | None],
        reason: str,
        evidence: str | None,
        details: Mapping[str, JsonValue] | None,
    ) -> DeploymentEvent | None:
        """Plan from the state MLflow shows, under the lock, and carry the move out.

        Returns:
            The applied event, or ``None`` if ``plan`` found nothing to move.

        Raises:
            MoveNotRecordedError: If MLflow moved but the event could not be marked applied.
        """
        require_reason(reason)
        with self.locked() as lock:
            try:
                _, observed = self._reconciler.run(scan_versions=False)
            except ModelNotFoundError:
                self._reconciler.abort_orphans()
                raise
            self._failpoints.hit("registry.after_reconcile")
            move = plan(observed)
            if move is None:
                return None
            event = self._events.begin(
                self.model_name,
                move.action,
                state=move.after,
                actor=self._actor,
                reason=reason,
                alias=move.alias,
                from_version=move.from_version,
                to_version=move.to_version,
                evidence=evidence,
                details=details,
                expected=move.before,
                lease=lock.lease,
            )
            self._failpoints.hit("registry.after_begin")
            self._failpoints.hit("registry.before_alias_write")
            lock.check()  # the last moment to find out someone took over: MLflow has no fence
            try:
                self._store.apply(move.before, move.after, reject=move.reject)
            except Exception as exc:
                exc.add_note(
                    f"deployment event {event.id} ({move.action}) stays pending; the next "
                    "reconcile completes the move if the registry still allows it"
                )
                raise
            self._failpoints.hit("registry.after_alias_write")
            self._failpoints.hit("registry.before_mark_applied")
            try:
                return self._events.mark_applied(event.id)
            except EventStoreError as exc:
                raise MoveNotRecordedError(
                    event.id, _live_summary(self.model_name, move), short_error(exc)
                ) from exc


def _live_summary(model_name: str, move: Move) -> str:
    """What a move made live, for the message when its event could not be closed."""
    return (
        f"{move.action} of {model_name!r} done ({move.alias or 'weight'} "
        f"{move.from_version}->{move.to_version}): MLflow now shows {move.after.describe()}"
    )


def require_reason(reason: str) -> None:
    """Refuse a move or registration whose reason is blank."""
    if not reason.strip():
        raise InvalidMoveError("reason must say why; it is recorded on the deployment event")
