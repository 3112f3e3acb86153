"""The CI pipeline as code: data → validate → train → evaluate → gate → register.

This module is the orchestration only. The steps are :mod:`pipeline` (pure functions), the MLflow
logging is :mod:`pipeline.tracking`, the alias moves and their audit trail are :mod:`registry`.
The runner adds what a CI stage needs around them: the champion to compare against, one MLflow run
per attempt (a rejected candidate is evidence too), the registration decision, and a summary that
names the failing stage and its reason.

Registration rule: a candidate that passes every gate is registered; it becomes ``champion`` when
there is none (bootstrap) and ``challenger`` otherwise. Promotion from challenger to champion is
not this runner's call: that is the canary's job (:mod:`ci.deploy`, :mod:`monitoring`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final, Literal

import mlflow
import pandas as pd

import features
from interfaces.tags import (
    CODE_VERSION_TAG,
    COMPILED_REASON_TAG,
    COMPILED_TAG,
    DATA_DIGEST_TAG,
    GATE_PASSED,
    GATE_VERDICT_TAG,
    TAG_PREFIX,
)
from pipeline import (
    DataSource,
    PipelineConfig,
    PipelineResult,
    code_version,
    dataset_digest,
    load_model,
    log_training_run,
)
from pipeline import run as run_steps
from pipeline.sizing import size_notes
from pipeline.tracking import mlflow_store, quiet_git_probe
from registry import InvalidMoveError, ModelRegistry, RegistryError

Outcome = Literal["registered", "rejected", "invalid-data", "unchanged"]
Reporter = Callable[[str, str, str], None]

TRIGGER_TAG: Final = TAG_PREFIX + "trigger"
"""Run tag: what started the run (``ci/runner.py`` finds the last drift-triggered run by it)."""
REASON_TAG: Final = TAG_PREFIX + "reason"
"""Run tag: why it was started."""
SEED_TAG: Final = TAG_PREFIX + "seed"
"""Run tag: the seed of the request."""
CHAMPION_BEFORE_TAG: Final = TAG_PREFIX + "champion_before"
"""Run tag: the champion the candidate was compared with (empty for a bootstrap)."""
SCENARIO_TAG: Final = TAG_PREFIX + "scenario"
"""Model version tag: the scenario the version's data went through (``none``)."""


@dataclass(frozen=True)
class RunRequest:
    """What to train on and why.

    Attributes:
        seed: Seed of the data generator (a new seed stands for a new data snapshot).
        scenario: Name of a scenario applied to the dataset, if any.
        magnitude: The scenario's magnitude (its default when ``None``).
        trigger: What started the run (``manual``, ``new-data``, ``schedule``, ``drift``).
        reason: Free text kept in the run's tags and the event log.
    """

    seed: int
    scenario: str | None = None
    magnitude: float | None = None
    trigger: str = "manual"
    reason: str = "manual run"


@dataclass(frozen=True)
class RunSummary:
    """The outcome of one pipeline run, as printed and as written with ``--json``."""

    outcome: Outcome
    seed: int
    scenario: str | None
    trigger: str
    run_id: str | None
    data_digest: str
    champion_before: int | None
    model_version: int | None = None
    alias: str | None = None
    failed_stage: str | None = None
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    gate: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    size_notes: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the run ended well: a registered model, or nothing new to learn from."""
        return self.outcome in ("registered", "unchanged")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form."""
        return {"ok": self.ok, **asdict(self)}


@dataclass(frozen=True)
class _Trained:
    """What the MLflow run produced: the steps' result, the run and the logged model."""

    result: PipelineResult
    run_id: str
    model_uri: str | None
    champion_before: int | None


