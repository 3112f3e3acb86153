from __future__ import annotations

import fractions
from importlib.metadata import version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.pipeline import Pipeline

from features import FEATURE_NAMES
from pipeline.model_io import (
    PIP_REQUIREMENTS,
    SKOPS_TRUSTED_TYPES,
    ModelFormatError,
    load_model,
    load_skops,
    log_model,
)

# A local SQLite MLflow store takes seconds to create (schema migrations): "slow" as well.
pytestmark = [pytest.mark.unit, pytest.mark.slow]


@pytest.fixture(scope="module")
def logged(
    small_model: Pipeline,
    small_split: tuple[pd.DataFrame, pd.DataFrame],
    mlflow_experiment: str,
) -> str:
    example = small_split[0][list(FEATURE_NAMES)].dropna().head(3)
    with mlflow.start_run(experiment_id=mlflow_experiment):
        return log_model(small_model, example)


def test_requirements_pin_the_installed_versions() -> None:
    """The model's pip requirements pin exactly the installed versions of its libraries."""
    pinned = dict(line.split("==") for line in PIP_REQUIREMENTS)
    assert {"scikit-learn", "skops", "pandas", "numpy", "mlflow"} <= set(pinned)
    assert all(version(name) == pinned[name] for name in pinned)


def test_the_trusted_types_are_exactly_what_the_model_needs(small_model: Pipeline) -> None:
    """The skops trusted types are exactly the types the dumped model needs."""
    needed = skops.io.get_untrusted_types(data=skops.io.dumps(small_model))
    assert sorted(needed) == sorted(SKOPS_TRUSTED_TYPES)


def test_a_logged_model_loads_back_and_scores_identically(
    logged: str, small_model: Pipeline, small_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """A logged model loads back as a Pipeline and scores identically."""
    holdout = small_split[1]
    loaded = load_model(logged)
    assert isinstance(loaded, Pipeline)
    np.testing.assert_array_equal(loaded.predict_proba(holdout), small_model.predict_proba(holdout))


def test_the_model_is_stored_as_skops_with_signature_and_pinned_requirements(
    logged: str, tmp_path: Path
) -> None:
    """A model is logged as skops (no pickle), with signature, requirements and input example."""
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=logged, dst_path=str(tmp_path)))
    files = {p.name for p in local.iterdir()}
    assert "model.skops" in files
    assert not any(name.endswith((".pkl", ".pickle")) for name in files)
    info = mlflow.models.get_model_info(logged)
    assert info.flavors["sklearn"]["serialization_format"] == "skops"
    assert info.flavors["python_function"]["predict_fn"] == "predict_proba"
    inputs = info.signature.inputs.input_names()
    assert inputs == list(FEATURE_NAMES)
    requirements = (local / "requirements.txt").read_text().split()
    assert requirements == list(PIP_REQUIREMENTS)
    assert (local / "input_example.json").exists()


def test_a_pickled_model_is_refused_not_loaded(
    small_model: Pipeline, mlflow_experiment: str
) -> None:
    """A model logged as pickle is refused with ModelFormatError instead of being loaded."""
    with mlflow.start_run(experiment_id=mlflow_experiment):
        info = mlflow.sklearn.log_model(
            small_model,
            name="pickled",
            serialization_format="pickle",
            pip_requirements=list(PIP_REQUIREMENTS),
        )
    with pytest.raises(ModelFormatError, match="serialized as 'pickle'; only 'skops'"):
        load_model(info.model_uri)


def test_a_skops_file_with_unexpected_types_is_refused_by_name(tmp_path: Path) -> None:
    """A skops file holding an untrusted type is refused, naming the type."""
    path = tmp_path / "model.skops"
    skops.io.dump({"weights": fractions.Fraction(1, 3)}, path)
    with pytest.raises(ModelFormatError, match=r"untrusted types: fractions\.Fraction"):
        load_skops(path)
