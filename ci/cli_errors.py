"""How every ``mlplat pipeline``/``mlplat deploy`` command answers a domain error.

A bad scenario name, an unreachable MLflow server, an unknown version, a move the registry or
the deploy guardrails refuse: one paragraph and exit code 1, never a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click

from pipeline import ConfigError, ScenarioError
from pipeline.table_sources import SourceError
from registry import MoveNotRecordedError, RegistryError

__all__ = ["friendly_errors"]

P = ParamSpec("P")
R = TypeVar("R")


def friendly_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the platform's domain errors into a clear message and exit code 1, never a traceback.

    One exception: a move that reached MLflow but whose event could not be marked applied is
    live, so it exits 0 with a message saying so and that reconcile finishes the record.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except MoveNotRecordedError as exc:
            # The move is live: not an error to retry, but the log is behind until reconcile.
            click.echo(f"done, not yet recorded: {exc}", err=True)
            sys.exit(0)
        except (ConfigError, ScenarioError, RegistryError, SourceError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper
