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

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import mlflow

from interfaces.tags import CODE_VERSION_TAG, DATA_DIGEST_TAG, GATE_PASSED, GATE_VERDICT_TAG
from pipeline import (
    PipelineConfig,
    code_version,
    dataset_digest,
    generate,
    load_model,
    log_training_run,
)
from pipeline import run as run_steps
from pipeline.tracking import quiet_git_probe
from registry import InvalidMoveError, ModelRegistry

Outcome = Literal["registered", "rejected", "invalid-data"]
Reporter = Callable[[str, str, str], None]


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


@dataclass
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

    @property
    def ok(self) -> bool:
        """Whether the run ended with a registered model."""
        return self.outcome == "registered"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form."""
        return {"ok": self.ok, **asdict(self)}


def run_pipeline(
    request: RunRequest,
    *,
    config: PipelineConfig,
    registry: ModelRegistry,
    experiment_id: str,
    on_stage: Reporter | None = None,
) -> RunSummary:
    """Run every stage once and register the candidate if all gates pass.

    Args:
        request: Seed, scenario and trigger of this run.
        config: The pipeline's typed parameters.
        registry: Where the champion is read and the candidate registered.
        experiment_id: MLflow experiment that receives the run (the tracking URI is already set).
        on_stage: Progress callback ``(stage, status, detail)``.

    Returns:
        The run summary; ``summary.ok`` is false when a gate stopped the run.
    """
    report: Reporter = on_stage or _silent

    report("data", "running", "")
    frame = generate(config.data.n_rows, request.seed)
    report("data", "passed", f"{len(frame):,} rows generated with seed {request.seed}")

    registry.ensure_model()
    state = registry.state()
    champion = load_model(registry.model_uri(state.champion)) if state.champion else None

    # The run's code version is code_version()'s; MLflow's own git probe must not warn where
    # git is not installed (the runtime image).
    with quiet_git_probe():
        started = mlflow.start_run(experiment_id=experiment_id, run_name=_run_name(request))
    with started as run:
        mlflow.set_tags(
            {
                "mlplat.trigger": request.trigger,
                "mlplat.reason": request.reason,
                "mlplat.seed": str(request.seed),
                "mlplat.champion_before": str(state.champion or ""),
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
    # The digest of the data as validated: a scenario that changes the inputs is new data.
    digest = dataset_digest(result.data if result.data is not None else frame)

    summary = RunSummary(
        outcome="registered",
        seed=request.seed,
        scenario=request.scenario,
        trigger=request.trigger,
        run_id=run_id,
        data_digest=digest,
        champion_before=state.champion,
        stage_seconds=dict(result.timings),
        validation=result.validation.to_dict(),
    )
    if result.stopped_at == "validate":
        summary.outcome = "invalid-data"
        summary.failed_stage = "validate"
        summary.reasons = [failure.describe() for failure in result.validation.failures]
        return summary

    assert result.evaluation is not None
    assert result.verdict is not None
    summary.metrics = {
        name: float(value)
        for name, value in result.evaluation.metrics.to_dict().items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    summary.gate = result.verdict.to_dict()
    if not result.verdict.passed or model_uri is None:
        summary.outcome = "rejected"
        summary.failed_stage = "gate"
        summary.reasons = result.verdict.reasons()
        return summary

    report("register", "running", "")
    lineage = {
        DATA_DIGEST_TAG: digest,
        CODE_VERSION_TAG: code_version(),
        GATE_VERDICT_TAG: GATE_PASSED,
        "mlplat.scenario": request.scenario or "none",
    }
    version = registry.register(model_uri, run_id, lineage, reason=request.reason)
    summary.model_version = version
    summary.alias, detail = place_version(registry, version, state.champion, f"runs:/{run_id}")
    if summary.alias is None:
        summary.reasons = [detail]
    report("register", "passed", detail)
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
