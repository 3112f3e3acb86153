"""Keep the served models in line with the registry.

Every ``interval_seconds`` (and on ``POST /admin/reload``) the reconciler reads the desired state
(champion, challenger, canary weight), loads any version it does not hold yet in a worker thread,
chooses the path its predictions take (compiled or reference: :mod:`serving.inference_path`),
checks it with one smoke prediction, and installs a new :class:`~serving.snapshot.Deployment`
in one assignment. Requests in flight finish on the snapshot they started with.

A version that fails to load or to predict is not installed: the model already serving that role
keeps serving, the failure is listed by ``/ready`` and counted in
``mlplat_model_load_failures_total`` / ``mlplat_model_load_failing``. Automatic polls retry a
failed version only every ``retry_failed_seconds`` (loading a broken artifact every few seconds
helps nobody); an admin reload retries at once.

A version the registry may not serve (rejected, or never passed the gate: see
:mod:`registry.admission`) is refused the same way, whoever moved the alias: the champion
already serving keeps serving, a refused canary gets no traffic, and a canary weight above the
cap is clamped. Refusals are listed by ``/model`` and ``/ready``, counted in
``mlplat_model_load_refusals_total`` and logged as warnings.

The lock is held only to install a snapshot, never while the registry or a model download is
awaited: a poll blocked on a dead MLflow must not block ``POST /admin/reload`` or the next poll.
Polls are numbered, and a slow poll that finishes after a newer one installs nothing. The
registry's health is tracked separately from the polls in flight: ``registry_error`` reports an
outage as soon as a poll fails, or once no poll has succeeded for ``stale_after_seconds``
(:mod:`serving.registry_health`). What may serve, and the snapshot that serves it, are pure
functions of the registry's answer and the current snapshot (:mod:`serving.placement`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
from dataclasses import dataclass
from datetime import datetime

from features import FEATURE_NAMES
from interfaces.routing import CANARY, CHAMPION, Variant
from pipeline.threads import limit_threads
from serving.batcher import Predictor, positive_probabilities
from serving.cache import CachedDeployment, ModelCache
from serving.deployment import ModelSource
from serving.inference_path import choose_path, path_of
from serving.metrics import ServingMetrics
from serving.placement import Target, admit, next_deployment
from serving.registry_health import RegistryHealth
from serving.schemas import EXAMPLE_RECORD
from serving.snapshot import (
    Deployment,
    DeploymentHolder,
    LoadedModel,
    LoadFailure,
    Refusal,
    now,
)

logger = logging.getLogger(__name__)

SMOKE_ROW = tuple(EXAMPLE_RECORD[name] for name in FEATURE_NAMES)
"""A valid record every new model must score before it serves."""


@dataclass(frozen=True)
class ReconcileResult:
    """Outcome of one reconciliation.

    Attributes:
        changed: Whether the served versions or the canary weight changed.
        converged: Whether everything the registry asks for now serves, as asked.
        deployment: The snapshot now serving.
        registry_error: Why the registry could not be read, if it could not.
    """

    changed: bool
    converged: bool
    deployment: Deployment
    registry_error: str | None = None


def _load_and_check(source: ModelSource, version: int, threads: int, compiled: bool) -> Predictor:
    with limit_threads(threads):
        predictor = choose_path(source.load(version), enabled=compiled)
        (probability,) = positive_probabilities(predictor, [SMOKE_ROW])
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"smoke prediction returned {probability}, not a probability")
    logger.info("version %d serves through the %s path: %s", version, *path_of(predictor))
    return predictor


def _choose_paths(
    models: dict[int, Predictor], compiled: bool, threads: int
) -> dict[int, Predictor]:
    with limit_threads(threads):
        return {version: choose_path(m, enabled=compiled) for version, m in models.items()}


class Reconciler:
    """Polls a :class:`ModelSource` and swaps the :class:`DeploymentHolder`'s snapshot.

    Args:
        source: Desired state and model loading.
        holder: The cell requests read.
        metrics: Where model info, canary weight, load failures and refusals are published.
        interval_seconds: Time between polls.
        retry_failed_seconds: Time before a poll retries a version that failed to load.
        model_threads: BLAS/OpenMP threads while loading and smoke-testing.
        max_canary_weight: The platform's cap on the canary weight.
        stale_after_seconds: Age of the last successful poll at which the registry is reported
            stale; default three intervals.
        cache: Where the served models are kept for a restart without the registry.
        compiled_inference: Serve a model through the compiled path when it qualifies
            (:func:`serving.inference_path.choose_path`).
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
        max_canary_weight: float = 1.0,
        stale_after_seconds: float | None = None,
        cache: ModelCache | None = None,
        compiled_inference: bool = True,
    ) -> None:
        self.source = source
        self.holder = holder
        self.metrics = metrics
        self.interval_seconds = interval_seconds
        self.retry_failed_seconds = retry_failed_seconds
        self.model_threads = model_threads
        self.max_canary_weight = max_canary_weight
        self.cache = cache
        self.compiled_inference = compiled_inference
        self._health = RegistryHealth(stale_after_seconds or 3 * interval_seconds)
        self._failed: dict[int, LoadFailure] = {}
        self._loading: dict[int, asyncio.Future[Predictor]] = {}
        self._tickets = itertools.count(1)
        self._applied = 0
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[ReconcileResult]] = set()

    # --- lifecycle ---------------------------------------------------------------------------
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
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def reconcile_in_background(self, *, force: bool = False) -> asyncio.Task[ReconcileResult]:
        """Start one reconciliation as a task the reconciler keeps (and cancels on stop)."""
        task = asyncio.get_running_loop().create_task(self.reconcile(force=force))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

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

    # --- registry health ---------------------------------------------------------------------
    @property
    def event_log_error(self) -> str | None:
        """Why the registry's event log cannot be read, if the source can tell (else ``None``).

        A source that reads an event log beside MLflow (:class:`RegistryModelSource`) exposes
        ``events_error``; the models keep being followed from MLflow meanwhile.
        """
        error = getattr(self.source, "events_error", None)
        return error if isinstance(error, str) else None

    @property
    def registry_error(self) -> str | None:
        """Why the registry is not being followed right now, or ``None`` when it is.

        Set at once by a failed poll; set too when no poll has succeeded for
        ``stale_after_seconds``, which catches a poll blocked on an MLflow that accepts
        connections but never answers (:mod:`serving.registry_health`).
        """
        return self._health.error

    @property
    def last_success_at(self) -> datetime | None:
        """When a poll last read the registry, if one has."""
        return self._health.last_success_at

    # --- one reconciliation ------------------------------------------------------------------
    async def reconcile(self, *, force: bool = False) -> ReconcileResult:
        """Bring the served deployment in line with the registry once.

        Args:
            force: Retry versions that failed recently (an operator asked for it).
        """
        ticket = next(self._tickets)
        try:
            desired = await asyncio.to_thread(self.source.desired)
        except Exception as exc:
            # Keep serving what we have: a registry outage must not become a serving outage.
            self._health.failed(exc, ticket)
            return ReconcileResult(False, False, self.holder.current, self.registry_error)
        self.metrics.set_registry_success(self._health.answered(ticket).timestamp())
        target = admit(desired, self.max_canary_weight)
        fresh: dict[int, tuple[Predictor, datetime]] = {}
        roles: tuple[tuple[Variant, int | None], ...] = (
            (CHAMPION, target.champion),
            (CANARY, target.canary),
        )
        for variant, version in roles:
            if version is not None and not self._is_loaded(version):
                loaded = await self._load(variant, version, force)
                if loaded is not None:
                    fresh[version] = (loaded, now())
        async with self._lock:
            current = self.holder.current
            if ticket < self._applied:
                # A newer poll already installed a newer view of the registry.
                return ReconcileResult(False, False, current)
            self._applied = ticket
            refusals = self._refusals(target, current)
            new = next_deployment(desired, target, current, fresh, self._failed, refusals, now())
            self.holder.swap(new)
            self._publish(current, new)
        changed = new.placement() != current.placement()
        if changed:
            logger.info("reconcile: now serving %s", new.placement())
            gc.freeze()  # keep the new model out of future collections (see runtime.py)
        if changed or current.from_cache:
            await self._save_cache(new)
        converged = not new.refusals and new.placement() == (
            desired.champion,
            desired.challenger if desired.canary_active else None,
            desired.canary_weight if desired.canary_active else 0.0,
        )
        return ReconcileResult(changed, converged, new)

    def _is_loaded(self, version: int) -> bool:
        current = self.holder.current
        models = (current.champion, current.canary)
        return any(m is not None and m.version == version for m in models)

    async def _load(self, variant: Variant, version: int, force: bool) -> Predictor | None:
        """Load and smoke-test ``version`` (once, however many polls ask for it at a time)."""
        failure = self._failed.get(version)
        if (
            failure is not None
            and not force
            and (now() - failure.since).total_seconds() < self.retry_failed_seconds
        ):
            return None
        pending = self._loading.get(version)
        if pending is None:
            pending = asyncio.ensure_future(
                asyncio.to_thread(
                    _load_and_check,
                    self.source,
                    version,
                    self.model_threads,
                    self.compiled_inference,
                )
            )
            self._loading[version] = pending
            pending.add_done_callback(lambda _: self._loading.pop(version, None))
        try:
            predictor = await asyncio.shield(pending)
        except Exception as exc:
            if self._failed.get(version) is failure:  # count each failed attempt once
                logger.exception("reconcile: %s version %d failed to load", variant, version)
                self._failed[version] = LoadFailure(variant, version, type(exc).__name__, now())
                self.metrics.record_load_failure(variant, str(version))
            return None
        self._failed.pop(version, None)
        return predictor

    def _refusals(self, target: Target, current: Deployment) -> tuple[Refusal, ...]:
        before = {(r.variant, r.version, r.reason): r for r in current.refusals}
        refusals = []
        for variant, version, veto in target.refusals:
            known = before.get((variant, version, veto.reason))
            if known is None:
                logger.warning("refusing the registry's %s version %d: %s", variant, version,
                               veto.detail)  # fmt: skip
                self.metrics.record_refusal(variant, str(version), veto.reason)
                known = Refusal(variant, version, veto.reason, veto.detail, now())
            refusals.append(known)
        return tuple(refusals)

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
        refusing = {(r.variant, r.reason) for r in new.refusals}
        for variant, reason in {(r.variant, r.reason) for r in old.refusals} - refusing:
            self.metrics.set_refusing(variant, reason, False)

    # --- the local model cache ---------------------------------------------------------------
    async def _save_cache(self, deployment: Deployment) -> None:
        if self.cache is None or deployment.champion is None:
            return
        champion, canary = deployment.champion, deployment.canary
        cached = CachedDeployment(
            champion.version, canary.version if canary else None, deployment.canary_weight
        )
        models = {champion.version: champion.predictor}
        if canary is not None:
            models[canary.version] = canary.predictor
        try:
            await asyncio.to_thread(self.cache.save, cached, models)
        except Exception:  # the cache is a fallback; failing to write it must not stop serving
            logger.exception("could not write the model cache in %s", self.cache.directory)

    async def serve_from_cache(self) -> bool:
        """Install the cached deployment if nothing serves yet; return whether it was.

        Called at startup when the registry cannot be read: the models served before the
        restart serve again, and the next successful poll replaces them with what the
        registry asks for.
        """
        if self.cache is None:
            return False
        found = await asyncio.to_thread(self.cache.read)
        if found is None:
            return False
        cached, loaded = found
        models = await asyncio.to_thread(
            _choose_paths, loaded, self.compiled_inference, self.model_threads
        )
        async with self._lock:
            current = self.holder.current
            if current.ready:
                return False
            at = now()
            champion = LoadedModel(cached.champion, models[cached.champion], at, None)
            canary = None
            if cached.canary is not None and cached.canary in models:
                canary = LoadedModel(cached.canary, models[cached.canary], at, None)
            weight = min(cached.canary_weight, self.max_canary_weight) if canary else 0.0
            new = Deployment(champion, canary, weight, (), None, (), from_cache=True)
            self.holder.swap(new)
            self._publish(current, new)
        logger.warning(
            "registry unavailable at startup: serving the cached models %s until it answers",
            new.placement(),
        )
        return True

    @property
    def last_reconciled_at(self) -> datetime | None:
        """When the current snapshot was installed."""
        return self.holder.current.reconciled_at
