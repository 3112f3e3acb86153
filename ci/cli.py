"""``mlplat pipeline …``: the CI/CD pipeline's command-line face (deploy: :mod:`ci.deploy_cli`).

A bad option value is a usage error: click's message naming the option, exit code 2, before
anything is opened. Every domain error (a bad scenario name, an unreachable MLflow server, a
broken data source) becomes a one-paragraph message and exit code 1; a gate that stops the
pipeline exits with code 3 and names the stage and its reasons, so a CI job can tell "the model
is not good enough" from "it crashed".

The imports are at the top: importing the ``ci`` package loads the pipeline, the registry and
MLflow anyway, and ``mlplat --help`` only looks this module up (``mlplat/cli.py``).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

import features
from ci.cli_errors import friendly_errors
from ci.runner import (
    RunRequest,
    TriggerInputs,
    open_from_settings,
    run_from_settings,
    source_for,
    trigger_from_settings,
)
from interfaces.files import write_text_atomically
from pipeline import SCENARIOS, apply_scenario, load_config
from pipeline import validate as validate_frame
from pipeline.sizing import size_notes
from registry import DeploymentEvent

EXIT_GATE_FAILED = 3
"""Exit code of a run that a gate stopped (validation or promotion)."""


@contextlib.contextmanager
def _stdout_to_stderr(active: bool) -> Iterator[None]:
    """With ``--json``, stdout carries only the summary: libraries' prints go to stderr."""
    if not active:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _write_json(payload: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(payload, indent=2, default=str, sort_keys=False)
    if out is None:
        click.echo(text)
        return
    write_text_atomically(out, text + "\n")


seed_option = click.option(
    "--seed", type=click.IntRange(min=0), default=42, show_default=True,
    help="Seed of the data generator; a new seed stands for a new data snapshot.",
)  # fmt: skip
data_option = click.option(
    "--data", metavar="PATH|URL", envvar="MLPLAT_DATA", default=None,
    help="Your labelled rows: a .csv/.parquet file or a SQLAlchemy URL (with --query); "
    "default: the credit example's generator. Env: MLPLAT_DATA.",
)  # fmt: skip
query_option = click.option(
    "--query", metavar="SQL", envvar="MLPLAT_QUERY", default=None,
    help="The SELECT to run when --data is a database URL. Env: MLPLAT_QUERY.",
)  # fmt: skip
scenario_option = click.option(
    "--scenario", metavar="NAME", default=None,
    help="Apply a named scenario to the data (see `mlplat pipeline scenarios`).",
)  # fmt: skip
magnitude_option = click.option(
    "--magnitude", type=float, default=None, help="Scenario magnitude (its default if omitted)."
)
config_option = click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None, envvar="MLPLAT_PIPELINE_CONFIG",
    help="YAML file overriding pipeline/conf/parameters.yml. Env: MLPLAT_PIPELINE_CONFIG.",
)  # fmt: skip
json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the summary as JSON on stdout (progress on stderr).",
)
out_option = click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Also write the JSON summary to this file.",
)  # fmt: skip


@click.group()
def pipeline() -> None:
    """Validate, train, evaluate, gate and register a model (the CI pipeline as code)."""


@pipeline.command()
def scenarios() -> None:
    """List the named data scenarios: drifts and defects the whole platform reuses."""
    width = max(len(name) for name in SCENARIOS)
    for name, scenario in SCENARIOS.items():
        click.echo(
            f"{name:<{width}}  [{scenario.applies_to:<8}] {scenario.summary} "
            f"(magnitude {scenario.default_magnitude:g})"
        )