def run_pipeline(
    request: RunRequest,
    data: DataSource,
    *,
    config: PipelineConfig,
    registry: ModelRegistry,
    tracking_uri: str,
    experiment_id: str,
    on_stage: Reporter | None = None,
) -> RunSummary:
    """Run every stage once and register the candidate if all gates pass.

    Args:
        request: Seed, scenario and trigger of this run.
        data: Where the rows come from; loaded in the ``data`` stage. ``mlplat pipeline run``
            passes :class:`pipeline.sources.GeneratedData` for ``request.seed``.
        config: The pipeline's typed parameters.
        registry: Where the champion is read and the candidate registered.
        tracking_uri: The MLflow store that receives the run (and resolves the champion's
            ``models:/`` URI); set for this call only (:func:`pipeline.tracking.mlflow_store`).
        experiment_id: MLflow experiment in that store that receives the run.
        on_stage: Progress callback ``(stage, status, detail)``; before training, each size
            note (:mod:`pipeline.sizing`) arrives as ``("size", "note", message)``.

    Returns:
        The run summary; ``summary.ok`` is false when a gate stopped the run.
    """
    report: Reporter = on_stage or _silent
    report("data", "running", "")
    frame = data.load()
    report("data", "passed", f"{len(frame):,} rows {data.description}")
    notes = size_notes(frame, features.current(), config)
    for note in notes:
        report("size", "note", note.message)
    if request.scenario is None:
        unchanged = _unchanged_snapshot(request, frame, registry)
        if unchanged is not None:
            return unchanged
    # Loading the champion, the run and the registration all resolve MLflow URIs through the
    # process-wide store (registering a ``models:/`` source included): set for this block only.
    with mlflow_store(tracking_uri):
        trained = _train_and_log(
            request, frame, data.lineage, config, registry, experiment_id, report
        )
        result = trained.result
        # The digest of the data as validated: a scenario that changes the inputs is new data.
        digest = dataset_digest(result.data if result.data is not None else frame)
        summary = replace(
            _judged(request, trained, digest), size_notes=[n.to_dict() for n in notes]
        )
        if not summary.ok or trained.model_uri is None:
            return summary
        report("register", "running", "")
        lineage = {
            DATA_DIGEST_TAG: digest,
            CODE_VERSION_TAG: code_version(),
            GATE_VERDICT_TAG: GATE_PASSED,
            SCENARIO_TAG: request.scenario or "none",
            **data.lineage,
            # The compiled-path verdict recorded on the run, copied so the version shows it too.
            **_compiled_verdict(trained.run_id),
        }
        version, alias, detail = _register(registry, trained, lineage, request.reason)
    report("register", "passed", detail)
    return replace(
        summary, model_version=version, alias=alias, reasons=[] if alias is not None else [detail]
    )


def _unchanged_snapshot(
    request: RunRequest, frame: pd.DataFrame, registry: ModelRegistry
) -> RunSummary | None:
    """A summary saying so when a registered version was trained on exactly these rows.

    Training again on an unchanged snapshot would register an identical model under a new
    number; the run stops before it starts an MLflow run.
    """
    digest = dataset_digest(frame)
    try:
        versions = registry.versions()
        champion = registry.state().champion
    except RegistryError:  # no model yet: nothing was trained on anything
        return None
    same = [v.version for v in versions if v.data_digest == digest]
    if not same:
        return None
    return RunSummary(
        outcome="unchanged",
        seed=request.seed,
        scenario=None,
        trigger=request.trigger,
        run_id=None,
        data_digest=digest,
        champion_before=champion,
        reasons=[
            f"unchanged snapshot {digest[:16]}: version {same[-1]} was trained on these rows; "
            "nothing registered (change the data, or pass --scenario, to train again)"
        ],
    )


def _compiled_verdict(run_id: str) -> dict[str, str]:
    """The run's ``mlplat.compiled`` tag and its reason (see :mod:`pipeline.compiled`)."""
    tags = mlflow.get_run(run_id).data.tags
    return {k: tags[k] for k in (COMPILED_TAG, COMPILED_REASON_TAG) if k in tags}


def _register(
    registry: ModelRegistry, trained: _Trained, lineage: Mapping[str, str], reason: str
) -> tuple[int, str | None, str]:
    """Register the gated model and give it its alias; return version, alias and a line."""
    assert trained.model_uri is not None
    version = registry.register(trained.model_uri, trained.run_id, dict(lineage), reason=reason)
    evidence = f"runs:/{trained.run_id}"
    alias, detail = place_version(registry, version, trained.champion_before, evidence)
    return version, alias, detail


