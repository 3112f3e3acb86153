"""The "since" times of a model's aliases: read from the event log best effort, in bounded time.

Serving polls :meth:`registry.ModelRegistry.state` every few seconds. The aliases come from
MLflow; when each alias holder took its role comes from the event log, and it is decoration: a
poll must never wait on the event database, or an event-database outage looks like an MLflow one
(no poll finishes within the stale limit). A black-holed database is the hard case: it neither
answers nor refuses, so the driver waits out its connect timeout (5 s, and libpq allows no less
than 2 s), and a query on a connection whose packets vanish waits for TCP to give up (minutes).

So :class:`SinceReader` reads in a daemon thread and waits at most ``timeout_seconds`` for it.
After a failure (an error or the timeout) it does not read again for ``retry_seconds``, and at
most one read is ever in flight, so a read stuck in the driver costs later polls nothing. Until
the log answers, the times are the last ones read for the same alias holders, or absent.

The outage is logged as a warning when it starts, then at most every ``warn_every_seconds``
while it lasts (a poll every few seconds would otherwise log thousands of lines an hour), and
once, as info, when the log answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import Protocol

from registry.errors import EventStoreError
from registry.state import DeploymentState

__all__ = ["SinceReader", "SinceSource"]

logger = logging.getLogger(__name__)


class SinceSource(Protocol):
    """What the times are read from (:class:`registry.EventStore`, or a test's fake)."""

    def with_since(self, model_name: str, state: DeploymentState) -> DeploymentState:
        """``state`` with ``champion_since``/``challenger_since`` filled in."""
        ...


class SinceReader:
    """Fills in "since" times from the event log without ever making a poll wait long for them.

    Thread-safe: concurrent polls share the read in flight instead of starting their own.

    Args:
        events: Where the times are read.
        model_name: The model whose times are read.
        timeout_seconds: How long a poll waits for the read.
        retry_seconds: How long after a failed read the log is not read again.
        warn_every_seconds: Least time between two warnings about one outage.
        clock: Monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        events: SinceSource,
        model_name: str,
        *,
        timeout_seconds: float = 1.0,
        retry_seconds: float = 15.0,
        warn_every_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        if retry_seconds < 0 or warn_every_seconds < 0:
            raise ValueError(
                f"retry_seconds and warn_every_seconds must not be negative, got "
                f"{retry_seconds} and {warn_every_seconds}"
            )
        self._events = events
        self._model_name = model_name
        self._timeout_seconds = timeout_seconds
        self._retry_seconds = retry_seconds
        self._warn_every_seconds = warn_every_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight: Future[DeploymentState] | None = None
        self._known: DeploymentState | None = None  # the last times read, with their holders
        self._retry_at = 0.0
        self._down_since: float | None = None
        self._down_why: str | None = None
        self._warned_at = 0.0

    @property
    def down(self) -> bool:
        """Whether the last read failed (the times served are remembered ones, if any)."""
        return self._down_since is not None

    @property
    def error(self) -> str | None:
        """Why the event log cannot be read and for how long, or ``None`` while it answers."""
        with self._lock:
            if self._down_since is None:
                return None
            seconds = self._clock() - self._down_since
            return f"event log unreachable for {seconds:.0f} s: {self._down_why}"

    def fill(self, observed: DeploymentState) -> DeploymentState:
        """``observed`` with its "since" times: read now, remembered, or absent.

        Raises only what the read raises beyond :class:`~registry.errors.EventStoreError` (a
        bug, not an outage).
        """
        with self._lock:
            if self._clock() < self._retry_at:
                return self._remembered(observed)
            if self._in_flight is None or self._in_flight.done():
                self._in_flight = self._start(observed.placement())
            read = self._in_flight
        try:
            state = read.result(timeout=self._timeout_seconds)
        except TimeoutError:
            return self._failed(
                observed,
                f"no answer within {self._timeout_seconds:g} s (the read goes on in the "
                "background)",
            )
        except EventStoreError as exc:
            return self._failed(observed, str(exc))
        if state.placement() != observed.placement():
            # A read joined from a concurrent poll that saw other aliases: its times may not
            # be this state's; they still refresh the memory for the holders they name.
            self._answered(state)
            return self._remembered(observed)
        self._answered(state)
        return state

    def _start(self, placement: DeploymentState) -> Future[DeploymentState]:
        read: Future[DeploymentState] = Future()

        def run() -> None:
            read.set_running_or_notify_cancel()
            try:
                read.set_result(self._events.with_since(self._model_name, placement))
            except Exception as exc:  # handed to whoever waits for the result
                read.set_exception(exc)

        # A daemon thread, not an executor: a read stuck on a dead network must not keep the
        # process from exiting.
        threading.Thread(target=run, name=f"mlplat-since-{self._model_name}", daemon=True).start()
        return read

    def _remembered(self, observed: DeploymentState) -> DeploymentState:
        known = self._known
        if known is None:
            return observed
        return replace(
            observed,
            champion_since=known.champion_since if known.champion == observed.champion else None,
            challenger_since=(
                known.challenger_since if known.challenger == observed.challenger else None
            ),
        )

    def _answered(self, state: DeploymentState) -> None:
        with self._lock:
            self._known = state
            if self._down_since is not None:
                logger.info(
                    "event log answers again after %.0f s: %s's 'since' times are read from it",
                    self._clock() - self._down_since,
                    self._model_name,
                )
                self._down_since = None
                self._down_why = None

    def _failed(self, observed: DeploymentState, why: str) -> DeploymentState:
        with self._lock:
            now = self._clock()
            self._retry_at = now + self._retry_seconds
            self._down_why = why
            if self._down_since is None:
                self._down_since = now
                self._warn(why, "")
            elif now - self._warned_at >= self._warn_every_seconds:
                self._warn(why, f" (down for {now - self._down_since:.0f} s)")
            return self._remembered(observed)

    def _warn(self, why: str, duration: str) -> None:
        self._warned_at = self._clock()
        logger.warning(
            "event log unreachable%s: %s's deployment state is served with the last known "
            "'since' times (or none); next read in %g s, next warning in %g s at the earliest: %s",
            duration,
            self._model_name,
            self._retry_seconds,
            self._warn_every_seconds,
            why,
        )
