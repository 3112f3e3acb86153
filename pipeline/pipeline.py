"""The wiring: validate → split → train → evaluate → gate. No MLflow, no I/O.

Each stage is a step function from another module; this one only orders them, times them and
stops early when a gate says so. Logging the outcome is :mod:`pipeline.tracking`'s job.

Scenarios are applied where they happen in the real world (see ``Scenario.applies_to``):
``both`` scenarios change the incoming data before validation; ``training`` scenarios (label noise)
corrupt the training split only, because the holdout stands for a trusted, separately-labelled
evaluation set — which is what lets the gate see the damage. ``serving`` scenarios are refused:
they describe traffic, not training data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
from sklearn.pipeline import Pipeline

from pipeline.config import PipelineConfig
from pipeline.evaluate import Evaluation, evaluate
from pipeline.gates import GateVerdict, decide
from pipeline.scenarios import ScenarioError, apply_scenario, get_scenario, resolve_magnitude
from pipeline.train import Classifier, fit, split
from pipeline.validation import ValidationReport, validate

Stage = Literal["validate", "split", "train", "evaluate", "gate"]
STAGES: tuple[Stage, ...] = ("validate", "split", "train", "evaluate", "gate")
"""The stages in order; ``on_stage`` receives these names."""

StageStatus = Literal["running", "passed", "failed", "skipped"]
StageCallback = Callable[[str, str], None]


@dataclass
class PipelineResult:
    """What one run produced, including where it stopped.

    Attributes:
        validation: The validation report (always present).
        model: The fitted candidate; ``None`` when validation failed.
        evaluation: The candidate on the holdout.
        champion_evaluation: The champion on the same holdout, when there is a champion.
        verdict: The gate's decision.
        data: The rows as validated (after any ``both`` scenario).
        train: Training rows as fitted (after any training-side scenario).
        holdout: Held-out rows used by evaluation and the gate.
        timings: Seconds per stage that ran.
        stopped_at: ``"validate"`` or ``"gate"`` when a gate stopped the run, else ``None``.
        scenario: The scenario applied, if any.
        magnitude: Its magnitude.
    """

    validation: ValidationReport
    model: Pipeline | None = None
    evaluation: Evaluation | None = None
    champion_evaluation: Evaluation | None = None
    verdict: GateVerdict | None = None
    data: pd.DataFrame | None = field(default=None, repr=False)
    train: pd.DataFrame | None = field(default=None, repr=False)
    holdout: pd.DataFrame | None = field(default=None, repr=False)
    timings: dict[str, float] = field(default_factory=dict)
    stopped_at: str | None = None
    scenario: str | None = None
    magnitude: float | None = None

    @property
    def passed(self) -> bool:
        """Whether the candidate passed every gate and may be registered."""
        return self.stopped_at is None and self.verdict is not None and self.verdict.passed

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable summary (no frames, no model)."""
        return {
            "passed": self.passed,
            "stopped_at": self.stopped_at,
            "scenario": self.scenario,
            "magnitude": self.magnitude,
            "rows": {
                "train": None if self.train is None else len(self.train),
                "holdout": None if self.holdout is None else len(self.holdout),
            },
            "timings": dict(self.timings),
            "validation": self.validation.to_dict(),
            "evaluation": None if self.evaluation is None else self.evaluation.to_dict(),
            "champion_evaluation": (
                None if self.champion_evaluation is None else self.champion_evaluation.to_dict()
            ),
            "verdict": None if self.verdict is None else self.verdict.to_dict(),
        }


def run(
    df: pd.DataFrame,
    cfg: PipelineConfig,
    champion: Classifier | None,
    *,
    scenario: str | None = None,
    magnitude: float | None = None,
    on_stage: StageCallback | None = None,
) -> PipelineResult:
    """Run the pipeline on ``df`` (not modified).

    Args:
        df: Labelled rows shaped like :func:`pipeline.data.generate` output.
        cfg: The configuration.
        champion: The current production model, or ``None`` when there is none yet.
        scenario: A training-side or ``both`` scenario to apply (see the module docstring).
        magnitude: The scenario's magnitude; ``None`` for its default.
        on_stage: Called with ``(stage, status)``: ``running`` when a stage starts, then
            ``passed``/``failed``; stages after a stop are reported ``skipped``.

    Returns:
        The result; check ``stopped_at`` and ``verdict``.

    Raises:
        ScenarioError: Unknown scenario, magnitude out of range, or a serving-only scenario.
    """
    notify = on_stage or (lambda stage, status: None)
    timings: dict[str, float] = {}

    @contextmanager
    def stage(name: Stage) -> Iterator[None]:
        notify(name, "running")
        start = time.perf_counter()
        yield
        timings[name] = time.perf_counter() - start

    def stop(at: Stage) -> None:
        notify(at, "failed")
        for later in STAGES[STAGES.index(at) + 1 :]:
            notify(later, "skipped")

    defect: str | None = None
    value: float | None = None
    if scenario is not None:
        chosen = get_scenario(scenario)
        value = resolve_magnitude(chosen, magnitude)
        if chosen.applies_to == "serving":
            raise ScenarioError(
                f"{scenario} applies to serving traffic only; use it in the traffic simulator, "
                f"not the training pipeline"
            )
        if chosen.applies_to == "both":
            df = apply_scenario(df, scenario, value, seed=cfg.data.seed)
        else:
            defect = scenario

    with stage("validate"):
        report = validate(df, rules=cfg.validation)
    result = PipelineResult(
        validation=report, data=df, timings=timings, scenario=scenario, magnitude=value
    )
    if not report.success:
        result.stopped_at = "validate"
        stop("validate")
        return result
    notify("validate", "passed")

    with stage("split"):
        train, holdout = split(df, cfg.data.holdout_fraction, cfg.data.seed)
        if defect is not None:
            train = apply_scenario(train, defect, value, seed=cfg.data.seed)
    result.train, result.holdout = train, holdout
    notify("split", "passed")

    with stage("train"):
        result.model = fit(train, cfg.model)
    notify("train", "passed")

    with stage("evaluate"):
        result.evaluation = evaluate(result.model, holdout, cfg.evaluation, cfg.data.seed)
        if champion is not None:
            result.champion_evaluation = evaluate(champion, holdout, cfg.evaluation, cfg.data.seed)
    notify("evaluate", "passed")

    with stage("gate"):
        result.verdict = decide(result.evaluation, result.champion_evaluation, cfg.gates)
    if not result.verdict.passed:
        result.stopped_at = "gate"
        stop("gate")
    else:
        notify("gate", "passed")
    return result