def _train_and_log(
    request: RunRequest,
    frame: pd.DataFrame,
    lineage: Mapping[str, str],
    config: PipelineConfig,
    registry: ModelRegistry,
    experiment_id: str,
    report: Reporter,
) -> _Trained:
    """Load the champion, run the steps inside one MLflow run and log what they produced."""
    registry.ensure_model()
    champion_before = registry.state().champion
    champion = load_model(registry.model_uri(champion_before)) if champion_before else None
    # The run's code version is code_version()'s; MLflow's own git probe must not warn where
    # git is not installed (the runtime image).
    with quiet_git_probe():
        started = mlflow.start_run(experiment_id=experiment_id, run_name=_run_name(request))
    with started as run:
        mlflow.set_tags(
            {
                TRIGGER_TAG: request.trigger,
                REASON_TAG: request.reason,
                SEED_TAG: str(request.seed),
                CHAMPION_BEFORE_TAG: str(champion_before or ""),
                **lineage,
            }
        )
        result = run_steps(
            frame,
            config,
            champion,
            scenario=request.scenario,
            magnitude=request.magnitude,
            on_stage=lambda stage, status: report(stage, status, ""),
        )
        report("log", "running", "")
        model_uri = log_training_run(result, config)
        run_id = run.info.run_id
        report("log", "passed", f"MLflow run {run_id[:12]}")
    return _Trained(result, run_id, model_uri, champion_before)


def _judged(request: RunRequest, trained: _Trained, digest: str) -> RunSummary:
    """The summary as the gates left it: ``registered`` means "may be registered"."""
    result = trained.result
    summary = RunSummary(
        outcome="registered",
        seed=request.seed,
        scenario=request.scenario,
        trigger=request.trigger,
        run_id=trained.run_id,
        data_digest=digest,
        champion_before=trained.champion_before,
        stage_seconds=dict(result.timings),
        validation=result.validation.to_dict(),
    )
    if result.stopped_at == "validate":
        reasons = [failure.describe() for failure in result.validation.failures]
        return replace(summary, outcome="invalid-data", failed_stage="validate", reasons=reasons)
    assert result.evaluation is not None
    assert result.verdict is not None
    metrics = {
        name: float(value)
        for name, value in result.evaluation.metrics.to_dict().items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    summary = replace(summary, metrics=metrics, gate=result.verdict.to_dict())
    if not result.verdict.passed or trained.model_uri is None:
        return replace(
            summary, outcome="rejected", failed_stage="gate", reasons=result.verdict.reasons()
        )
    return summary


def place_version(
    registry: ModelRegistry, version: int, champion_before: int | None, evidence: str
) -> tuple[str | None, str]:
    """Give a gated version its alias: champion if there is none (bootstrap), else challenger.

    Bootstrap is a compare-and-set under the model lock: when two first runs race, one
    becomes champion and the other's version stays registered and gated, with no alias.

    Returns:
        The alias it got (``None`` if it lost a bootstrap race) and a line saying so.
    """
    if champion_before is None:
        try:
            registry.bootstrap(version, reason="first model to pass the gates", evidence=evidence)
            return "champion", f"version {version} → champion"
        except InvalidMoveError:
            winner = registry.state().champion
            if winner is None or winner == version:
                raise
            return None, (
                f"version {version} passed the gates and is registered, but version {winner} "
                "became champion first (another first run finished meanwhile); it stays a "
                f"gated version: try it with `mlplat deploy canary --version {version}`"
            )
    registry.set_challenger(
        version, reason=f"passed the gates against v{champion_before}", evidence=evidence
    )
    return "challenger", f"version {version} → challenger"


def _silent(stage: str, status: str, detail: str) -> None:
    """Discard progress (library use without a console)."""


def _run_name(request: RunRequest) -> str:
    scenario = f"-{request.scenario}" if request.scenario else ""
    return f"{request.trigger}-seed{request.seed}{scenario}"
