"""The one typed configuration of the training pipeline.

The defaults live in one place, ``pipeline/conf/parameters.yml``: these models hold the types and
the rules, and each field's default is that file's value (read once, on first use), so
``GateConfig(min_auc=0.8)`` keeps every other threshold of the file. A user file is merged over
``parameters.yml``, so it only needs the keys it changes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULTS_PATH = Path(__file__).parent / "conf" / "parameters.yml"
"""The checked-in defaults, read by :func:`load_config`."""


class ConfigError(ValueError):
    """A configuration file is unreadable or a value breaks a rule; the message names the field."""


@functools.cache
def _defaults() -> dict[str, Any]:
    return _read_yaml(DEFAULTS_PATH)


def _default(*path: str) -> Callable[[], Any]:
    """A default factory reading ``parameters.yml`` at ``path`` (e.g. ``"gates", "min_auc"``)."""

    def read() -> Any:
        value: Any = _defaults()
        for key in path:
            if not isinstance(value, dict) or key not in value:
                raise ConfigError(f"{DEFAULTS_PATH}: no default for {'.'.join(path)}")
            value = value[key]
        return value

    return read


class _Section(BaseModel):
    # Unknown keys are typos until proven otherwise: refuse them by name.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class DataConfig(_Section):
    """How much data to generate and how to split it.

    Attributes:
        n_rows: Rows generated for one run.
        holdout_fraction: Share of rows held out for evaluation and the gate.
        seed: Seed of the generator, the split and the scenarios.
    """

    n_rows: int = Field(default_factory=_default("data", "n_rows"), ge=100, le=2_000_000)
    holdout_fraction: float = Field(
        default_factory=_default("data", "holdout_fraction"), gt=0.0, lt=0.9
    )
    seed: int = Field(default_factory=_default("data", "seed"), ge=0)


class ModelConfig(_Section):
    """Hyper-parameters of the ``HistGradientBoostingClassifier``; defaults favour speed.

    Attributes:
        learning_rate: Shrinkage applied to each tree.
        max_iter: Upper bound on boosting iterations (early stopping usually ends sooner).
        max_leaf_nodes: Leaves per tree.
        min_samples_leaf: Smallest leaf, a guard against over-fitting thin slices.
        l2_regularization: L2 penalty on leaf values.
        early_stopping: Stop when the internal validation loss stops improving.
        validation_fraction: Share of the training rows used for early stopping.
        n_iter_no_change: Patience of early stopping, in iterations.
        random_state: Seed of the estimator (early-stopping split and binning subsample).
        threads: OpenMP threads used to fit; ``None`` lets the library use every core. One
            avoids threads busy-waiting on a shared machine (see :mod:`pipeline.threads`).
    """

    learning_rate: float = Field(default_factory=_default("model", "learning_rate"), gt=0.0, le=1.0)
    max_iter: int = Field(default_factory=_default("model", "max_iter"), ge=1, le=5_000)
    max_leaf_nodes: int = Field(default_factory=_default("model", "max_leaf_nodes"), ge=2, le=1_024)
    min_samples_leaf: int = Field(default_factory=_default("model", "min_samples_leaf"), ge=1)
    l2_regularization: float = Field(default_factory=_default("model", "l2_regularization"), ge=0.0)
    early_stopping: bool = Field(default_factory=_default("model", "early_stopping"))
    validation_fraction: float = Field(
        default_factory=_default("model", "validation_fraction"), gt=0.0, lt=0.5
    )
    n_iter_no_change: int = Field(default_factory=_default("model", "n_iter_no_change"), ge=1)
    random_state: int = Field(default_factory=_default("model", "random_state"), ge=0)
    threads: int | None = Field(default_factory=_default("model", "threads"), ge=1)


class ValidationConfig(_Section):
    """Dataset-level rules of the validation gate (the column rules come from the contract).

    Attributes:
        min_rows: Fewest rows a training dataset may have.
        max_rows: Most rows a training dataset may have.
        min_default_rate: Lowest plausible share of defaults.
        max_default_rate: Highest plausible share of defaults.
    """

    min_rows: int = Field(default_factory=_default("validation", "min_rows"), ge=1)
    max_rows: int = Field(default_factory=_default("validation", "max_rows"), ge=1)
    min_default_rate: float = Field(
        default_factory=_default("validation", "min_default_rate"), ge=0.0, le=1.0
    )
    max_default_rate: float = Field(
        default_factory=_default("validation", "max_default_rate"), ge=0.0, le=1.0
    )

    @model_validator(mode="after")
    def _bounds_are_ordered(self) -> ValidationConfig:
        if self.min_rows > self.max_rows:
            raise ValueError("min_rows must not exceed max_rows")
        if self.min_default_rate > self.max_default_rate:
            raise ValueError("min_default_rate must not exceed max_default_rate")
        return self


class EvaluationConfig(_Section):
    """How the candidate is measured on the holdout.

    Attributes:
        calibration_bins: Equal-width bins of the expected calibration error.
        latency_batch_rows: Rows per timed ``predict_proba`` batch.
        latency_repeats: Timed batches; the median is reported.
        behaviour_sample_rows: Holdout rows perturbed by the behavioural checks.
    """

    calibration_bins: int = Field(
        default_factory=_default("evaluation", "calibration_bins"), ge=2, le=100
    )
    latency_batch_rows: int = Field(
        default_factory=_default("evaluation", "latency_batch_rows"), ge=1
    )
    latency_repeats: int = Field(
        default_factory=_default("evaluation", "latency_repeats"), ge=1, le=100
    )
    behaviour_sample_rows: int = Field(
        default_factory=_default("evaluation", "behaviour_sample_rows"), ge=50
    )


class GateConfig(_Section):
    """Thresholds of the promotion gate (see :mod:`pipeline.gates` for the exact rules).

    Attributes:
        min_auc: Floor on holdout ROC AUC.
        max_log_loss: Ceiling on holdout log loss.
        max_brier: Ceiling on holdout Brier score.
        max_ece: Ceiling on holdout expected calibration error.
        auc_margin: Largest AUC loss versus the champion tolerated with ``confidence``.
        slice_auc_margin: The same, per segment slice (thin slices are noisier).
        min_slice_rows: Slices with fewer holdout rows are reported, not gated.
        bootstrap_resamples: Paired bootstrap resamples of the holdout.
        confidence: Two-sided confidence level of the bootstrap interval.
        latency_budget_ms_per_row: Ceiling on measured predict time per row.
        size_budget_bytes: Ceiling on the serialized (skops) model size.
        bootstrap_seed: Seed of the bootstrap, so a verdict can be reproduced.
    """

    min_auc: float = Field(default_factory=_default("gates", "min_auc"), ge=0.0, le=1.0)
    max_log_loss: float = Field(default_factory=_default("gates", "max_log_loss"), gt=0.0)
    max_brier: float = Field(default_factory=_default("gates", "max_brier"), gt=0.0, le=1.0)
    max_ece: float = Field(default_factory=_default("gates", "max_ece"), gt=0.0, le=1.0)
    auc_margin: float = Field(default_factory=_default("gates", "auc_margin"), ge=0.0, le=1.0)
    slice_auc_margin: float = Field(
        default_factory=_default("gates", "slice_auc_margin"), ge=0.0, le=1.0
    )
    min_slice_rows: int = Field(default_factory=_default("gates", "min_slice_rows"), ge=1)
    bootstrap_resamples: int = Field(
        default_factory=_default("gates", "bootstrap_resamples"), ge=100, le=100_000
    )
    confidence: float = Field(default_factory=_default("gates", "confidence"), gt=0.5, lt=1.0)
    latency_budget_ms_per_row: float = Field(
        default_factory=_default("gates", "latency_budget_ms_per_row"), gt=0.0
    )
    size_budget_bytes: int = Field(default_factory=_default("gates", "size_budget_bytes"), gt=0)
    bootstrap_seed: int = Field(default_factory=_default("gates", "bootstrap_seed"), ge=0)


class PipelineConfig(_Section):
    """Every parameter of one training run.

    Attributes:
        data: Generation and split.
        model: Estimator hyper-parameters.
        validation: Dataset-level validation rules.
        evaluation: Measurement settings.
        gates: Promotion thresholds.
        reference_sample_rows: Training rows logged as the monitoring reference.
    """

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    gates: GateConfig = Field(default_factory=GateConfig)
    reference_sample_rows: int = Field(default_factory=_default("reference_sample_rows"), ge=10)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(loaded).__name__}")
    return loaded


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError, source: Path) -> str:
    lines = [f"{source}: invalid pipeline configuration"]
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "<root>"
        value = item.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"  {location}: {item['msg']}{shown}")
    return "\n".join(lines)


def load_config(path: Path | None = None) -> PipelineConfig:
    """Read the pipeline configuration.

    Args:
        path: A YAML file whose keys override ``pipeline/conf/parameters.yml``; ``None`` reads
            the defaults alone.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: The file is missing or malformed, or a value breaks a rule; every offending
            field is named with its dotted path (``gates.min_auc``).
    """
    raw = _read_yaml(DEFAULTS_PATH)
    source = DEFAULTS_PATH
    if path is not None:
        raw = _merge(raw, _read_yaml(path))
        source = path
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
