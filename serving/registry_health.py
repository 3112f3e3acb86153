"""Whether the service is following the registry, told apart from the polls in flight.

The reconciler's polls are numbered (tickets) and may finish out of order: a poll blocked on a
dead MLflow can end long after a newer one. So the registry counts as down as soon as a poll
fails (unless a newer poll has already answered: old news), as up again as soon as one answers,
and as stale once no poll has succeeded for ``stale_after_seconds`` — which catches a poll
blocked on an MLflow that accepts connections but never answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from serving.snapshot import now

logger = logging.getLogger(__name__)


class RegistryHealth:
    """The registry's health as the polls report it.

    Args:
        stale_after_seconds: Age of the last successful poll at which the registry is stale.
        clock: Monotonic seconds (tests pass a fake).

    Attributes:
        last_success_at: When a poll last read the registry, if one has.
    """

    def __init__(
        self, stale_after_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stale_after_seconds = stale_after_seconds
        self.last_success_at: datetime | None = None
        self._clock = clock
        self._error: str | None = None
        self._fresh_since = clock()
        self._heard = 0  # the newest poll whose outcome (answer or failure) is known

    @property
    def error(self) -> str | None:
        """Why the registry is not being followed right now, or ``None`` when it is."""
        age = self._clock() - self._fresh_since
        if age > self.stale_after_seconds:
            stale = f"registry stale: no successful poll for {age:.0f} s"
            return f"{stale}; last error: {self._error}" if self._error else stale
        return self._error

    def failed(self, exc: Exception, ticket: int) -> None:
        """Poll ``ticket`` could not read the registry."""
        if ticket < self._heard:
            return  # a poll started before one that has already answered: old news
        self._heard = ticket
        error = f"registry unavailable ({type(exc).__name__})"
        if error != self._error:  # once per outage, not once per poll
            logger.warning("reconcile: cannot read the registry: %s", exc)
        self._error = error

    def answered(self, ticket: int) -> datetime:
        """Poll ``ticket`` read the registry; return when (the new :attr:`last_success_at`)."""
        self._fresh_since = self._clock()
        self.last_success_at = now()
        if ticket >= self._heard:
            self._heard = ticket
            if self._error is not None:
                logger.info("reconcile: the registry answers again")
            self._error = None
        return self.last_success_at
