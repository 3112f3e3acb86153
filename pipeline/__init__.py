"""The training pipeline: generate → validate → split → train → evaluate → gate → track.

Steps are small functions in modules named for what they hold; :mod:`pipeline.pipeline` wires
them, :mod:`pipeline.tracking` records a run in MLflow, and :mod:`pipeline.config` holds every
parameter (defaults in ``pipeline/conf/parameters.yml``).
"""

from pipeline.behaviour import BehaviouralCheck, run_behavioural_checks
from pipeline.config import (
    ConfigError,
    DataConfig,
    EvaluationConfig,
    GateConfig,
    ModelConfig,
    PipelineConfig,
    ValidationConfig,
    load_config,
)
from pipeline.data import default_probability, generate
from pipeline.evaluate import Evaluation, ScoredRows, evaluate
from pipeline.gates import (
    BootstrapInterval,
    GateCheck,
    GateError,
    GateVerdict,
    decide,
    paired_bootstrap_auc_diff,
)
from pipeline.metrics import (
    ClassificationMetrics,
    brier,
    expected_calibration_error,
    log_loss,
    roc_auc,
    slice_metrics,
)
from pipeline.model_io import (
    PIP_REQUIREMENTS,
    SKOPS_TRUSTED_TYPES,
    ModelFormatError,
    load_model,
    log_model,
)
from pipeline.pipeline import STAGES, PipelineResult, run
from pipeline.scenarios import (
    SCENARIOS,
    InvalidMagnitudeError,
    Scenario,
    ScenarioError,
    UnknownScenarioError,
    apply_scenario,
    scenario_names,
)
from pipeline.sources import DataSource, GeneratedData
from pipeline.tracking import (
    TrackingError,
    code_version,
    dataset_digest,
    log_training_run,
)
from pipeline.train import Classifier, TrainingError, build_model, fit, split
from pipeline.validation import FailedExpectation, ValidationReport, build_suite, validate

__all__ = [
    "PIP_REQUIREMENTS",
    "SCENARIOS",
    "SKOPS_TRUSTED_TYPES",
    "STAGES",
    "BehaviouralCheck",
    "BootstrapInterval",
    "ClassificationMetrics",
    "Classifier",
    "ConfigError",
    "DataConfig",
    "DataSource",
    "Evaluation",
    "EvaluationConfig",
    "FailedExpectation",
    "GateCheck",
    "GateConfig",
    "GateError",
    "GateVerdict",
    "GeneratedData",
    "InvalidMagnitudeError",
    "ModelConfig",
    "ModelFormatError",
    "PipelineConfig",
    "PipelineResult",
    "Scenario",
    "ScenarioError",
    "ScoredRows",
    "TrackingError",
    "TrainingError",
    "UnknownScenarioError",
    "ValidationConfig",
    "ValidationReport",
    "apply_scenario",
    "brier",
    "build_model",
    "build_suite",
    "code_version",
    "dataset_digest",
    "decide",
    "default_probability",
    "evaluate",
    "expected_calibration_error",
    "fit",
    "generate",
    "load_config",
    "load_model",
    "log_loss",
    "log_model",
    "log_training_run",
    "paired_bootstrap_auc_diff",
    "roc_auc",
    "run",
    "run_behavioural_checks",
    "scenario_names",
    "slice_metrics",
    "split",
    "validate",
]
