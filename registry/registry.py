"""The model registry API: register versions, move aliases, and keep an event for every move.

Every alias move runs in three steps — write a *pending* event, move the alias in MLflow, mark
the event *applied* — and reconciliation (:mod:`registry.reconcile`) runs before each mutating
call, so a process killed between two steps is repaired by whichever process acts next
(:mod:`registry.writer` carries the writes out; this module says what each one means).

Moves are idempotent (repeating one whose result is already in place writes nothing) and can be
conditional (``expected_champion``/``expected_challenger``), and the event log itself is a
compare-and-set: a move is only written if the state it was planned from is still the latest.

Moves are linearizable: each one holds the model's lock (:mod:`registry.lock`) from reading the
state, through the pending event and the MLflow writes, to marking the event applied, and
reconcile takes the same lock — so no process ever plans from, repairs or records as "external"
a move another live process is still making.
"""

# Over the ~400 lines the house aims for, on purpose: this is the component's public class, and
# about 190 of its lines are the docstrings its callers read. How the writes are carried out is
# in registry/writer.py, what each move does in registry/moves.py.

from __future__ import annotations

import re
from collections.abc import Mapping

from mlflow import MlflowClient

from registry.errors import (
    InvalidMoveError,
    StaleStateError,
)
from registry.event_store import EventStore
from registry.events import Action, DeploymentEvent, JsonValue
from registry.failpoints import Failpoints
from registry.mlflow_store import MlflowModelStore
from registry.moves import (
    Move,
    plan_bootstrap,
    plan_canary,
    plan_challenger,
    plan_promote,
    plan_reject,
    plan_rollback,
    plan_weight,
)
from registry.reconcile import Reconciler
from registry.since import SinceReader
from registry.state import DeploymentState, parse_version, validate_weight
from registry.versions import ModelVersionInfo, lineage_tags
from registry.writer import RegistryWriter

__all__ = ["ModelRegistry"]

_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_MODEL_NAME = re.compile(r"^[^'\"/:]+$")


