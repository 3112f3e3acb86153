"""``mlplat deploy …``: move models between deployment states from the command line.

A bad option value (a canary weight above the cap) is a usage error: click's message naming the
option, exit code 2, before anything is opened. A move the registry or the deploy guardrails
refuse is one message and exit code 1 (:func:`ci.cli_errors.friendly_errors`).
"""

from __future__ import annotations

import click

from ci.cli_errors import friendly_errors
from ci.deploy import MAX_CANARY_WEIGHT, check_canary_weight, start_canary
from ci.deploy import promote as promote_version
from ci.runner import open_from_settings
from registry import DeploymentEvent, InvalidMoveError

__all__ = ["deploy"]


def _echo_move(event: DeploymentEvent | None) -> None:
    click.echo(
        event.describe() if event else "nothing to do: the registry is already in that state"
    )


@click.group()
def deploy() -> None:
    """Move models between deployment states: start a canary, promote, reject, roll back."""


def _canary_weight(ctx: click.Context, param: click.Parameter, weight: float) -> float:
    """Refuse a weight outside (0, MAX_CANARY_WEIGHT] as a usage error, before any registry call."""
    try:
        return check_canary_weight(weight)
    except InvalidMoveError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


version_option = click.option(
    "--version", "version", type=click.IntRange(min=1), required=True, help="Model version number."
)
reason_option = click.option("--reason", required=True, help="Why; kept in the audit log.")


@deploy.command()
@version_option
@click.option(
    "--weight", type=float, default=0.1, show_default=True, callback=_canary_weight,
    help=f"Share of traffic routed to the canary: more than 0, at most {MAX_CANARY_WEIGHT}.",
)  # fmt: skip
@click.option("--reason", default="canary started from the CLI", show_default=True)
@friendly_errors
def canary(version: int, weight: float, reason: str) -> None:
    """Start (or re-weight) a canary of VERSION at WEIGHT of the traffic.

    Only a version that passed the evaluation gate and was never rejected may take traffic.
    """
    _echo_move(start_canary(open_from_settings(), version, weight, reason=reason))


@deploy.command()
@version_option
@reason_option
@friendly_errors
def promote(version: int, reason: str) -> None:
    """Make VERSION the champion (normally the controller's call after a passed canary).

    Refuses a version that was rejected or never passed the evaluation gate (exit code 1): the
    service would not serve it whoever moved the alias. A gate verdict comes only from the
    pipeline (`mlplat pipeline run`), which registers what passes as a new version.
    """
    _echo_move(promote_version(open_from_settings(), version, reason=reason))


@deploy.command()
@version_option
@reason_option
@friendly_errors
def reject(version: int, reason: str) -> None:
    """Mark VERSION rejected: it never serves again; if it is the canary, the canary ends.

    A canary's traffic goes to 0 and the challenger alias is removed, in one event. The
    champion cannot be rejected: roll back or promote another version first.
    """
    event = open_from_settings().reject(version, reason=reason)
    if event is None:
        click.echo(f"nothing to do: version {version} was already rejected and takes no traffic")
        return
    _echo_move(event)


@deploy.command()
@reason_option
@friendly_errors
def rollback(reason: str) -> None:
    """Give the champion alias back to the previous champion."""
    _echo_move(open_from_settings().rollback(reason=reason))


@deploy.command()
@friendly_errors
def reconcile() -> None:
    """Finish or abort moves a dead process left half done, and record changes made outside."""
    repaired = open_from_settings().reconcile(wait=True)
    if not repaired:
        click.echo("nothing to repair: MLflow and the event log agree")
    for event in repaired:
        click.echo(event.describe())
