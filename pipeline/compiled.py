"""A compiled inference path: the fitted preprocessing as plain numpy, the classifier as fitted.

A scikit-learn ``Pipeline`` scores one row in ~5 ms on this project's model, ~4 of them in the
``ColumnTransformer`` walking a DataFrame column by column — a per-call cost, the same for 1 row
or 32. :func:`compile_pipeline` reads the fitted parameters of the steps it knows (median/mean/
constant imputation with or without missing indicators, standard scaling, one-hot encoding that
ignores unknown categories) and replays their arithmetic on numpy arrays; the classifier is called
on the result as it was fitted. A pipeline with any other step is refused with the reason
(:class:`NotCompilableError`), and :func:`max_difference` measures, on real rows, how far the
compiled scores are from the reference path's — registration keeps the compiled path only when
that is under a stated tolerance (:data:`TOLERANCE`; :func:`check_compiled` does both and never
raises), and the reference path stays the fallback.

Why not ONNX: skl2onnx 1.20 cannot convert this pipeline — its scaler converter rejects the
imputer's indicator columns, and its ``HistGradientBoostingClassifier`` converter fails on
scikit-learn 1.9 (a boolean where ONNX wants ints; tried 2026-12-05).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from interfaces.tags import COMPILED_NO, COMPILED_REASON_TAG, COMPILED_TAG, COMPILED_YES

__all__ = [
    "TOLERANCE",
    "CompileCheck",
    "CompiledModel",
    "NotCompilableError",
    "check_compiled",
    "compile_pipeline",
    "max_difference",
]

Matrix = npt.NDArray[np.float64]

TOLERANCE = 1e-9
"""Largest absolute difference in any class probability the compiled path may show against the
reference pipeline on the rows it is checked on. The compiled path does the same float64
arithmetic in the same order, and measures 0 (at most ~1e-16, one rounding) on the platform's
model; 1e-9 leaves room for a BLAS or numpy that reassociates a sum, and stays a million times
below the smallest change a decision threshold or a reported metric (six decimals) can notice."""


class NotCompilableError(ValueError):
    """The pipeline has a step the compiler does not know; the message names it."""


class _Classifier(Protocol):
    def predict_proba(self, rows: Any) -> Any: ...


def _floats(column: pd.Series) -> Matrix:
    """A column as float64 with NaN for missing values, at the cheapest path its dtype allows.

    Column by column, and ``na_value`` only where the dtype needs it (object, pandas' nullable
    types): selecting the block as a DataFrame, or passing ``na_value`` to a float column, costs
    several times the arithmetic on one row (~250 µs against ~30 µs for ten columns).
    """
    if column.dtype.kind in "fiub":
        values: Matrix = column.to_numpy(dtype=np.float64)
    else:
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    return values


@dataclass(frozen=True)
class _NumericBlock:
    columns: tuple[str, ...]
    fill: Matrix  # per column: the value a missing entry takes
    indicators: tuple[int, ...]  # positions (in ``columns``) that get a missing indicator
    mean: Matrix | None  # over imputed columns then indicators; None = no scaling
    scale: Matrix | None

    def transform(self, frame: pd.DataFrame) -> Matrix:
        values = np.column_stack([_floats(frame[c]) for c in self.columns])
        missing = np.isnan(values)
        out = np.where(missing, self.fill, values)
        if self.indicators:
            out = np.hstack([out, missing[:, list(self.indicators)].astype(np.float64)])
        if self.mean is not None and self.scale is not None:
            out = (out - self.mean) / self.scale
        return out


@dataclass(frozen=True)
class _OneHotBlock:
    columns: tuple[str, ...]
    lookups: tuple[dict[str, int], ...]  # per column: category -> output offset
    width: int

    def transform(self, frame: pd.DataFrame) -> Matrix:
        out = np.zeros((len(frame), self.width))
        rows = np.arange(len(frame))
        for column, lookup in zip(self.columns, self.lookups, strict=True):
            offsets = np.fromiter(
                (lookup.get(value, -1) for value in frame[column].to_numpy()),
                dtype=np.int64, count=len(frame),
            )  # fmt: skip
            known = offsets >= 0
            out[rows[known], offsets[known]] = 1.0  # an unknown category stays all zeros
        return out


TREE_CELLS = 4096
"""Largest rows x trees a call walks in numpy (:class:`_Trees`); larger calls go to the
classifier's own compiled loop. One walk costs a few numpy operations per tree level for all
rows and trees at once, where scikit-learn pays ~6 µs per tree per call: on the benchmark model
(92 trees, depth 11) 1 row takes 0.07 ms against 0.58, 32 rows 0.41 against 0.62, and the two
cross near 60 rows (~5,500 cells); 1,000 rows take 9.8 ms against 4.6."""

Indices = npt.NDArray[np.intp]


@dataclass(frozen=True)
class _Trees:
    """A binary ``HistGradientBoostingClassifier``'s trees as flat arrays, walked level by level.

    Every node of every tree is one entry; a leaf points at itself, so walking every row down
    every tree for ``depth`` levels lands each on its leaf. The leaf values are summed in tree
    order after the baseline, as scikit-learn sums them, and turned into a probability by the
    same logistic function: the result is identical, not merely close.
    """

    roots: Indices
    feature: Indices
    threshold: Matrix
    missing_left: npt.NDArray[np.bool_]
    left: Indices
    right: Indices
    value: Matrix
    depth: int
    baseline: float

    @classmethod
    def of(cls, classifier: Any) -> _Trees | None:
        """The classifier's trees, or ``None`` when it is not a model this walk reproduces."""
        if not isinstance(classifier, HistGradientBoostingClassifier):
            return None
        try:
            if classifier.n_trees_per_iteration_ != 1 or type(classifier._loss).__name__ != (
                "HalfBinomialLoss"
            ):
                return None
            trees = [iteration[0].nodes for iteration in classifier._predictors]
            baseline = float(np.asarray(classifier._baseline_prediction).reshape(-1)[0])
        except (AttributeError, IndexError, TypeError):  # another scikit-learn's internals
            return None
        nodes = np.concatenate(trees)
        if not len(trees) or nodes["is_categorical"].any():
            return None
        sizes = [len(tree) for tree in trees]
        roots = np.cumsum([0, *sizes[:-1]]).astype(np.intp)
        offset = np.repeat(roots, sizes)
        leaf = nodes["is_leaf"].astype(bool)
        here = np.arange(len(nodes), dtype=np.intp)
        return cls(
            roots=roots,
            feature=np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp),
            threshold=nodes["num_threshold"].astype(np.float64),
            missing_left=nodes["missing_go_to_left"].astype(bool),
            left=np.where(leaf, here, nodes["left"].astype(np.intp) + offset),
            right=np.where(leaf, here, nodes["right"].astype(np.intp) + offset),
            value=nodes["value"].astype(np.float64),
            depth=int(nodes["depth"].max()),
            baseline=baseline,
        )

    @property
    def count(self) -> int:
        """Number of trees."""
        return len(self.roots)

    def predict_proba(self, features: Matrix) -> Matrix:
        """Class probabilities of ``features`` (the classifier's input), as the classifier's."""
        n = len(features)
        node = np.broadcast_to(self.roots, (n, self.count))
        rows = np.arange(n)[:, None]
        for _ in range(self.depth):
            x = features[rows, self.feature[node]]
            go_left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
            node = np.where(go_left, self.left[node], self.right[node])
        leaves = np.concatenate([np.full((n, 1), self.baseline), self.value[node]], axis=1)
        positive = expit(np.cumsum(leaves, axis=1)[:, -1])  # cumsum: scikit-learn's order
        return np.column_stack([1.0 - positive, positive])


