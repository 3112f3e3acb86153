"""Each component's ``__init__`` is its public API, pinned here name by name.

As httpx's ``tests/test_exported_members.py`` pins its API: a name added to or removed from a
component's ``__all__`` fails :func:`test_the_public_api_is_exactly_the_pinned_one` until it is
added here too, so an API change is always a visible, reviewed edit. Every listed name must
resolve, and nothing public is exported by accident (a helper imported into ``__init__``).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PINNED: dict[str, list[str]] = {
    "features": [
        "CATEGORICAL_FEATURES",
        "CONTRACT",
        "CONTRACT_ENV",
        "CategoricalFeature",
        "Contract",
        "ContractError",
        "DEFAULT_CONTRACT",
        "Direction",
        "ENTITY_ID",
        "FEATURES",
        "FEATURE_NAMES",
        "Feature",
        "NUMERIC_FEATURES",
        "NumericFeature",
        "SEGMENT",
        "TARGET",
        "contract_path",
        "current",
        "feature",
        "load_contract",
    ],
    "interfaces": [],
    "pipeline": [
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
        "PIP_REQUIREMENTS",
        "PipelineConfig",
        "PipelineResult",
        "SCENARIOS",
        "SKOPS_TRUSTED_TYPES",
        "STAGES",
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
    ],
    "registry": [
        "Action",
        "CANARY_WEIGHT_TAG",
        "CHALLENGER",
        "CHAMPION",
        "CODE_VERSION_TAG",
        "DATA_DIGEST_TAG",
        "DeploymentEvent",
        "DeploymentState",
        "EventStatus",
        "EventStore",
        "EventStoreError",
        "EventStoreUnavailable",
        "GATE_VERDICT_TAG",
        "InvalidMoveError",
        "JsonValue",
        "LeaseLostError",
        "ModelNotFoundError",
        "ModelRegistry",
        "ModelVersionInfo",
        "MoveInProgressError",
        "MoveNotRecordedError",
        "NoPreviousChampionError",
        "PREVIOUS_CHAMPION_TAG",
        "RegistryError",
        "RegistrySettings",
        "RegistryUnavailable",
        "STATUS_TAG",
        "StaleStateError",
        "VersionNotFoundError",
        "ensure_experiment",
        "get_settings",
        "open_registry",
        "registry_from_settings",
    ],
    "serving": [
        "DesiredState",
        "FileModelSource",
        "InferenceLogStore",
        "ModelSource",
        "RegistryModelSource",
        "ServingMetrics",
        "ServingSettings",
        "create_app",
        "get_settings",
    ],
    "ci": [
        "MAX_CANARY_WEIGHT",
        "NotServableError",
        "RunRequest",
        "RunSummary",
        "TriggerDecision",
        "TriggerKind",
        "check_canary_weight",
        "promote",
        "run_pipeline",
        "start_canary",
    ],
    "demo": [
        "DemoConfig",
        "DemoConfigError",
        "ScenarioResult",
        "demo",
        "load_demo_config",
        "run_demo",
    ],
    "benchmarks": [
        "BenchmarkError",
        "run_judge_benchmark",
        "run_log_judge_benchmark",
        "run_pipeline_benchmark",
        "run_race_benchmark",
        "run_serving_benchmark",
        "run_store_benchmark",
    ],
    "monitoring": [
        "CanaryJudge",
        "CanaryObservation",
        "Controller",
        "ControllerMetrics",
        "CycleReport",
        "DriftConfig",
        "DriftDetector",
        "DriftResult",
        "InferenceLogReader",
        "JudgeConfig",
        "JudgeResult",
        "MonitorSettings",
        "Verdict",
        "build_controller",
        "check_drift",
        "create_app",
        "get_settings",
        "recommend",
    ],
    "mlplat": [
        "main",
    ],
    "migrations": [
        "ColumnChanges",
        "ContractColumnError",
        "EVENTS",
        "INFERENCE_LOG",
        "MigrationError",
        "SCHEMAS",
        "Schema",
        "UpgradeReport",
        "current_revision",
        "upgrade",
    ],
}
COMPONENTS = tuple(PINNED)


def test_every_declared_component_is_pinned() -> None:
    """The components pyproject declares are exactly the ones pinned here: none is forgotten."""
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert sorted(pyproject["tool"]["mlplat"]["components"]) == sorted(PINNED)


@pytest.mark.parametrize("package", COMPONENTS)
def test_the_public_api_is_exactly_the_pinned_one(package: str) -> None:
    """``__all__`` equals the pinned list, once each: no name appears or goes silently."""
    exported = importlib.import_module(package).__all__
    assert len(set(exported)) == len(exported)
    assert sorted(exported) == PINNED[package]


@pytest.mark.parametrize("package", COMPONENTS)
def test_nothing_public_is_exported_by_accident(package: str) -> None:
    """Every public non-module name bound in ``__init__`` is one ``__all__`` lists."""
    module = importlib.import_module(package)
    bound = {
        name for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
        and name not in {"annotations", "TYPE_CHECKING"}
    }  # fmt: skip
    assert bound - set(module.__all__) == set()


@pytest.mark.parametrize("package", COMPONENTS)
def test_every_exported_name_resolves(package: str) -> None:
    """A name in ``__all__`` that does not import breaks whoever copies the folder."""
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{package} has no __all__"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ lists names that do not resolve: {missing}"


def test_importing_monitoring_stays_light() -> None:
    """``import monitoring`` loads no MLflow: the judge and configs lift out without it."""
    code = "import sys, monitoring; monitoring.CanaryJudge; print('mlflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
