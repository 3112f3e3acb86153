"""Repairing divergence between MLflow and the event log (what ``reconcile()`` does).

Every alias move is three steps — pending event, MLflow writes, event applied — and a process
can die between any two. :class:`Reconciler` finds what that left behind:

* a pending event whose move is visible in MLflow is marked applied;
* a pending event whose move did not happen, or only half happened, is **rolled forward**:
  the intent was recorded durably and every write is absolute, so completing it is safe, and a
  controller's rollback is never lost. That needs MLflow to still show, field by field, the
  state before or after the move (:func:`registry.moves.is_partial`);
* a pending event contradicted by MLflow (someone else changed the state meanwhile) is aborted,
  and what MLflow shows is recorded as an ``external`` event;
* an alias or weight changed outside the API becomes an ``external`` event, and a version
  registered without an event gets a ``repair`` event.

It must run under the model's lock (:mod:`registry.lock`), which
:class:`registry.ModelRegistry` holds around it: then every pending event it sees belongs to a
process that finished or died (a live owner would still hold the lock), so finishing it is safe,
and no move in flight can show up as a difference between MLflow and the log. It reads the log
(pending, then applied) *before* MLflow: a move that completes between the two reads would
otherwise look like an MLflow change no event explains.
"""

from __future__ import annotations

import logging

from registry.event_store import EventStore
from registry.events import Action, DeploymentEvent
from registry.failpoints import Failpoints
from registry.mlflow_store import MlflowModelStore
from registry.moves import is_partial
from registry.state import DeploymentState

__all__ = ["Reconciler"]

logger = logging.getLogger(__name__)

EXTERNAL_ACTOR = "unknown (outside mlplat)"


class Reconciler:
    """Repairs one model; :class:`registry.ModelRegistry` runs it before every move.

    Args:
        store: The model in MLflow.
        events: The event log.
        actor: Recorded on repair events as who found the problem.
        failpoints: Test-only fault injection.
    """

    def __init__(
        self,
        store: MlflowModelStore,
        events: EventStore,
        actor: str,
        *,
        failpoints: Failpoints | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.model_name = store.model_name
        self.actor = actor
        self._failpoints = failpoints or Failpoints()

    def run(self, *, scan_versions: bool) -> tuple[list[DeploymentEvent], DeploymentState]:
        """Repair, then return what was repaired and the state MLflow holds afterwards.

        Args:
            scan_versions: Also look for versions registered without an event (one search over
                all versions; alias moves skip it because such a version cannot change what is
                served, ``register`` and an explicit ``reconcile()`` do it).
        """
        pending = self.events.pending(self.model_name)
        self._failpoints.hit("reconcile.after_read_log")
        observed = self.store.observe()
        repaired = []
        for event in pending:
            resolved, observed = self._resolve(event, observed)
            repaired.append(resolved)
        if scan_versions:
            repaired.extend(self._record_unregistered_versions())
        logged = self.events.applied_state(self.model_name)
        if observed != logged:
            repaired.append(self._record_external(logged, observed))
        return repaired, observed

    def abort_orphans(self) -> list[DeploymentEvent]:
        """Abort the pending events of a model that no longer exists in MLflow."""
        return [
            self.events.mark_aborted(event.id, "the registered model does not exist")
            for event in self.events.pending(self.model_name)
        ]

    def _resolve(
        self, event: DeploymentEvent, observed: DeploymentState
    ) -> tuple[DeploymentEvent, DeploymentState]:
        """Finish or abort one pending event left by an interrupted move."""
        before = self.events.state_before(event)
        after = event.state
        reject = event.from_version if event.action is Action.REJECT else None
        tagged = reject is None or self.store.version(reject).rejected
        if observed == after and tagged:
            logger.info("deployment event %s had been applied; marking it", event.id)
            done = self.events.mark_applied(event.id, note="move found done by reconcile")
            return done, observed
        if is_partial(observed, before, after):
            logger.warning("completing interrupted deployment event %s", event.id)
            self.store.apply(observed, after, reject=reject)
            note = "interrupted move completed by reconcile"
            return self.events.mark_applied(event.id, note=note), after
        logger.warning("aborting deployment event %s: MLflow moved elsewhere", event.id)
        aborted = self.events.mark_aborted(
            event.id,
            f"MLflow shows {observed.describe()}, neither the state before "
            f"({before.describe()}) nor after the move; recorded as external instead",
        )
        return aborted, observed

    def _record_unregistered_versions(self) -> list[DeploymentEvent]:
        recorded = self.events.recorded_versions(self.model_name)
        missing = [v for v in self.store.versions(with_aliases=False) if v.version not in recorded]
        if not missing:
            return []
        state = self.events.applied_state(self.model_name)
        return [
            self.events.record(
                self.model_name,
                Action.REPAIR,
                state=state,
                actor=self.actor,
                reason=f"version {info.version} was registered without an event",
                to_version=info.version,
                details={"model_uri": info.source, "run_id": info.run_id, **info.tags},
                status_reason="found by reconcile",
            )
            for info in missing
        ]

    def _record_external(
        self, logged: DeploymentState, observed: DeploymentState
    ) -> DeploymentEvent:
        if observed.champion != logged.champion:
            alias, old, new = "champion", logged.champion, observed.champion
        elif observed.challenger != logged.challenger:
            alias, old, new = "challenger", logged.challenger, observed.challenger
        else:
            alias, old, new = None, logged.challenger, observed.challenger
        logger.warning(
            "%s changed outside mlplat: %s (event log had %s)",
            self.model_name,
            observed.describe(),
            logged.describe(),
        )
        return self.events.record(
            self.model_name,
            Action.EXTERNAL,
            state=observed,
            actor=EXTERNAL_ACTOR,
            reason=f"MLflow shows {observed.describe()}; event log had {logged.describe()}",
            alias=alias,
            from_version=old,
            to_version=new,
            details={"detected_by": self.actor},
            status_reason="found by reconcile",
        )
