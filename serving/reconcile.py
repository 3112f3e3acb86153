"""Keep the served models in line with the registry.

Every ``interval_seconds`` (and on ``POST /admin/reload``) the reconciler reads the desired state
(champion, challenger, canary weight), loads any version it does not hold yet in a worker thread,
checks it with one smoke prediction, and installs a new :class:`~serving.deployment.Deployment`
in one assignment. Requests in flight finish on the snapshot they started with.

A version that fails to load or to predict is not installed: the model already serving that role
keeps serving, the failure is listed by ``/ready`` and counted in
``mlplat_model_load_failures_total`` / ``mlplat_model_load_failing``. Automatic polls retry a
failed version only every ``retry_failed_seconds`` (loading a broken artifact every few seconds
helps nobody); an admin reload retries at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from dataclasses import dataclass
from datetime import datetime

from features import FEATURE_NAMES
from serving.batcher import Predictor, limit_threads, positive_probabilities
from serving.deployment import (
    Deployment,
    DeploymentHolder,
    DesiredState,
    LoadedModel,
    LoadFailure,
    ModelSource,
    now,
)
from serving.metrics import ServingMetrics
from serving.routing import CANARY, CHAMPION, Variant
from serving.schemas import EXAMPLE_RECORD

logger = logging.getLogger(__name__)

SMOKE_ROW = tuple(EXAMPLE_RECORD[name] for name in FEATURE_NAMES)
"""A valid record every new model must score before it serves."""


@dataclass(frozen=True)
class ReconcileResult:
    """Outcome of one reconciliation.

    Attributes:
        changed: Whether the served versions or the canary weight changed.
        converged: Whether everything the registry asks for now serves.
        deployment: The snapshot now serving.
        registry_error: Why the registry could not be read, if it could not.
    """

    changed: bool
    converged: bool
    deployment: Deployment
    registry_error: str | None = None


def _load_and_check(source: ModelSource, version: int, threads: int) -> Predictor:
    with limit_threads(threads):
        predictor = source.load(version)
        (probability,) = positive_probabilities(predictor, [SMOKE_ROW])
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"smoke prediction returned {probability}, not a probability")
    return predictor


class Reconciler:
    """Polls a :class:`ModelSource` and swaps the :class:`DeploymentHolder`'s snapshot.

    Args:
        source: Desired state and model loading.
        holder: The cell requests read.
        metrics: Where model info, canary weight and load failures are published.
        interval_seconds: Time between polls.
        retry_failed_seconds: Time before a poll retries a version that failed to load.
        model_threads: BLAS/OpenMP threads while loading and smoke-testing.
    """

    def __init__(
        self,
        source: ModelSource,
        holder: DeploymentHolder,
        metrics: ServingMetrics,
        *,
        interval_seconds: float = 5.0,
        retry_failed_seconds: float = 60.0,
        model_threads: int = 1,
    ) -> None:
        self.source = source
        self.holder = holder
        self.metrics = metrics
        self.interval_seconds = interval_seconds
        self.retry_failed_seconds = retry_failed_seconds
        self.model_threads = model_threads
        self.registry_error: str | None = None
        self._failed: dict[int, LoadFailure] = {}
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start polling on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="reconciler")

    async def stop(self) -> None:
        """Stop polling (a reconciliation in progress finishes first)."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_seconds)
            if self._stop.is_set():
                return
            try:
                await self.reconcile()
            except Exception:  # the poller must outlive any single bad poll
                logger.exception("reconcile: unexpected failure; will retry")

    async def reconcile(self, *, force: bool = False) -> ReconcileResult:
        """Bring the served deployment in line with the registry once.

        Args:
            force: Retry versions that failed recently (an operator asked for it).
        """
        async with self._lock:
            current = self.holder.current
            try:
                desired = await asyncio.to_thread(self.source.desired)
            except Exception as exc:
                # Keep serving what we have: a registry outage must not become a serving outage.
                self.registry_error = f"registry unavailable ({type(exc).__name__})"
                logger.warning("reconcile: cannot read the registry: %s", exc)
                return ReconcileResult(False, False, current, self.registry_error)
            self.registry_error = None
            champion = await self._resolve(CHAMPION, desired.champion, desired, current, force)
            canary = None
            if desired.canary_active:
                canary = await self._resolve(CANARY, desired.challenger, desired, current, force)
            weight = desired.canary_weight if canary is not None else 0.0
            wanted = {
                v
                for v in (desired.champion, desired.challenger if desired.canary_active else None)
                if v
            }
            failures = tuple(f for v, f in sorted(self._failed.items()) if v in wanted)
            new = Deployment(champion, canary, weight, failures, now())
            self.holder.swap(new)
            changed = new.placement() != current.placement()
            self._publish(current, new)
            converged = (champion.version if champion else None) == desired.champion and (
                canary.version if canary else None
            ) == (desired.challenger if desired.canary_active else None)
            if changed:
                logger.info("reconcile: now serving %s", new.placement())
                gc.freeze()  # keep the new model out of future collections (see runtime.py)
            return ReconcileResult(changed, converged, new)

    async def _resolve(
        self,
        variant: Variant,
        version: int | None,
        desired: DesiredState,
        current: Deployment,
        force: bool,
    ) -> LoadedModel | None:
        since = desired.champion_since if variant == CHAMPION else desired.challenger_since
        held = current.champion if variant == CHAMPION else current.canary
        if version is None:
            return None
        for model in (current.champion, current.canary):
            if model is not None and model.version == version:
                # Promotion reuses the loaded object: no reload, no cold start.
                same_role = model is held
                role_since = since or (model.since if same_role else now())
                return LoadedModel(version, model.predictor, model.loaded_at, role_since)
        failure = self._failed.get(version)
        if (
            failure is not None
            and not force
            and (now() - failure.since).total_seconds() < self.retry_failed_seconds
        ):
            return held
        try:
            predictor = await asyncio.to_thread(
                _load_and_check, self.source, version, self.model_threads
            )
        except Exception as exc:
            logger.exception("reconcile: %s version %d failed to load", variant, version)
            self._failed[version] = LoadFailure(variant, version, type(exc).__name__, now())
            self.metrics.record_load_failure(variant, str(version))
            return held
        self._failed.pop(version, None)
        loaded_at = now()
        return LoadedModel(version, predictor, loaded_at, since or loaded_at)

    def _publish(self, old: Deployment, new: Deployment) -> None:
        def served(d: Deployment) -> set[tuple[str, str]]:
            pairs = {(CHAMPION, d.champion.label)} if d.champion else set()
            return pairs | ({(CANARY, d.canary.label)} if d.canary else set())

        before, after = served(old), served(new)
        for variant, version in before - after:
            self.metrics.set_serving(variant, version, False)
        for variant, version in after:
            self.metrics.set_serving(variant, version, True)
        self.metrics.set_canary_weight(new.canary_weight)
        failing = {f.variant for f in new.failures}
        for variant in (CHAMPION, CANARY):
            if variant not in failing:
                self.metrics.clear_load_failure(variant)

    @property
    def last_reconciled_at(self) -> datetime | None:
        """When the current snapshot was installed."""
        return self.holder.current.reconciled_at