class ModelRegistry:
    """One registered model, its aliases and its deployment events.

    Args:
        client: MLflow client; its registry URI decides where models live (SQLite file or
            ``mlflow server`` over HTTP).
        events: Where deployment events are written.
        model_name: The registered model this instance manages.
        actor: Recorded as who acted on every event (``user@host``, ``ci``, ``controller``).
        failpoints: Test-only fault injection (:mod:`registry.failpoints`); none by default.
        lock_lease_seconds: How long the model lock outlives a dead mover (:mod:`registry.lock`).
        lock_timeout_seconds: How long a move waits for another move of the same model.
        since_timeout_seconds: How long :meth:`state` waits for the "since" times from the
            event log before it answers without them (:mod:`registry.since`).
        since_retry_seconds: How long :meth:`state` stops reading them after a failed read.

    Raises:
        InvalidMoveError: If ``model_name`` or ``actor`` is empty or ``model_name`` holds a
            quote, slash or colon.
    """

    def __init__(
        self,
        client: MlflowClient,
        events: EventStore,
        model_name: str,
        actor: str,
        *,
        failpoints: Failpoints | None = None,
        lock_lease_seconds: float = 15.0,
        lock_timeout_seconds: float = 30.0,
        since_timeout_seconds: float = 1.0,
        since_retry_seconds: float = 15.0,
    ) -> None:
        if not model_name.strip() or not _MODEL_NAME.match(model_name):
            raise InvalidMoveError(
                f"model_name must be non-empty with no quotes, '/' or ':', got {model_name!r}"
            )
        if not actor.strip():
            raise InvalidMoveError("actor must not be empty: every event records who acted")
        self._store = MlflowModelStore(client, model_name)
        failpoints = failpoints or Failpoints()
        self._writer = RegistryWriter(
            self._store,
            events,
            Reconciler(self._store, events, actor, failpoints=failpoints),
            actor,
            failpoints,
            lock_lease_seconds=lock_lease_seconds,
            lock_timeout_seconds=lock_timeout_seconds,
        )
        self._since = SinceReader(
            events,
            model_name,
            timeout_seconds=since_timeout_seconds,
            retry_seconds=since_retry_seconds,
        )
        self.events = events
        self.model_name = model_name
        self.actor = actor

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking/registry URI this registry talks to."""
        return self._store.uri

    @property
    def events_error(self) -> str | None:
        """Why the event log cannot be read for the "since" times, or ``None`` while it answers.

        The aliases are still read from MLflow meanwhile; this says what is degraded.
        """
        return self._since.error

    @property
    def lock_lease_seconds(self) -> float:
        """How long this registry's model lock outlives a dead mover."""
        return self._writer.lock_lease_seconds

    @property
    def lock_timeout_seconds(self) -> float:
        """How long a move waits for another move of the same model."""
        return self._writer.lock_timeout_seconds

    def __repr__(self) -> str:
        return f"ModelRegistry({self.model_name!r}, mlflow={self._store.uri!r}, {self.events!r})"

    # -- reading -------------------------------------------------------------------------

    def state(self) -> DeploymentState:
        """The deployment state as MLflow holds it, with "since" times from the event log.

        Serving polls this; it costs one MLflow call and, best effort, two small queries. The
        queries never hold the answer up for long: if the event database fails or does not
        answer within ``since_timeout_seconds``, the state is returned at once with the last
        known times (or none), and the log is not read again for ``since_retry_seconds``
        (:mod:`registry.since`). An event-database outage never makes this fail.

        Raises:
            ModelNotFoundError: If the model is not registered yet.
            RegistryUnavailable: If MLflow cannot be reached.
        """
        return self._since.fill(self._store.observe())

    def version(self, version: int) -> ModelVersionInfo:
        """One registered version.

        Raises:
            VersionNotFoundError: If there is no such version.
        """
        return self._store.version(parse_version(version))

    def versions(self) -> list[ModelVersionInfo]:
        """All registered versions, oldest first."""
        return self._store.versions()

    def model_uri(self, version_or_alias: int | str) -> str:
        """The URI that loads a version or an alias.

        Args:
            version_or_alias: ``3``, ``"3"`` or an alias such as ``"champion"``.

        Returns:
            ``models:/<name>/3`` or ``models:/<name>@champion``.
        """
        if isinstance(version_or_alias, int) or str(version_or_alias).strip().isdigit():
            return f"models:/{self.model_name}/{parse_version(version_or_alias)}"
        if not _ALIAS.match(version_or_alias):
            raise InvalidMoveError(
                f"version_or_alias must be a version number or an alias of letters, digits, "
                f"'_' or '-', got {version_or_alias!r}"
            )
        return f"models:/{self.model_name}@{version_or_alias}"

    def artifact_uri(self, version: int) -> str:
        """Where the files of ``version`` are stored, to download with this registry's URI.

        Unlike :meth:`model_uri`, it needs no MLflow registry URI to resolve: MLflow resolves
        ``models:/`` URIs through its process-wide registry URI alone.

        Raises:
            VersionNotFoundError: If there is no such version.
        """
        return self._store.artifact_uri(parse_version(version))

    def history(self, limit: int = 100) -> list[DeploymentEvent]:
        """This model's deployment events, newest first."""
        return self.events.history(self.model_name, limit)

    # -- registering ---------------------------------------------------------------------

    def ensure_model(self) -> None:
        """Create the registered model if it does not exist yet."""
        self._store.ensure_model()

    def register(
        self,
        model_uri: str,
        run_id: str | None,
        lineage: Mapping[str, str],
        *,
        reason: str,
        evidence: str | None = None,
        details: Mapping[str, JsonValue] | None = None,
    ) -> int:
        """Register a logged model as a new version, tagged with its lineage.

        Registering the same ``model_uri`` (from the same run) again returns the existing
        version and writes no event, so a retried CI job does not create duplicates: the lookup
        and the creation hold the model lock, and if MLflow's client retried the create behind
        our back (a lost response), the extra versions it made are deleted at once.

        Args:
            model_uri: What ``log_model`` returned (``ModelInfo.model_uri``, ``models:/m-…``),
                or ``runs:/<run_id>/<path>``.
            run_id: The training run.
            lineage: ``data_digest``, ``code_version``, ``gate_verdict``… stored as
                ``mlplat.*`` version tags and in the event's details.
            reason: Why it is registered.
            evidence: Link or path to the evaluation report.
            details: Extra JSON numbers for the event (metrics).

        Returns:
            The version number.
        """
        return self._writer.register(
            model_uri, run_id, lineage_tags(lineage), reason, evidence, details
        )

    # -- moving aliases ------------------------------------------------------------------

    def bootstrap(
        self, version: int, *, reason: str, evidence: str | None = None
    ) -> DeploymentEvent | None:
        """Make ``version`` the first champion of the model.

        Returns:
            The applied event, or ``None`` if it already was the champion.

        Raises:
            InvalidMoveError: If another version is champion already, or ``version`` is rejected.
        """
        return self._writer.move(
            lambda state: plan_bootstrap(state, self._usable(version)), reason, evidence, None
        )

    def set_challenger(
        self, version: int, *, reason: str, evidence: str | None = None
    ) -> DeploymentEvent | None:
        """Point the ``challenger`` alias at ``version`` with no traffic (weight 0)."""
        return self._writer.move(
            lambda state: plan_challenger(state, self._usable(version)), reason, evidence, None
        )

    def set_canary_weight(
        self,
        weight: float,
        *,
        reason: str,
        evidence: str | None = None,
        details: Mapping[str, JsonValue] | None = None,
        expected_challenger: int | None = None,
    ) -> DeploymentEvent | None:
        """Send ``weight`` (0..1) of the traffic to the challenger.

        Args:
            weight: Share of requests for the challenger, 0 to 1 inclusive.
            reason: Why.
            evidence: Link or path to evidence.
            details: JSON numbers behind the decision.
            expected_challenger: Only change the weight if this version is the challenger.

        Raises:
            InvalidMoveError: If the weight is outside [0, 1] or there is no challenger.
            StaleStateError: If ``expected_challenger`` is not the challenger.
        """
        validate_weight(weight)  # bad input fails before anything is read or written

        def plan(state: DeploymentState) -> Move | None:
            if expected_challenger is not None and state.challenger != expected_challenger:
                raise StaleStateError(
                    f"expected challenger {expected_challenger} of {self.model_name!r}, "
                    f"registry has {state.challenger}; weight not changed"
                )
            return plan_weight(state, weight)

        return self._writer.move(plan, reason, evidence, details)

    def start_canary(
        self,
        version: int,
        weight: float,
        *,
        reason: str,
        evidence: str | None = None,
        details: Mapping[str, JsonValue] | None = None,
    ) -> DeploymentEvent | None:
        """Make ``version`` the challenger and send it ``weight`` of the traffic, as one event."""
        validate_weight(weight)
        return self._writer.move(
            lambda state: plan_canary(state, self._usable(version), weight),
            reason,
            evidence,
            details,
        )

    def promote(
        self,
        version: int,
        *,
        reason: str,
        evidence: str | None = None,
        details: Mapping[str, JsonValue] | None = None,
        expected_champion: int | None = None,
    ) -> DeploymentEvent | None:
        """Move ``champion`` to ``version``; clear the challenger and the canary weight.

        The old champion is remembered (``previous_champion``) for :meth:`rollback`.

        Args:
            version: The new champion.
            reason: Why.
            evidence: Link or path to evidence (canary analysis).
            details: JSON numbers behind the decision.
            expected_champion: Compare-and-set: only promote if this version is champion now.

        Returns:
            The applied event, or ``None`` if ``version`` already is champion.

        Raises:
            StaleStateError: If ``expected_champion`` is not the champion.
            InvalidMoveError: If ``version`` is rejected.
        """

        def plan(state: DeploymentState) -> Move | None:
            if state.champion == parse_version(version):
                return None
            self._expect_champion(state, expected_champion)
            return plan_promote(state, self._usable(version))

        return self._writer.move(plan, reason, evidence, details)

    def rollback(
        self,
        *,
        reason: str,
        evidence: str | None = None,
        details: Mapping[str, JsonValue] | None = None,
        expected_champion: int | None = None,
    ) -> DeploymentEvent | None:
        """Move ``champion`` back to the previous champion.

        Args:
            reason: Why.
            evidence: Link or path to evidence.
            details: JSON numbers behind the decision.
            expected_champion: Roll back only from this champion. If the champion already went
                back from it (the latest rollback says so), this is a no-op: a restarted
                controller repeating its rollback does not roll back twice.

        Returns:
            The applied event, or ``None`` if the rollback had already happened.

        Raises:
            NoPreviousChampionError: If no previous champion is recorded.
            InvalidMoveError: If the previous champion has been rejected since (a rejected
                version never serves again), or already is the champion.
            StaleStateError: If ``expected_champion`` is not the champion for another reason.
        """

        def plan(state: DeploymentState) -> Move | None:
            if expected_champion is not None and state.champion != expected_champion:
                done = self.events.last(self.model_name, Action.ROLLBACK)
                if (
                    done is not None
                    and done.from_version == expected_champion
                    and done.to_version == state.champion
                ):
                    return None
                self._expect_champion(state, expected_champion)
            previous = state.previous_champion
            rejected = previous is not None and self._store.version(previous).rejected
            return plan_rollback(state, self.model_name, previous_rejected=rejected)

        return self._writer.move(plan, reason, evidence, details)

    def reject(
        self,
        version: int,
        *,
        reason: str,
        evidence: str | None = None,
        details: Mapping[str, JsonValue] | None = None,
    ) -> DeploymentEvent | None:
        """Mark ``version`` rejected (tag ``mlplat.status=rejected``).

        If it is the challenger, its canary weight goes to 0 first and the ``challenger`` alias
        is removed. A rejected version cannot become challenger or champion again.

        Returns:
            The applied event, or ``None`` if it was already rejected and not the challenger.

        Raises:
            InvalidMoveError: If ``version`` is the champion.
        """
        number = parse_version(version)

        def plan(state: DeploymentState) -> Move | None:
            info = self._store.version(number)
            return plan_reject(state, number, already_rejected=info.rejected)

        return self._writer.move(plan, reason, evidence, details)

    # -- repair --------------------------------------------------------------------------

    def reconcile(self, *, wait: bool = False) -> list[DeploymentEvent]:
        """Bring the event log and MLflow back into agreement (see :mod:`registry.reconcile`).

        Runs (under the model lock) before every mutating call; cheap (a few reads) when
        nothing needs repair. It takes the same lock as a move, so it never repairs a move that
        a live process is still making: if one is, there is nothing to repair yet and this
        returns at once (or, with ``wait``, waits for the lock like a move does).

        Args:
            wait: Wait up to the lock timeout for a move in flight instead of skipping.

        Returns:
            The events resolved or written by the repair, oldest first (empty if none).

        Raises:
            MoveInProgressError: With ``wait``, if the lock stays held past the timeout.
        """
        return self._writer.reconcile(wait=wait)

    # -- internals -----------------------------------------------------------------------

    def _usable(self, version: int) -> int:
        """``version`` if it exists and is not rejected."""
        info = self._store.version(parse_version(version))
        if info.rejected:
            raise InvalidMoveError(
                f"version {info.version} of {self.model_name!r} is rejected and cannot serve; "
                "register a new version instead"
            )
        return info.version

    def _expect_champion(self, state: DeploymentState, expected: int | None) -> None:
        if expected is not None and state.champion != expected:
            raise StaleStateError(
                f"expected champion {expected} of {self.model_name!r}, registry has "
                f"{state.champion}; nothing was moved"
            )
