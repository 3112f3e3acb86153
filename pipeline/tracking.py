"""Record a pipeline run in the *active* MLflow run.

The caller owns the run (tracking URI, experiment, ``mlflow.start_run``); this module only writes
into it, so it works the same against a local SQLite store in a test and a server in production.
A stopped run is recorded too: the validation report explains why nothing was trained.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import FEATURE_NAMES, TARGET
from interfaces.tags import REFERENCE_ARTIFACT, TAG_PREFIX
from pipeline.compiled import check_compiled
from pipeline.config import PipelineConfig
from pipeline.evaluate import Evaluation
from pipeline.model_io import log_model
from pipeline.pipeline import PipelineResult

PREDICTION_COLUMN = "prediction"
"""Column of the reference sample holding the model's probability of default."""


class TrackingError(RuntimeError):
    """Nothing to log into: no MLflow run is active."""


def dataset_digest(df: pd.DataFrame) -> str:
    """Return a SHA-256 of the frame's content, column names and dtypes (not its index).

    The same rows in the same order give the same digest in any process.
    """
    digest = hashlib.sha256()
    schema = [[str(name), str(dtype)] for name, dtype in df.dtypes.items()]
    digest.update(json.dumps(schema).encode())
    digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return digest.hexdigest()


CODE_VERSION_ENV = "MLPLAT_CODE_VERSION"
"""Environment variable naming the code version where there is no git checkout to ask: the image
sets it from its ``GIT_COMMIT`` build argument (Dockerfile)."""

UNKNOWN_CODE_VERSION = "unknown"
"""The code version recorded when neither :data:`CODE_VERSION_ENV` nor git can say."""


def code_version(root: Path | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Return the version of the code a run records, without warnings whatever is installed.

    In order: :data:`CODE_VERSION_ENV` when set and not blank (the image has neither a checkout
    nor git, so its build bakes the commit in); else the git commit of the checkout, ``-dirty``
    when the work tree has changes; else ``unknown``. A package version is not used: every
    commit between two releases carries the same one.

    Args:
        root: A directory inside the checkout; defaults to this package's parent.
        environ: Where to read :data:`CODE_VERSION_ENV`; defaults to the process environment.
    """
    given = (os.environ if environ is None else environ).get(CODE_VERSION_ENV, "").strip()
    if given:
        return given
    where = root or Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        completed = subprocess.run(
            ["git", *args], cwd=where, capture_output=True, text=True, check=True, timeout=10
        )
        return completed.stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain"))
    except (OSError, subprocess.SubprocessError):
        # No git executable, or not a checkout: the answer is "unknown", not a warning.
        return UNKNOWN_CODE_VERSION
    return f"{sha}-dirty" if dirty else sha


@contextmanager
def quiet_git_probe() -> Iterator[None]:
    """Let MLflow's git probe fail quietly while a run starts, where git is not installed.

    ``mlflow.start_run`` asks GitPython for the commit, branch and remote of the entry script.
    Without a git executable (the runtime image) GitPython refuses to import unless
    ``GIT_PYTHON_REFRESH=quiet``, and MLflow logs that refusal as three warnings per run. Inside
    this block GitPython imports quietly instead (once per process) and MLflow records no git
    tags; the run's code version is :func:`code_version`'s anyway. Where git is installed nothing
    changes. A value the caller set is kept, and the environment is restored on exit.
    """
    variable = "GIT_PYTHON_REFRESH"
    if variable in os.environ:
        yield
        return
    os.environ[variable] = "quiet"
    try:
        yield
    finally:
        os.environ.pop(variable, None)


_STORE_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextmanager
def mlflow_store(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (tracking and model registry) at ``uri`` for the block only.

    ``mlflow.start_run``, ``mlflow.log_*``, ``mlflow.sklearn.log_model``, the download of a
    ``models:/`` URI and the registration of a version whose source is one take no store argument:
    they read one process-wide URI. So this is the one
    place the platform sets it, and it puts everything back on exit: both URIs (unset included)
    and the ``MLFLOW_TRACKING_URI``/``MLFLOW_REGISTRY_URI`` variables that ``set_tracking_uri``
    and ``set_registry_uri`` write for subprocesses. Like the fluent API it serves, it is
    process-wide while the block runs: one block at a time, from one thread.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    # MLflow has no public getter that tells "never set" from "set to the default"; the private
    # module values are the state a restore must bring back.
    tracking, registry = tracking_utils._tracking_uri, registry_utils._registry_uri
    variables = {name: os.environ.get(name) for name in _STORE_VARIABLES}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        # Through the setter, which also resets MLflow's tracer; it takes None ("unset") at run
        # time although its hint says otherwise.
        mlflow.set_tracking_uri(tracking)  # type: ignore[arg-type]
        registry_utils._registry_uri = registry
        for name, value in variables.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    """Flatten nested mappings into dotted keys (``gates.min_auc``)."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(f"{prefix}.{key}" if prefix else str(key), item))
        return flat
    return {prefix: value}


def _evaluation_metrics(prefix: str, evaluation: Evaluation) -> dict[str, float]:
    metrics: dict[str, float] = {}
    overall = evaluation.metrics.to_dict()
    for key in ("auc", "log_loss", "brier", "ece", "positive_rate", "mean_prediction"):
        if overall[key] is not None:
            metrics[f"{prefix}{key}"] = float(overall[key])
    for segment, values in evaluation.slices.items():
        for key in ("auc", "log_loss", "brier", "ece"):
            value = getattr(values, key)
            if value is not None:
                metrics[f"{prefix}slice.{segment}.{key}"] = float(value)
    metrics[f"{prefix}latency_ms_per_row"] = evaluation.latency_ms_per_row
    metrics[f"{prefix}latency_ms_single_row"] = evaluation.latency_ms_single_row
    metrics[f"{prefix}size_bytes"] = float(evaluation.size_bytes)
    metrics[f"{prefix}behaviour_passed"] = float(all(b.passed for b in evaluation.behaviour))
    return metrics


def reference_sample(result: PipelineResult, rows: int, seed: int) -> pd.DataFrame:
    """Return ``rows`` training rows (features, label) plus the model's ``prediction``.

    The drift monitor compares live traffic and live predictions against this sample.

    Raises:
        TrackingError: The run stopped before a model was trained.
    """
    if result.model is None or result.train is None:
        raise TrackingError("no reference sample: the run stopped before training")
    train = result.train
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(train), size=min(rows, len(train)), replace=False))
    sample = train.iloc[picked][[*FEATURE_NAMES, TARGET]].reset_index(drop=True)
    scores = result.model.predict_proba(sample[list(FEATURE_NAMES)])[:, 1]
    return sample.assign(**{PREDICTION_COLUMN: np.asarray(scores, dtype=float)})