@pipeline.command()
@data_option
@query_option
@seed_option
@scenario_option
@magnitude_option
@config_option
@json_option
@friendly_errors
def validate(
    data: str | None,
    query: str | None,
    seed: int,
    scenario: str | None,
    magnitude: float | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Run the Great Expectations gate on the dataset (--data, or generated), without training.

    Exits 0 when the dataset passes, 3 when it fails (the failed expectations are listed).
    """
    config = load_config(config_path)
    frame = source_for(data, query, config, seed).load()
    if scenario:
        frame = apply_scenario(frame, scenario, magnitude, seed=seed)
    report = validate_frame(frame, rules=config.validation)
    if as_json:
        _write_json(report.to_dict(), None)
    else:
        click.echo(report.describe())
    if not report.success:
        sys.exit(EXIT_GATE_FAILED)


@pipeline.command("check-config")
@data_option
@query_option
@seed_option
@config_option
@json_option
@friendly_errors
def check_config(
    data: str | None, query: str | None, seed: int, config_path: Path | None, as_json: bool
) -> None:
    """Say which gates the data at hand will fail, skip, or judge at noise level.

    Reads the data (--data, or generated) and the configuration (parameters.yml under
    --config) and prints one line per gate its size affects, e.g. "slice gates skipped: 45
    holdout rows < 200". `mlplat pipeline run` prints the same lines before it trains.
    Exits 0, or 3 when validation is bound to fail.
    """
    config = load_config(config_path)
    frame = source_for(data, query, config, seed).load()
    notes = size_notes(frame, features.current(), config)
    if as_json:
        _write_json({"rows": len(frame), "notes": [n.to_dict() for n in notes]}, None)
    else:
        click.echo(f"{len(frame):,} rows; {len(notes) or 'no'} size notes")
        for note in notes:
            click.echo(f"  [{note.level}] {note.message}")
    if any(note.level == "fails" for note in notes):
        sys.exit(EXIT_GATE_FAILED)


@pipeline.command()
@data_option
@query_option
@seed_option
@scenario_option
@magnitude_option
@config_option
@json_option
@out_option
@click.option("--reason", default="manual run", show_default=True, help="Kept in the audit log.")
@friendly_errors
def run(
    data: str | None,
    query: str | None,
    seed: int,
    scenario: str | None,
    magnitude: float | None,
    config_path: Path | None,
    as_json: bool,
    out: Path | None,
    reason: str,
) -> None:
    """Run data → validate → train → evaluate → gate → register, once.

    The first model to pass the gates becomes `champion`; later ones become `challenger`.
    A snapshot some registered version was already trained on is not trained again.
    Exits 0 when a model was registered or the snapshot is unchanged, 3 when a gate stopped
    the run.
    """
    request = RunRequest(
        seed=seed, scenario=scenario, magnitude=magnitude, trigger="manual", reason=reason
    )
    with _stdout_to_stderr(as_json):
        summary = run_from_settings(
            request, config_path=config_path, quiet=as_json, data=data, query=query
        )
    _finish(summary.to_dict(), as_json=as_json, out=out, ok=summary.ok)


@pipeline.command()
@click.argument("kind", type=click.Choice(["new-data", "schedule", "manual", "drift"]))
@data_option
@query_option
@seed_option
@scenario_option
@magnitude_option
@config_option
@json_option
@out_option
@click.option("--reason", default="", help="Why (required for manual).")
@click.option(
    "--max-age-hours", type=click.FloatRange(min=0), default=24.0, show_default=True,
    help="schedule: retrain when the newest run is older than this.",
)  # fmt: skip
@click.option(
    "--drift-share", type=click.FloatRange(0, 1), default=None,
    help="drift: share of drifted features seen by monitoring.",
)  # fmt: skip
@click.option(
    "--drift-threshold", type=click.FloatRange(0, 1), default=0.3, show_default=True,
    help="drift: share above which the champion's inputs count as drifted.",
)  # fmt: skip
@click.option(
    "--cooldown-hours", type=click.FloatRange(min=0), default=6.0, show_default=True,
    help="drift: minimum time between two drift-triggered runs.",
)  # fmt: skip
@click.option("--evidence", default=None, help="drift: link to the drift report.")
@friendly_errors
def trigger(
    kind: str,
    data: str | None,
    query: str | None,
    seed: int,
    scenario: str | None,
    magnitude: float | None,
    config_path: Path | None,
    as_json: bool,
    out: Path | None,
    reason: str,
    max_age_hours: float,
    drift_share: float | None,
    drift_threshold: float,
    cooldown_hours: float,
    evidence: str | None,
) -> None:
    r"""Run the pipeline only if the trigger KIND fires; otherwise say why not and exit 0.

    \b
    new-data  the dataset's digest differs from the champion's training data
    schedule  the newest training run is older than --max-age-hours
    manual    always (needs --reason)
    drift     monitoring saw input drift (--drift-share) above --drift-threshold,
              at most once per --cooldown-hours
    """
    inputs = TriggerInputs(
        kind=kind,
        seed=seed,
        scenario=scenario,
        magnitude=magnitude,
        reason=reason,
        max_age_hours=max_age_hours,
        drift_share=drift_share,
        drift_threshold=drift_threshold,
        cooldown_hours=cooldown_hours,
        evidence=evidence,
        data=data,
        query=query,
    )
    try:
        with _stdout_to_stderr(as_json):
            decision, summary = trigger_from_settings(
                inputs, config_path=config_path, quiet=as_json
            )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if summary is None:
        payload = {"ok": True, "ran": False, "trigger": decision.to_dict()}
        _finish(payload, as_json=as_json, out=out, ok=True)
        return
    payload = {**summary.to_dict(), "ran": True, "trigger": decision.to_dict()}
    _finish(payload, as_json=as_json, out=out, ok=summary.ok)


@pipeline.command()
@friendly_errors
def status() -> None:
    """Show which version holds which alias, and the canary weight."""
    registry = open_from_settings()
    state = registry.state()
    click.echo(f"model      {registry.model_name}")
    click.echo(f"champion   {_version(state.champion)}")
    click.echo(f"challenger {_version(state.challenger)}")
    click.echo(f"canary     {state.canary_weight:.0%} of traffic")


@pipeline.command()
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@json_option
@friendly_errors
def history(limit: int, as_json: bool) -> None:
    """Show the deployment-event log: who moved which alias, when and why."""
    registry = open_from_settings()
    events = registry.history(limit=limit)
    if as_json:
        click.echo(json.dumps([_event_json(e) for e in events], indent=2, default=str))
        return
    if not events:
        click.echo("no deployment events yet")
    for event in events:
        click.echo(event.describe())


def _event_json(event: DeploymentEvent) -> dict[str, Any]:
    row = {f.name: getattr(event, f.name) for f in fields(event)}
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in row.items()}


def _version(version: int | None) -> str:
    return f"v{version}" if version is not None else "-"


def _finish(payload: dict[str, Any], *, as_json: bool, out: Path | None, ok: bool) -> None:
    if out is not None:
        _write_json(payload, out)
    if as_json:
        _write_json(payload, None)
    if not ok:
        sys.exit(EXIT_GATE_FAILED)
