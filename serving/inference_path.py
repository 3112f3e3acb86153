"""Which path a served model's predictions take: compiled, or the reference pipeline.

The compiled path (:mod:`pipeline.compiled`) replays a fitted pipeline's preprocessing in numpy,
at about a fifth of the reference pipeline's cost per call, with the same probabilities.
Registration checks it on the holdout and records the verdict with the model
(:func:`pipeline.model_io.read_compile_check`). At load, :func:`choose_path` serves a version
through it only when

* compiled inference is on (``MLPLAT_SERVING_COMPILED_INFERENCE``),
* the registration check passed (a registry version that records none, because it was logged
  before the check existed, stays on the reference path), and
* the model, compiled again in this process, still scores :func:`check_rows` within
  :data:`pipeline.compiled.TOLERANCE` of the reference (a different library version here than
  at registration could change either side).

A model from a file or a test source has no registration record: the load check alone decides.
Whatever the outcome, the reference pipeline stays loaded (the local model cache stores it) and
``/model`` shows per variant the path and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

import pandas as pd

from features import FEATURES, CategoricalFeature
from pipeline.compiled import CompileCheck, CompiledModel, check_compiled, compile_pipeline
from serving.batcher import Predictor, RowValues, build_frame
from serving.schemas import EXAMPLE_RECORD

InferencePath = Literal["compiled", "reference"]

COMPILED: Final = "compiled"
REFERENCE: Final = "reference"

TURNED_OFF = "compiled inference is turned off (MLPLAT_SERVING_COMPILED_INFERENCE=false)"
NOT_RECORDED = (
    "the version records no compile check (mlplat.compiled): logged before registration "
    "checked the compiled path"
)
UNSEEN_CATEGORY = "\x00unseen"
"""A category value no training set holds, to check the unknown-category handling."""


@dataclass(frozen=True)
class Recorded:
    """A loaded model with the compile check its registration recorded (``None``: none).

    What :class:`serving.deployment.RegistryModelSource` loads; a ``Predictor`` itself, so any
    model source may return a bare model instead.
    """

    model: Predictor
    check: CompileCheck | None

    def predict_proba(self, X: Any) -> Any:  # noqa: N803 - scikit-learn's name
        """The model's probabilities (the reference path)."""
        return self.model.predict_proba(X)


@dataclass(frozen=True)
class ServedModel:
    """A model as the service scores with it: the reference, and the compiled path if chosen.

    Attributes:
        loaded: What the model source loaded (a :class:`Recorded` model or a bare one).
        compiled: The compiled path, when it serves.
        reason: Why this path serves, in words (shown in ``/model``).
    """

    loaded: Predictor
    compiled: CompiledModel | None
    reason: str

    @property
    def reference(self) -> Predictor:
        """The fitted model as loaded: the reference path, and what the cache stores."""
        return self.loaded.model if isinstance(self.loaded, Recorded) else self.loaded

    @property
    def path(self) -> InferencePath:
        """Which path scores the requests."""
        return COMPILED if self.compiled is not None else REFERENCE

    def predict_proba(self, X: Any) -> Any:  # noqa: N803 - scikit-learn's name
        """Class probabilities through the chosen path."""
        if self.compiled is not None:
            return self.compiled.predict_proba(X)
        return self.reference.predict_proba(X)


def check_rows() -> list[RowValues]:
    """The rows a model is checked on at load.

    The contract's example record, then that record with each nullable feature missing and each
    categorical feature an unseen value: missing values and unknown categories are where a
    replayed preprocessing could part from the reference (indicator columns, the all-zero
    one-hot row), so each is scored at least once.
    """
    base = [EXAMPLE_RECORD[f.name] for f in FEATURES]
    rows: list[RowValues] = [base]
    for i, feature in enumerate(FEATURES):
        if feature.nullable:
            rows.append([*base[:i], None, *base[i + 1 :]])
        if isinstance(feature, CategoricalFeature):
            rows.append([*base[:i], UNSEEN_CATEGORY, *base[i + 1 :]])
    return rows


def _check_frame() -> pd.DataFrame:
    return build_frame(check_rows())


def choose_path(loaded: Predictor, *, enabled: bool) -> ServedModel:
    """Decide the path ``loaded`` serves through, checking the compiled one on :func:`check_rows`.

    Args:
        loaded: What a model source loaded: a :class:`Recorded` model (registry), a bare model
            (a file, a test), or a :class:`ServedModel` already decided (returned as is).
        enabled: Whether compiled inference is on.
    """
    if isinstance(loaded, ServedModel):
        return loaded
    recorded = isinstance(loaded, Recorded)
    model, record = (loaded.model, loaded.check) if isinstance(loaded, Recorded) else (loaded, None)
    if not enabled:
        return ServedModel(loaded, None, TURNED_OFF)
    if recorded and record is None:
        return ServedModel(loaded, None, NOT_RECORDED)
    if record is not None and not record.compiled:
        return ServedModel(loaded, None, f"refused at registration: {record.reason}")
    try:
        check = check_compiled(model, _check_frame())
    except Exception as exc:  # the check rows themselves cannot be scored: stay on the reference
        return ServedModel(loaded, None, f"refused on load: check failed: {exc!r}"[:500])
    if not check.compiled:
        return ServedModel(loaded, None, f"refused on load: {check.reason}")
    registered = "no registration record" if record is None else f"registration: {record.reason}"
    reason = f"checked on load: {check.reason}; {registered}"
    return ServedModel(loaded, compile_pipeline(model), reason)


def path_of(predictor: Predictor) -> tuple[InferencePath, str]:
    """The path ``predictor`` serves through and why (a model not chosen for: the reference)."""
    if isinstance(predictor, ServedModel):
        return predictor.path, predictor.reason
    return REFERENCE, "served as loaded"


def as_loaded(predictor: Predictor) -> Predictor:
    """What the model source loaded behind ``predictor`` (what the cache stores and reloads)."""
    return predictor.loaded if isinstance(predictor, ServedModel) else predictor
