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


@dataclass(frozen=True)
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
    plan = _plan(scenario, magnitude)
    data = plan.before_validation(df, cfg.data.seed)
    clock = _StageClock(on_stage or (lambda stage, status: None))
    with clock.stage("validate"):
        report = validate(data, rules=cfg.validation)
    if not report.success:
        clock.stop("validate")
        return PipelineResult(
            validation=report,
            data=data,
            timings=clock.timings,
            stopped_at="validate",
            scenario=plan.name,
            magnitude=plan.magnitude,
        )
    clock.passed("validate")
    return _train_and_gate(report, data, cfg, champion, plan, clock)


def _train_and_gate(
    report: ValidationReport,
    data: pd.DataFrame,
    cfg: PipelineConfig,
    champion: Classifier | None,
    plan: _ScenarioPlan,
    clock: _StageClock,
) -> PipelineResult:
    """The stages after a passed validation: split, train, evaluate, gate."""
    with clock.stage("split"):
        train, holdout = split(data, cfg.data.holdout_fraction, cfg.data.seed)
        train = plan.on_training_split(train, cfg.data.seed)
    clock.passed("split")
    with clock.stage("train"):
        model = fit(train, cfg.model)
    clock.passed("train")
    with clock.stage("evaluate"):
        evaluation = evaluate(model, holdout, cfg.evaluation, cfg.data.seed)
        champion_evaluation = (
            None if champion is None else evaluate(champion, holdout, cfg.evaluation, cfg.data.seed)
        )
    clock.passed("evaluate")
    with clock.stage("gate"):
        verdict = decide(evaluation, champion_evaluation, cfg.gates)
    if verdict.passed:
        clock.passed("gate")
    else:
        clock.stop("gate")
    return PipelineResult(
        validation=report,
        model=model,
        evaluation=evaluation,
        champion_evaluation=champion_evaluation,
        verdict=verdict,
        data=data,
        train=train,
        holdout=holdout,
        timings=clock.timings,
        stopped_at=None if verdict.passed else "gate",
        scenario=plan.name,
        magnitude=plan.magnitude,
    )


@dataclass(frozen=True)
class _ScenarioPlan:
    """Where a scenario applies: to the incoming rows (``both``) or to the training split."""

    name: str | None
    magnitude: float | None
    before_validation_applies: bool

    def before_validation(self, df: pd.DataFrame, seed: int) -> pd.DataFrame:
        """The rows as they arrive: changed by a ``both`` scenario, else ``df`` itself."""
        if self.name is None or not self.before_validation_applies:
            return df
        return apply_scenario(df, self.name, self.magnitude, seed=seed)

    def on_training_split(self, train: pd.DataFrame, seed: int) -> pd.DataFrame:
        """The training rows as fitted: corrupted by a training-side scenario, else ``train``."""
        if self.name is None or self.before_validation_applies:
            return train
        return apply_scenario(train, self.name, self.magnitude, seed=seed)


def _plan(scenario: str | None, magnitude: float | None) -> _ScenarioPlan:
    """Resolve ``scenario`` and its magnitude, refusing one that describes serving traffic."""
    if scenario is None:
        return _ScenarioPlan(None, None, before_validation_applies=False)
    chosen = get_scenario(scenario)
    value = resolve_magnitude(chosen, magnitude)
    if chosen.applies_to == "serving":
        raise ScenarioError(
            f"{scenario} applies to serving traffic only; use it in the traffic simulator, "
            f"not the training pipeline"
        )
    return _ScenarioPlan(scenario, value, before_validation_applies=chosen.applies_to == "both")


class _StageClock:
    """Reports each stage to the callback and times the ones that ran."""

    def __init__(self, notify: StageCallback) -> None:
        self._notify = notify
        self._timings: dict[str, float] = {}

    @property
    def timings(self) -> dict[str, float]:
        """Seconds per stage so far (a copy)."""
        return dict(self._timings)

    @contextmanager
    def stage(self, name: Stage) -> Iterator[None]:
        """Report ``name`` running and time the block."""
        self._notify(name, "running")
        start = time.perf_counter()
        yield
        self._timings[name] = time.perf_counter() - start

    def passed(self, name: Stage) -> None:
        """Report ``name`` passed."""
        self._notify(name, "passed")

    def stop(self, at: Stage) -> None:
        """Report ``at`` failed and every later stage skipped."""
        self._notify(at, "failed")
        for later in STAGES[STAGES.index(at) + 1 :]:
            self._notify(later, "skipped")
