"""Failpoints: named places in an alias move where tests inject stalls, errors or death.

Off unless configured, and configured only through :class:`registry.RegistrySettings`
(``MLPLAT_FAILPOINTS``), which production never sets. A spec is ``name=action`` pairs separated
by ``;``, for example::

    MLPLAT_FAILPOINTS="registry.before_alias_write=sleep(0.3);registry.after_begin=rsleep(0.1)"

Actions:

* ``sleep(S)`` — stall for ``S`` seconds (a slow network, a paused VM);
* ``rsleep(S)`` — stall for a uniformly random time in ``[0, S]``: races the steps of several
  processes against each other differently on every call;
* ``error`` — raise :class:`FailpointError` (a crash that unwinds: ``finally`` blocks run);
* ``exit`` — end the process at once with ``os._exit(137)`` (a ``kill -9``: nothing unwinds,
  locks and pending events are left behind as a dead owner leaves them).

The places, in the order a move passes them: ``registry.after_lock``, ``registry.after_reconcile``,
``registry.after_begin``, ``registry.before_alias_write``, ``registry.after_alias_write``,
``registry.before_mark_applied``; reconcile passes ``reconcile.after_read_log``.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["FAILPOINT_NAMES", "FailpointError", "Failpoints", "parse_failpoints"]

FAILPOINT_NAMES = frozenset(
    {
        "registry.after_lock",
        "registry.after_reconcile",
        "registry.after_begin",
        "registry.before_alias_write",
        "registry.after_alias_write",
        "registry.before_mark_applied",
        "reconcile.after_read_log",
    }
)
"""Every place :meth:`Failpoints.hit` is called from."""

_ACTION = re.compile(
    r"^(?P<kind>sleep|rsleep)\((?P<seconds>[0-9]*\.?[0-9]+)\)$|^(?P<bare>error|exit)$"
)


class FailpointError(RuntimeError):
    """Raised by an ``error`` failpoint: an injected crash, never a real one."""


Action = Callable[[str], None]


def _sleep(seconds: float) -> Action:
    def act(_name: str) -> None:
        time.sleep(seconds)

    return act


def _random_sleep(seconds: float) -> Action:
    def act(_name: str) -> None:
        time.sleep(random.uniform(0.0, seconds))

    return act


def _error(name: str) -> None:
    raise FailpointError(f"failpoint {name} fired (injected by MLPLAT_FAILPOINTS)")


def _exit(_name: str) -> None:
    os._exit(137)


@dataclass(frozen=True)
class Failpoints:
    """Configured failpoints; the empty default does nothing at every place.

    Attributes:
        actions: What fires where, by failpoint name.
    """

    actions: Mapping[str, Action] = field(default_factory=lambda: MappingProxyType({}))

    def hit(self, name: str) -> None:
        """Run the action configured for ``name``, if any."""
        action = self.actions.get(name)
        if action is not None:
            action(name)


def parse_failpoints(spec: str) -> Failpoints:
    """Failpoints from a ``name=action;…`` spec (empty or blank: none).

    Raises:
        ValueError: If a name is unknown or an action malformed, naming which and the rule.
    """
    actions: dict[str, Action] = {}
    for item in filter(None, (part.strip() for part in spec.split(";"))):
        name, sep, action = (text.strip() for text in item.partition("="))
        if not sep or name not in FAILPOINT_NAMES:
            raise ValueError(
                f"failpoint {item!r} must be name=action with name one of "
                f"{', '.join(sorted(FAILPOINT_NAMES))}"
            )
        match = _ACTION.match(action)
        if match is None:
            raise ValueError(
                f"failpoint {name}: action {action!r} must be sleep(SECONDS), rsleep(SECONDS), "
                "error or exit"
            )
        if match["bare"] == "error":
            actions[name] = _error
        elif match["bare"] == "exit":
            actions[name] = _exit
        elif match["kind"] == "sleep":
            actions[name] = _sleep(float(match["seconds"]))
        else:
            actions[name] = _random_sleep(float(match["seconds"]))
    return Failpoints(MappingProxyType(actions))
