"""``mlplat db upgrade`` and ``mlplat db current``: the platform's databases under migration.

Both take the same URLs the services use — ``MLPLAT_EVENTS_URL`` for the deployment-events
store and ``MLPLAT_SERVING_INFERENCE_LOG_URL`` for the inference log, each defaulting to its
SQLite file under ``MLPLAT_HOME`` — so in a Kubernetes Job or on a laptop the command finds the
databases the services will open. An unreachable database or a conflicting contract is one
message and exit code 1; nothing is half-applied.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import click

from interfaces.inference_log import default_log_url
from migrations import SCHEMAS, MigrationError, UpgradeReport, current_revision, upgrade
from registry import RegistrySettings

__all__ = ["db"]

INFERENCE_LOG_URL_ENV = "MLPLAT_SERVING_INFERENCE_LOG_URL"

schema_option = click.option(
    "--schema",
    "schemas",
    type=click.Choice(sorted(SCHEMAS)),
    multiple=True,
    help="Only this schema (repeatable; default: both).",
)
events_url_option = click.option(
    "--events-url", default=None, help="Deployment-events database (default: MLPLAT_EVENTS_URL)."
)
log_url_option = click.option(
    "--inference-log-url",
    default=None,
    help=f"Inference-log database (default: {INFERENCE_LOG_URL_ENV}, else <MLPLAT_HOME>/…).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _urls(events_url: str | None, log_url: str | None) -> dict[str, str]:
    settings = RegistrySettings()
    return {
        "events": events_url or settings.events_url,
        "inference-log": log_url
        or os.environ.get(INFERENCE_LOG_URL_ENV, "").strip()
        or default_log_url(settings.home),
    }


@click.group()
def db() -> None:
    """Migrate the deployment-events store and the inference log to this release's schema."""


@db.command("upgrade")
@schema_option
@events_url_option
@log_url_option
@json_option
def upgrade_command(
    schemas: tuple[str, ...], events_url: str | None, inference_log_url: str | None, as_json: bool
) -> None:
    """Apply every migration a database lacks (adopting tables a service created)."""
    urls = _urls(events_url, inference_log_url)
    reports = []
    for name in schemas or tuple(SCHEMAS):
        try:
            report = upgrade(SCHEMAS[name], urls[name])
        except MigrationError as exc:
            raise click.ClickException(str(exc)) from None
        reports.append(report)
        if not as_json:
            click.echo(_describe(report))
    if as_json:
        click.echo(json.dumps([asdict(r) | {"changed": r.changed} for r in reports], indent=2))


@db.command("current")
@schema_option
@events_url_option
@log_url_option
def current_command(
    schemas: tuple[str, ...], events_url: str | None, inference_log_url: str | None
) -> None:
    """Print each database's revision and whether it is this release's newest."""
    urls = _urls(events_url, inference_log_url)
    for name in schemas or tuple(SCHEMAS):
        schema = SCHEMAS[name]
        try:
            revision = current_revision(schema, urls[name])
        except MigrationError as exc:
            raise click.ClickException(str(exc)) from None
        head = schema.head()
        state = "up to date" if revision == head else f"behind (newest: {head})"
        click.echo(f"{name}: {revision or 'not under migration'} — {state}")


def _describe(r: UpgradeReport) -> str:
    parts = [f"{r.schema} ({r.url}):"]
    if r.adopted:
        parts.append(f"adopted existing tables at {r.before};")
    if r.before == r.after and not r.adopted:
        parts.append(f"already at {r.after};")
    else:
        parts.append(f"{r.before or 'empty'} -> {r.after};")
    added, kept = r.columns.added, r.columns.kept
    if added:
        parts.append(f"feature columns added: {', '.join(added)};")
    if kept:
        parts.append(f"columns kept that the contract no longer names: {', '.join(kept)};")
    return " ".join(parts).rstrip(";")
