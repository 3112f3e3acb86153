"""Everything one service process runs, started and stopped by the app's lifespan."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
from dataclasses import dataclass, field

from pipeline.threads import limit_threads
from serving.batcher import MicroBatcher
from serving.cache import ModelCache
from serving.deployment import ModelSource
from serving.inference_log import InferenceLogger, InferenceLogStore
from serving.metrics import ServingMetrics
from serving.multiprocess import mark_worker_dead
from serving.reconcile import Reconciler
from serving.settings import ServingSettings
from serving.snapshot import DeploymentHolder

logger = logging.getLogger(__name__)


def freeze_heap() -> None:
    """Move everything alive now (the models above all) out of the garbage collector's sight.

    A loaded pipeline is hundreds of thousands of long-lived objects; every full collection
    would walk them all, mid-request. Freezing them cut p99 at 32 concurrent requests from about
    170 ms to about 50 ms on the benchmark machine. Reference counting still frees them.
    """
    gc.collect()
    gc.freeze()


async def _create_schema(store: InferenceLogStore, wait_seconds: float) -> bool:
    """Create the inference log's tables, waiting ``wait_seconds`` at most; return if done.

    A log store that is down at startup must not stop the service: predictions are buffered
    (and dropped, counted, past the buffer) and the logger creates the tables on its next write.
    """
    attempt = asyncio.ensure_future(asyncio.to_thread(store.create_schema))
    done, _ = await asyncio.wait({attempt}, timeout=wait_seconds)
    if attempt in done and attempt.exception() is None:
        return True
    # Retrieve a late failure so it is not reported as "never retrieved".
    attempt.add_done_callback(lambda f: f.cancelled() or f.exception())
    failure = attempt.exception() if attempt in done else None
    cause = (str(failure).splitlines() or ["error"])[0][:200] if failure else "no answer"
    logger.warning(
        "inference log store unavailable at startup (%s); predictions are served and the log "
        "is written once it answers",
        cause,
    )
    return False


async def _start_inference_log(
    settings: ServingSettings, metrics: ServingMetrics, store: InferenceLogStore
) -> InferenceLogger:
    """The started inference logger on ``store``, publishing its queue in ``metrics``."""

    def on_write(written: int, queued: int) -> None:
        metrics.log_written.inc(written)
        metrics.set_log_queue_depth(queued)

    schema_ready = await _create_schema(store, settings.startup_registry_wait_seconds)
    inference_log = InferenceLogger(
        store,
        max_queue=settings.inference_log_queue_size,
        flush_seconds=settings.inference_log_flush_seconds,
        on_drop=metrics.log_dropped.inc,
        on_write=on_write,
        on_write_failure=metrics.log_write_failures.inc,
        schema_ready=schema_ready,
    )
    inference_log.start()
    return inference_log


def _reconciler(
    settings: ServingSettings,
    metrics: ServingMetrics,
    source: ModelSource,
    holder: DeploymentHolder,
) -> Reconciler:
    """The reconciler ``settings`` describe, not started yet."""
    cache = ModelCache(settings.resolved_model_cache_dir) if settings.model_cache_enabled else None
    return Reconciler(
        source,
        holder,
        metrics,
        interval_seconds=settings.reconcile_interval_seconds,
        model_threads=settings.model_threads,
        max_canary_weight=settings.max_canary_weight,
        stale_after_seconds=settings.registry_stale_after_seconds,
        cache=cache,
        compiled_inference=settings.compiled_inference,
    )


@dataclass
class ServingRuntime:
    """The live parts of one process.

    Attributes:
        settings: This process's settings.
        metrics: Its metrics.
        holder: The deployment snapshot requests read.
        batcher: Scores rows in batches on the model thread.
        reconciler: Follows the registry.
        inference_log: Buffers predictions for the store; ``None`` when logging is off.
    """

    settings: ServingSettings
    metrics: ServingMetrics
    holder: DeploymentHolder
    batcher: MicroBatcher
    reconciler: Reconciler
    inference_log: InferenceLogger | None
    _id_prefix: str = field(default_factory=lambda: os.urandom(8).hex(), repr=False)
    _id_counter: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    def new_request_id(self) -> str:
        """A request id unique across workers and restarts (random prefix, then a counter).

        Cheaper than ``uuid4()`` per request (one ``os.urandom`` per process, not per request).
        """
        return f"{self._id_prefix}-{next(self._id_counter):x}"

    @classmethod
    async def start(
        cls,
        settings: ServingSettings,
        metrics: ServingMetrics,
        source: ModelSource,
        store: InferenceLogStore | None,
    ) -> ServingRuntime:
        """Open the store, start the background tasks and load the models once.

        Args:
            settings: Process settings.
            metrics: Where everything is published.
            source: Desired deployment and models.
            store: The inference-log store, or ``None`` to run without the log.
        """
        # BLAS pools are process-wide; OpenMP limits are per thread, the model thread sets its own.
        limit_threads(settings.model_threads)
        if settings.token_is_placeholder:
            logger.warning("admin token is a placeholder: acceptable in dev mode only")
        inference_log = None
        if store is not None:
            inference_log = await _start_inference_log(settings, metrics, store)
        batcher = MicroBatcher(
            max_rows=settings.batch_max_rows,
            window_seconds=settings.batch_window_ms / 1000.0,
            max_queue_rows=settings.max_queue_rows,
            threads=settings.model_threads,
            on_batch=metrics.observe_batch,
        )
        batcher.start()
        holder = DeploymentHolder()
        reconciler = _reconciler(settings, metrics, source, holder)
        # Startup waits for the first poll only so long: with the registry down, the service
        # must still come up, answer /health, and serve its cached models (or say why not).
        first = reconciler.reconcile_in_background()
        await asyncio.wait({first}, timeout=settings.startup_registry_wait_seconds)
        if not first.done() or reconciler.registry_error is not None:
            await reconciler.serve_from_cache()
        if not holder.current.ready:
            logger.warning("starting without a champion; /ready answers 503 until one loads")
        reconciler.start()
        freeze_heap()
        return cls(settings, metrics, holder, batcher, reconciler, inference_log)

    async def stop(self) -> None:
        """Stop polling, score what is queued, write what is buffered."""
        await self.reconciler.stop()
        await self.batcher.stop()
        if self.inference_log is not None:
            await self.inference_log.stop()
            await asyncio.to_thread(self.inference_log.store.close)
        mark_worker_dead(os.getpid(), self.metrics.multiprocess_dir)
