"""An asyncio micro-batcher: many concurrent single-row requests, one model call.

Why: a scikit-learn ``predict_proba`` costs about the same for 1 row as for 64 — the time goes
to input checks, the ``DataFrame`` and per-call overhead, not arithmetic. Under concurrent load
the naive "one request, one DataFrame, one call" spends almost all its CPU on that overhead.

How:

* Requests put their rows on a queue and await a future; nothing blocks the event loop.
* One collector task takes everything queued (up to ``max_rows``), builds **one** model input
  for the batch (column-wise, no per-request ``DataFrame``) and calls each model once, in a
  single dedicated thread: the event loop keeps accepting requests meanwhile, and one thread per
  worker keeps the model from fighting itself for the cores (BLAS/OpenMP pinned to
  ``threads``).
* Batching is adaptive: rows that arrive while the model thread is busy form the next batch,
  so batches grow with load by themselves; before taking a batch the collector yields a few
  event-loop turns so requests already read off the socket can join it. ``window_seconds``
  optionally also holds the first row of an idle period, to collect company; it costs that
  much latency at low load and measured no gain here, so it defaults to 0.
* Backpressure: beyond ``max_queue_rows`` waiting rows, :class:`OverloadedError` is raised at once
  instead of queueing a request that would time out anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features import FEATURES, NumericFeature
from pipeline.threads import limit_threads

RowValues = Sequence[Any]
"""One record's feature values, in contract order (``features.FEATURE_NAMES``)."""


class Predictor(Protocol):
    """What the service needs from a model: scikit-learn's ``predict_proba``."""

    def predict_proba(self, X: Any) -> Any:  # noqa: N803 - scikit-learn's name
        """Return an (n_rows, n_classes) array of class probabilities."""
        ...


class OverloadedError(RuntimeError):
    """Too many rows are already waiting for the model; retry later."""


class BatcherStoppedError(RuntimeError):
    """The batcher is shutting down and accepts no more rows."""


def _column_dtype(f: Any) -> Any:
    if isinstance(f, NumericFeature):
        # Nullable ints become floats with NaN, as pandas does when reading training data.
        return np.int64 if f.kind == "int" and not f.nullable else np.float64
    return object


_COLUMNS: tuple[tuple[str, Any], ...] = tuple((f.name, _column_dtype(f)) for f in FEATURES)


def build_frame(rows: Sequence[RowValues]) -> pd.DataFrame:
    """Build the model input for a batch of rows, column by column.

    Args:
        rows: Feature values per row, in contract order; ``None`` is a missing value.

    Returns:
        A frame with the contract's columns and dtypes (int64, float64 with NaN, object).
    """
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in _COLUMNS]
    data = {
        name: np.array(values, dtype=dtype)
        for (name, dtype), values in zip(_COLUMNS, columns, strict=True)
    }
    return pd.DataFrame(data, copy=False)


def positive_probabilities(predictor: Predictor, rows: Sequence[RowValues]) -> list[float]:
    """Score ``rows`` with one ``predict_proba`` call; return P(class 1) per row."""
    proba = np.asarray(predictor.predict_proba(build_frame(rows)))
    if proba.ndim != 2 or proba.shape[0] != len(rows):
        raise ValueError(f"predict_proba returned shape {proba.shape} for {len(rows)} rows")
    return [float(p) for p in proba[:, -1]]


@dataclass
class _Pending:
    predictor: Predictor
    rows: Sequence[RowValues]
    future: asyncio.Future[list[float]]


@dataclass
class _Group:
    predictor: Predictor
    pending: list[_Pending] = field(default_factory=list)


def _score_groups(groups: list[_Group]) -> list[list[float] | BaseException]:
    results: list[list[float] | BaseException] = []
    for group in groups:
        rows = [row for pending in group.pending for row in pending.rows]
        try:
            results.append(positive_probabilities(group.predictor, rows))
        except Exception as exc:  # one broken model must not fail the other group's rows
            results.append(exc)
    return results


