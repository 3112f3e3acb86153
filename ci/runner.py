"""Composition from settings: what ``mlplat pipeline run|trigger`` wires together.

The stage logic (:mod:`ci.stages`) and the trigger rules (:mod:`ci.triggers`) take their
collaborators as arguments; this module is the one place that builds them from the environment
(:func:`registry.get_settings`) and hands the configured MLflow store to them explicitly: nothing
here sets a process-wide tracking URI.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mlflow import MlflowClient
from rich.console import Console

import features
from ci import triggers
from ci.report import ConsoleReporter, summary_table
from ci.stages import TRIGGER_TAG, RunRequest, RunSummary, run_pipeline
from ci.triggers import TriggerDecision
from pipeline import DataSource, PipelineConfig, apply_scenario, dataset_digest, load_config
from pipeline.table_sources import open_source
from registry import (
    ModelNotFoundError,
    ModelRegistry,
    RegistrySettings,
    ensure_experiment,
    get_settings,
    open_registry,
)

__all__ = [
    "RunRequest",
    "TriggerInputs",
    "open_experiment",
    "open_from_settings",
    "run_from_settings",
    "source_for",
    "trigger_from_settings",
]


def open_from_settings(settings: RegistrySettings | None = None) -> ModelRegistry:
    """Open the registry configured by the environment."""
    return open_registry(settings or get_settings())


def open_experiment(settings: RegistrySettings) -> str:
    """Return the id of the configured experiment in the configured store, creating it if needed."""
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    location = (
        settings.artifact_root.absolute().as_uri() if settings.uses_local_tracking_store else None
    )
    return ensure_experiment(client, settings.experiment_name, location)


def source_for(
    data: str | None, query: str | None, config: PipelineConfig, seed: int
) -> DataSource:
    """The source ``--data``/``--query`` name (the credit generator when neither is given).

    Raises:
        pipeline.table_sources.SourceError: The options do not name a usable source.
    """
    return open_source(data, query, features.current(), n_rows=config.data.n_rows, seed=seed)


def run_from_settings(
    request: RunRequest,
    *,
    config_path: Path | None = None,
    quiet: bool = False,
    settings: RegistrySettings | None = None,
    data: str | None = None,
    query: str | None = None,
) -> RunSummary:
    """Run the pipeline once against the configured stores, printing progress to stderr.

    ``data`` and ``query`` name the rows (:func:`source_for`); neither means the generator.
    """
    settings = settings or get_settings()
    console = Console(stderr=True, highlight=False)
    config = load_config(config_path)
    source = source_for(data, query, config, request.seed)
    registry = open_registry(settings)
    experiment_id = open_experiment(settings)
    console.print(
        f"[bold]mlplat pipeline[/] seed={request.seed} scenario={request.scenario or 'none'} "
        f"trigger={request.trigger} → {settings.tracking_uri}"
    )
    summary = run_pipeline(
        request,
        source,
        config=config,
        registry=registry,
        tracking_uri=settings.tracking_uri,
        experiment_id=experiment_id,
        on_stage=ConsoleReporter(console),
    )
    console.print(summary_table(_summary_rows(summary), title="pipeline summary"))
    return summary


def _summary_rows(summary: RunSummary) -> list[tuple[str, str]]:
    outcome = {
        "registered": "[green]registered[/]",
        "rejected": "[red]rejected by the gate[/]",
        "invalid-data": "[red]stopped: invalid data[/]",
        "unchanged": "[yellow]unchanged snapshot: nothing registered[/]",
    }[summary.outcome]
    rows = [("outcome", outcome), ("data digest", summary.data_digest[:16])]
    if summary.run_id:
        rows.append(("MLflow run", summary.run_id))
    for name in ("auc", "log_loss", "brier", "ece"):
        if name in summary.metrics:
            rows.append((name, f"{summary.metrics[name]:.4f}"))
    if summary.model_version is not None:
        rows.append(("registered", f"version {summary.model_version} as {summary.alias}"))
    if summary.failed_stage:
        rows.append(("failed stage", summary.failed_stage))
    if summary.failed_stage or summary.outcome == "unchanged":
        rows.extend(("reason", reason) for reason in summary.reasons)
    return rows


@dataclass(frozen=True)
class TriggerInputs:
    """The command-line inputs of ``mlplat pipeline trigger``."""

    kind: str
    seed: int
    scenario: str | None = None
    magnitude: float | None = None
    reason: str = ""
    max_age_hours: float = 24.0
    drift_share: float | None = None
    drift_threshold: float = 0.3
    cooldown_hours: float = 6.0
    evidence: str | None = None
    data: str | None = None
    query: str | None = None


def decide(
    inputs: TriggerInputs, settings: RegistrySettings, config_path: Path | None
) -> TriggerDecision:
    """Gather the facts a trigger needs from the stores and apply its rule.

    Raises:
        ValueError: The inputs do not fit the trigger (for example drift without a share).
    """
    kind = triggers.TriggerKind(inputs.kind)
    if kind is triggers.TriggerKind.MANUAL:
        return triggers.manual(settings.actor, inputs.reason)
    if kind is triggers.TriggerKind.NEW_DATA:
        config = load_config(config_path)
        frame = source_for(inputs.data, inputs.query, config, inputs.seed).load()
        if inputs.scenario:
            frame = apply_scenario(frame, inputs.scenario, inputs.magnitude, seed=inputs.seed)
        registry = open_registry(settings)
        try:
            champion = registry.state().champion
        except ModelNotFoundError:  # an empty registry: nothing was ever trained
            champion = None
        champion_digest = registry.version(champion).data_digest if champion else None
        return triggers.new_data(dataset_digest(frame), champion_digest)
    experiment_id = open_experiment(settings)
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    if kind is triggers.TriggerKind.SCHEDULE:
        last = _last_run_start(client, experiment_id, None)
        return triggers.schedule(last, timedelta(hours=inputs.max_age_hours))
    if inputs.drift_share is None:
        raise ValueError("the drift trigger needs --drift-share (the share of drifted features)")
    last = _last_run_start(client, experiment_id, "drift")
    return triggers.drift(
        inputs.drift_share,
        inputs.drift_threshold,
        last,
        timedelta(hours=inputs.cooldown_hours),
        evidence=inputs.evidence,
    )


def _last_run_start(
    client: MlflowClient, experiment_id: str, trigger: str | None
) -> datetime | None:
    query = f"tags.`{TRIGGER_TAG}` = '{trigger}'" if trigger else ""
    runs = client.search_runs(
        [experiment_id], filter_string=query, order_by=["attributes.start_time DESC"], max_results=1
    )
    if not runs:
        return None
    return datetime.fromtimestamp(runs[0].info.start_time / 1000, tz=UTC)


def trigger_from_settings(
    inputs: TriggerInputs,
    *,
    config_path: Path | None = None,
    quiet: bool = False,
    settings: RegistrySettings | None = None,
) -> tuple[TriggerDecision, RunSummary | None]:
    """Evaluate the trigger and run the pipeline when it fires.

    Returns:
        The decision, and the run summary when the pipeline ran.
    """
    settings = settings or get_settings()
    decision = decide(inputs, settings, config_path)
    Console(stderr=True, highlight=False).print(
        f"trigger {decision.kind.value}: {'fires' if decision.fire else 'does not fire'} "
        f"— {decision.reason}"
    )
    if not decision.fire:
        return decision, None
    request = RunRequest(
        seed=inputs.seed,
        scenario=inputs.scenario,
        magnitude=inputs.magnitude,
        trigger=decision.kind.value,
        reason=decision.reason,
    )
    return decision, run_from_settings(
        request,
        config_path=config_path,
        quiet=quiet,
        settings=settings,
        data=inputs.data,
        query=inputs.query,
    )