@dataclass(frozen=True)
class CompiledModel:
    """``predict_proba`` of a fitted pipeline, with its preprocessing replayed in numpy.

    Attributes:
        blocks: The column blocks, in the order the fitted ColumnTransformer concatenates them.
        classifier: The pipeline's fitted final estimator.
        trees: The classifier's trees as arrays, for calls of at most :data:`TREE_CELLS`
            rows x trees; ``None`` when the classifier is not one :class:`_Trees` reproduces.
    """

    blocks: tuple[_NumericBlock | _OneHotBlock, ...]
    classifier: _Classifier
    trees: _Trees | None = None

    @property
    def small_call_rows(self) -> int | None:
        """Most rows a call scores through :attr:`trees`; ``None``: always the classifier."""
        return None if self.trees is None else max(1, TREE_CELLS // self.trees.count)

    def transform(self, frame: pd.DataFrame) -> Matrix:
        """The classifier's input for ``frame`` (same values as the fitted ColumnTransformer's)."""
        return np.hstack([block.transform(frame) for block in self.blocks])

    def predict_proba(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Class probabilities for ``frame``'s rows, as the reference pipeline gives them."""
        features = self.transform(frame)
        limit = self.small_call_rows
        if self.trees is not None and limit is not None and len(features) <= limit:
            return self.trees.predict_proba(features)
        return np.asarray(self.classifier.predict_proba(features), dtype=np.float64)


def _numeric(name: str, steps: Sequence[Any], columns: Sequence[str]) -> _NumericBlock:
    imputer = next((s for s in steps if isinstance(s, SimpleImputer)), None)
    scaler = next((s for s in steps if isinstance(s, StandardScaler)), None)
    known = [s for s in (imputer, scaler) if s is not None]
    if len(known) != len(steps) or (imputer and scaler and steps.index(imputer) != 0):
        kinds = ", ".join(type(s).__name__ for s in steps)
        raise NotCompilableError(
            f"block {name!r}: steps {kinds} (known: SimpleImputer, StandardScaler)"
        )
    indicators: tuple[int, ...] = ()
    if imputer is None:
        fill = np.full(len(columns), np.nan)
    else:
        if imputer.strategy not in ("median", "mean", "constant"):
            raise NotCompilableError(f"block {name!r}: imputation strategy {imputer.strategy!r}")
        fill = np.asarray(imputer.statistics_, dtype=np.float64)
        if np.isnan(fill).any():
            raise NotCompilableError(f"block {name!r}: a column was empty in training (dropped)")
        indicator = imputer.indicator_
        indicators = tuple(int(i) for i in indicator.features_) if indicator is not None else ()
    mean = scale = None
    if scaler is not None:
        mean = np.asarray(scaler.mean_ if scaler.with_mean else 0.0, dtype=np.float64)
        scale = np.asarray(scaler.scale_ if scaler.with_std else 1.0, dtype=np.float64)
    return _NumericBlock(tuple(columns), fill, indicators, mean, scale)


def _one_hot(name: str, encoder: OneHotEncoder, columns: Sequence[str]) -> _OneHotBlock:
    if encoder.handle_unknown != "ignore" or encoder.drop_idx_ is not None:
        raise NotCompilableError(
            f"block {name!r}: one-hot with drop or without handle_unknown=ignore"
        )
    if getattr(encoder, "_infrequent_enabled", False):
        raise NotCompilableError(f"block {name!r}: one-hot with infrequent categories")
    lookups, offset = [], 0
    for categories in encoder.categories_:
        lookups.append({str(c): offset + i for i, c in enumerate(categories)})
        offset += len(categories)
    return _OneHotBlock(tuple(columns), tuple(lookups), offset)


def compile_pipeline(model: Pipeline) -> CompiledModel:
    """Compile a fitted ``Pipeline(ColumnTransformer, classifier)``.

    Raises:
        NotCompilableError: The pipeline has another shape, a step the compiler does not know, or a
            block whose output columns are not in the order they are computed here.
    """
    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        raise NotCompilableError("not a two-step Pipeline (preprocessing, classifier)")
    pre, classifier = model.steps[0][1], model.steps[1][1]
    if not isinstance(pre, ColumnTransformer) or not hasattr(classifier, "predict_proba"):
        raise NotCompilableError(
            "the first step is not a ColumnTransformer or the last cannot score"
        )
    blocks: list[_NumericBlock | _OneHotBlock] = []
    for name, transformer, columns in pre.transformers_:
        if name == "remainder":
            if transformer != "drop":
                raise NotCompilableError("the remainder columns are passed through, not dropped")
            continue
        if len(columns) == 0:
            # A block with no columns (no categorical feature in the contract, say) is never
            # fitted and adds no output column; scikit-learn skips it too.
            continue
        if isinstance(transformer, OneHotEncoder):
            blocks.append(_one_hot(name, transformer, columns))
        elif isinstance(transformer, Pipeline):
            blocks.append(_numeric(name, [s for _, s in transformer.steps], columns))
        elif isinstance(transformer, SimpleImputer | StandardScaler):
            blocks.append(_numeric(name, [transformer], columns))
        else:
            raise NotCompilableError(
                f"block {name!r}: {type(transformer).__name__} is not supported"
            )
    return CompiledModel(tuple(blocks), classifier, _Trees.of(classifier))


@dataclass(frozen=True)
class CompileCheck:
    """Whether a fitted pipeline may be served through the compiled path, and why.

    Attributes:
        compiled: True when it compiled and scored the checked rows within :data:`TOLERANCE`.
        reason: Why it was refused, or the measured difference and the tolerance.
    """

    compiled: bool
    reason: str

    def tags(self) -> dict[str, str]:
        """The check as MLflow tags (:data:`interfaces.tags.COMPILED_TAG` and its reason)."""
        return {
            COMPILED_TAG: COMPILED_YES if self.compiled else COMPILED_NO,
            COMPILED_REASON_TAG: self.reason[:_MAX_TAG_CHARS],
        }

    @classmethod
    def from_tags(cls, tags: Mapping[str, Any] | None) -> CompileCheck | None:
        """The check recorded in ``tags``, or ``None`` when they record none."""
        value = (tags or {}).get(COMPILED_TAG)
        if value not in (COMPILED_YES, COMPILED_NO):
            return None
        return cls(value == COMPILED_YES, str((tags or {}).get(COMPILED_REASON_TAG, "")))


_MAX_TAG_CHARS = 5000  # MLflow's limit on a tag value (registry/versions.py checks the same)


def check_compiled(model: Any, rows: pd.DataFrame, tolerance: float = TOLERANCE) -> CompileCheck:
    """Compile ``model`` and compare both paths on ``rows``; never raises for a model it refuses.

    Args:
        model: The fitted pipeline (anything else is refused with the reason).
        rows: Feature rows to score both ways: the holdout at registration.
        tolerance: Largest absolute probability difference accepted.
    """
    try:
        compiled = compile_pipeline(model)
        difference = max_difference(model, compiled, rows)
    except NotCompilableError as exc:
        return CompileCheck(False, f"not compilable: {exc}")
    except Exception as exc:  # a compiled path that cannot score real rows is refused, not fatal
        return CompileCheck(False, f"compiled path failed on {len(rows)} rows: {exc!r}"[:500])
    measured = f"max |difference| {difference:.3g} on {len(rows)} rows (tolerance {tolerance:g})"
    if not difference <= tolerance:  # NaN is refused too
        return CompileCheck(False, f"differs from the reference: {measured}")
    return CompileCheck(True, measured)


def max_difference(model: Pipeline, compiled: CompiledModel, rows: pd.DataFrame) -> float:
    """The largest absolute difference between the two paths' probabilities on ``rows``."""
    if len(rows) == 0:
        return 0.0
    reference = np.asarray(model.predict_proba(rows), dtype=np.float64)
    scored = [compiled.predict_proba(rows)]
    step = compiled.small_call_rows
    if step is not None and step < len(rows):
        # Small calls take the other route (the trees as arrays): check it on every row too.
        pieces = [
            compiled.predict_proba(rows.iloc[i : i + step]) for i in range(0, len(rows), step)
        ]
        scored.append(np.vstack(pieces))
    return float(max(np.max(np.abs(reference - s)) for s in scored))
