"""Save and load the model through MLflow in the skops format — never pickle.

A pickle runs arbitrary code when loaded; skops loads only the types it is told to trust. MLflow
stores that allow-list inside the model's own ``MLmodel`` file, so a tampered artifact could
widen it. :func:`load_model` therefore ignores the stored list and trusts exactly
:data:`SKOPS_TRUSTED_TYPES`, the types this pipeline's model is made of, and refuses anything
else by name.

MLflow is imported lazily: it takes seconds, and most users of :mod:`pipeline` never log.
"""

from __future__ import annotations

import tempfile
import warnings
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import skops.io
from sklearn.pipeline import Pipeline

from pipeline.compiled import CompileCheck, check_compiled

SKOPS_TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)
"""Types outside skops' default allow-list that the pipeline's model contains, as reported by
``skops.io.get_untrusted_types`` (a unit test keeps this exact)."""


def _pinned(distribution: str) -> str:
    return f"{distribution}=={version(distribution)}"


PIP_REQUIREMENTS: tuple[str, ...] = tuple(
    _pinned(d) for d in ("mlflow", "scikit-learn", "skops", "pandas", "numpy", "scipy")
)
"""Exact versions the model was built with. Explicit, so MLflow skips its slow inference."""


class ModelFormatError(ValueError):
    """A model artifact is not a skops sklearn model of the expected types."""


def log_model(
    model: Pipeline,
    input_example: pd.DataFrame,
    name: str = "model",
    compile_check: CompileCheck | None = None,
) -> str:
    """Log ``model`` into the active MLflow run, in the skops format.

    The signature is inferred from ``input_example`` and the model's ``predict_proba`` output,
    and pyfunc serves ``predict_proba``: callers of a generic MLflow server get probabilities,
    not bare 0/1 decisions.

    Whether the compiled inference path (:mod:`pipeline.compiled`) may serve the model is
    recorded as the two tags :meth:`~pipeline.compiled.CompileCheck.tags` names, on the logged
    model and, identically, in its ``MLmodel`` metadata, so the verdict travels with the files
    a server downloads (:func:`read_compile_check`). The compiled model itself is not stored:
    it is a pure function of the fitted parameters, rebuilt and checked again at load.

    Args:
        model: The fitted pipeline.
        input_example: A few feature rows (no label); stored with the model.
        name: Name of the logged model.
        compile_check: The compiled path's check on the holdout
            (:func:`pipeline.compiled.check_compiled`); default: checked on ``input_example``.

    Returns:
        The model URI (``models:/<model_id>``).
    """
    import mlflow.sklearn
    from mlflow.models import infer_signature

    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold missing values: our requests are
        # validated against the feature contract (serving/schemas.py), not this signature, and
        # a nullable feature is declared there. The hint only buried the logs, once per model.
        warnings.filterwarnings("ignore", message=r"\s*Hint: Inferred schema contains integer")
        signature = infer_signature(input_example, model.predict_proba(input_example))
        check = compile_check or check_compiled(model, input_example)
        info = mlflow.sklearn.log_model(
            model,
            name=name,
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
            signature=signature,
            input_example=input_example,
            pip_requirements=list(PIP_REQUIREMENTS),
            pyfunc_predict_fn="predict_proba",
            metadata=check.tags(),
            tags=check.tags(),
        )
        return str(info.model_uri)


def read_compile_check(local: Path) -> CompileCheck | None:
    """The compile check recorded in a downloaded model's ``MLmodel``, if it records one."""
    from mlflow.models import Model

    return CompileCheck.from_tags(Model.load(str(local)).metadata)


def load_skops(path: Path) -> Pipeline:
    """Load a skops file, trusting exactly :data:`SKOPS_TRUSTED_TYPES`.

    Raises:
        ModelFormatError: The file holds other untrusted types (they are named).
    """
    untrusted = sorted(set(skops.io.get_untrusted_types(file=path)) - set(SKOPS_TRUSTED_TYPES))
    if untrusted:
        raise ModelFormatError(f"{path.name} holds untrusted types: {', '.join(untrusted)}")
    return skops.io.load(path, trusted=list(SKOPS_TRUSTED_TYPES))


def load_model(uri: str) -> Pipeline:
    """Load a model logged by :func:`log_model` from any MLflow model URI.

    Args:
        uri: ``models:/<model_id>``, ``models:/<name>/<version>``, ``runs:/<run_id>/model``...

    Returns:
        The fitted scikit-learn pipeline.

    Raises:
        ModelFormatError: The model is not an sklearn model saved with skops (a pickle is
            refused, not loaded), or it holds types outside :data:`SKOPS_TRUSTED_TYPES`.
    """
    import mlflow.artifacts
    from mlflow.models import Model

    with tempfile.TemporaryDirectory(prefix="mlplat-model-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        flavors = Model.load(str(local)).flavors
        sklearn_flavor = flavors.get("sklearn")
        if sklearn_flavor is None:
            raise ModelFormatError(f"{uri} has no sklearn flavor (flavors: {sorted(flavors)})")
        fmt = sklearn_flavor.get("serialization_format")
        if fmt != "skops":
            raise ModelFormatError(f"{uri} is serialized as {fmt!r}; only 'skops' is loaded")
        return load_skops(local / sklearn_flavor["pickled_model"])
