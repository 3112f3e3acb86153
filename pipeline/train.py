"""Training steps: split the data, build the scikit-learn pipeline, fit it."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from features import CATEGORICAL_FEATURES, FEATURE_NAMES, NUMERIC_FEATURES, TARGET
from pipeline.config import ModelConfig
from pipeline.threads import limit_threads


class Classifier(Protocol):
    """Anything that scores rows like a fitted scikit-learn classifier (candidate or champion)."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803 (scikit-learn's name)
        """Return an ``(n, 2)`` array of class probabilities."""
        ...


class TrainingError(ValueError):
    """The training data cannot produce a model (e.g. a single class)."""


def build_model(cfg: ModelConfig) -> Pipeline:
    """Return an unfitted pipeline: preprocessing of the contract features, then the classifier.

    Numeric inputs are median-imputed with a missing-value indicator (a missing value can carry
    risk of its own) and standardised; categoricals are one-hot encoded, and a category never seen
    in training encodes as all zeros instead of failing the request. Columns outside the contract
    (``customer_id``, the label) are dropped, so callers may pass whole rows.

    Args:
        cfg: Classifier hyper-parameters.

    Returns:
        A scikit-learn ``Pipeline`` with steps ``preprocess`` and ``classifier``.
    """
    numeric = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", add_indicator=True)),
            ("scale", StandardScaler()),
        ]
    )
    categorical = OneHotEncoder(
        categories=[list(f.categories) for f in CATEGORICAL_FEATURES],
        handle_unknown="ignore",
        sparse_output=False,
    )
    preprocess = ColumnTransformer(
        [
            ("numeric", numeric, [f.name for f in NUMERIC_FEATURES]),
            ("categorical", categorical, [f.name for f in CATEGORICAL_FEATURES]),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )
    classifier = HistGradientBoostingClassifier(
        learning_rate=cfg.learning_rate,
        max_iter=cfg.max_iter,
        max_leaf_nodes=cfg.max_leaf_nodes,
        min_samples_leaf=cfg.min_samples_leaf,
        l2_regularization=cfg.l2_regularization,
        early_stopping=cfg.early_stopping,
        validation_fraction=cfg.validation_fraction,
        n_iter_no_change=cfg.n_iter_no_change,
        random_state=cfg.random_state,
    )
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


def split(
    df: pd.DataFrame, holdout_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows into training and holdout sets, stratified by the label.

    Args:
        df: Labelled rows; not modified.
        holdout_fraction: Share of rows held out, in (0, 1).
        seed: Seed of the shuffle; the same inputs give the same split.

    Returns:
        ``(train, holdout)``, each with a fresh 0..n-1 index.

    Raises:
        TrainingError: The fraction is out of range, or a class has too few rows to stratify.
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise TrainingError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    counts = df[TARGET].value_counts()
    if len(counts) < 2 or int(counts.min()) < 2:
        raise TrainingError(
            f"cannot stratify on {TARGET!r}: need at least two rows of each class, "
            f"got {counts.to_dict()}"
        )
    train, holdout = train_test_split(
        df, test_size=holdout_fraction, stratify=df[TARGET], random_state=seed
    )
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def fit(train: pd.DataFrame, cfg: ModelConfig) -> Pipeline:
    """Fit a fresh :func:`build_model` pipeline on ``train``.

    Args:
        train: Labelled training rows; not modified.
        cfg: Classifier hyper-parameters.

    Returns:
        The fitted pipeline.

    Raises:
        TrainingError: The rows hold a single class.
    """
    labels = train[TARGET]
    if labels.nunique() < 2:
        raise TrainingError(f"training data holds a single class of {TARGET!r}")
    model = build_model(cfg)
    with limit_threads(cfg.threads):
        model.fit(train[list(FEATURE_NAMES)], labels.to_numpy())
    return model