def log_training_run(
    result: PipelineResult,
    cfg: PipelineConfig,
    *,
    input_example_rows: int = 5,
    log_rejected_model: bool = True,
) -> str | None:
    """Log ``result`` into the active MLflow run and return the model URI.

    Logs: parameters (the flattened config), tags (dataset digest, code version, scenario,
    outcome), metrics (candidate, champion and per-slice, stage timings), the validation report,
    evaluations and gate verdict as JSON artifacts, the reference sample as
    ``reference/reference.parquet``, and the model (skops) via :func:`pipeline.model_io.log_model`
    with whether the compiled inference path scores the holdout like it
    (:func:`pipeline.compiled.check_compiled`; tags ``mlplat.compiled`` and its reason, on the run
    and the logged model).

    Args:
        result: The output of :func:`pipeline.pipeline.run`.
        cfg: The configuration the run used.
        input_example_rows: Feature rows stored as the model's input example.
        log_rejected_model: Also log a model the gate rejected, for investigation (registering
            it is another matter: that happens only when ``result.passed``).

    Returns:
        The model URI, or ``None`` when no model was logged (validation failed, or the model was
        rejected and ``log_rejected_model`` is off).

    Raises:
        TrackingError: No MLflow run is active.
    """
    import mlflow

    if mlflow.active_run() is None:
        raise TrackingError("log_training_run needs an active run: call mlflow.start_run() first")
    mlflow.log_params({key: str(value) for key, value in flatten("", cfg.model_dump()).items()})
    _log_tags_and_input(result)
    _log_reports_and_metrics(result)
    if result.model is None or result.train is None:
        return None
    if not result.passed and not log_rejected_model:
        return None
    reference = reference_sample(result, cfg.reference_sample_rows, cfg.data.seed)
    with tempfile.TemporaryDirectory(prefix="mlplat-reference-") as tmp:
        path = Path(tmp) / Path(REFERENCE_ARTIFACT).name
        reference.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))
    example = result.train[list(FEATURE_NAMES)].dropna().head(input_example_rows)
    check = check_compiled(result.model, _check_rows(result, example))
    uri = log_model(result.model, example.reset_index(drop=True), compile_check=check)
    mlflow.set_tags({TAG_PREFIX + "model_uri": uri, **check.tags()})
    return uri


def _check_rows(result: PipelineResult, example: pd.DataFrame) -> pd.DataFrame:
    """The rows the compiled path is checked on: the holdout's features, else the example."""
    if result.holdout is None or result.holdout.empty:
        return example
    return result.holdout[list(FEATURE_NAMES)]


def _log_tags_and_input(result: PipelineResult) -> None:
    """Tag the run with its outcome, and record the validated rows as its training input."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    gate = (
        "not-run" if result.verdict is None else ("passed" if result.verdict.passed else "failed")
    )
    tags = {
        "code_version": code_version(),
        "scenario": result.scenario or "none",
        "magnitude": "" if result.magnitude is None else f"{result.magnitude:g}",
        "validation": "passed" if result.validation.success else "failed",
        "gate": gate,
        "stopped_at": result.stopped_at or "",
        "passed": str(result.passed).lower(),
    }
    if result.data is not None:
        digest = dataset_digest(result.data)
        tags["dataset_digest"] = digest
        mlflow.log_input(
            from_pandas(result.data, name="credit-default", targets=TARGET, digest=digest[:16]),
            context="training",
        )
    mlflow.set_tags({TAG_PREFIX + key: value for key, value in tags.items()})


def _log_reports_and_metrics(result: PipelineResult) -> None:
    """Log the validation report, the evaluations and the verdict, and every number in them."""
    import mlflow

    mlflow.log_dict(result.validation.to_dict(), "validation/report.json")
    mlflow.log_text(result.validation.describe() + "\n", "validation/report.txt")
    metrics = {f"time.{stage}_s": seconds for stage, seconds in result.timings.items()}
    if result.evaluation is not None:
        metrics.update(_evaluation_metrics("", result.evaluation))
        mlflow.log_dict(result.evaluation.to_dict(), "evaluation/candidate.json")
    if result.champion_evaluation is not None:
        metrics.update(_evaluation_metrics("champion.", result.champion_evaluation))
        mlflow.log_dict(result.champion_evaluation.to_dict(), "evaluation/champion.json")
    if result.verdict is not None:
        metrics["gate.passed"] = float(result.verdict.passed)
        mlflow.log_dict(result.verdict.to_dict(), "gate/verdict.json")
        mlflow.log_text("\n".join(result.verdict.reasons()) + "\n", "gate/reasons.txt")
    mlflow.log_metrics(metrics)