class MicroBatcher:
    """Collects rows from concurrent requests and scores them in batches on one thread.

    Args:
        max_rows: Most rows per model call (a larger single request is scored alone).
        window_seconds: How long an idle batcher holds the first row to collect others.
        max_queue_rows: Waiting rows beyond which :meth:`score` raises :class:`OverloadedError`.
        threads: BLAS/OpenMP threads of the model thread.
        settle_ticks: Event-loop turns to yield before taking a batch (see ``_run``).
        on_batch: Called after each model call with (rows scored, rows still waiting).
    """

    def __init__(
        self,
        *,
        max_rows: int = 128,
        window_seconds: float = 0.0,
        max_queue_rows: int = 4096,
        threads: int = 1,
        settle_ticks: int = 4,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        self.max_rows = max_rows
        self.settle_ticks = settle_ticks
        self.window_seconds = window_seconds
        self.max_queue_rows = max_queue_rows
        self._on_batch = on_batch
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="model",
            initializer=limit_threads,  # OpenMP limits are per thread: pin the model thread
            initargs=(threads,),
        )
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def queued_rows(self) -> int:
        """Rows waiting for the model thread."""
        return self._queued_rows

    def start(self) -> None:
        """Start the collector task on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        """Score what is queued, then stop the collector and the model thread."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    async def score(self, predictor: Predictor, rows: Sequence[RowValues]) -> list[float]:
        """Return P(class 1) for each of ``rows`` from ``predictor``, batched with others.

        Raises:
            OverloadedError: The queue is full.
            BatcherStoppedError: The batcher is shutting down.
            Exception: Whatever the model raised for the batch.
        """
        if self._stopping or self._task is None:
            raise BatcherStoppedError("the service is shutting down")
        if self._queued_rows + len(rows) > self.max_queue_rows and self._queued_rows:
            raise OverloadedError(f"{self._queued_rows} rows are already waiting for the model")
        future: asyncio.Future[list[float]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(predictor, rows, future))
        self._queued_rows += len(rows)
        self._wakeup.set()
        return await future

    async def _collect_window(self) -> None:
        deadline = time.perf_counter() + self.window_seconds
        while self._queued_rows < self.max_rows and not self._stopping:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)

    def _take_batch(self) -> list[_Group]:
        groups: dict[int, _Group] = {}
        taken = 0
        while self._queue and (taken == 0 or taken + len(self._queue[0].rows) <= self.max_rows):
            pending = self._queue.popleft()
            taken += len(pending.rows)
            if pending.future.cancelled():  # the client went away while waiting
                continue
            group = groups.get(id(pending.predictor))
            if group is None:
                group = groups[id(pending.predictor)] = _Group(pending.predictor)
            group.pending.append(pending)
        self._queued_rows -= taken
        return list(groups.values())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._stopping:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # A request whose bytes have arrived needs a few event-loop turns (parse, validate,
            # route) to reach the queue; letting them finish joins it to this batch. Measured
            # at 32 concurrent requests: 0 turns ~1,150 req/s, 4 turns ~1,900; no cost at 1.
            for _ in range(self.settle_ticks):
                await asyncio.sleep(0)
            if self.window_seconds > 0:
                await self._collect_window()
            groups = self._take_batch()
            if not groups:
                continue
            try:
                results = await loop.run_in_executor(self._executor, _score_groups, groups)
            except Exception as exc:  # executor gone (shutdown): fail the batch, not the loop
                results = [exc] * len(groups)
            scored = 0
            for group, result in zip(groups, results, strict=True):
                offset = 0
                for pending in group.pending:
                    n = len(pending.rows)
                    if not pending.future.done():
                        if isinstance(result, BaseException):
                            pending.future.set_exception(result)
                        else:
                            pending.future.set_result(result[offset : offset + n])
                    offset += n
                scored += offset
            if self._on_batch is not None:
                self._on_batch(scored, self._queued_rows)
