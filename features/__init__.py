"""The feature contract shared by every component (see :mod:`features.contract`)."""

from features.contract import (
    CATEGORICAL_FEATURES,
    ENTITY_ID,
    FEATURE_NAMES,
    FEATURES,
    NUMERIC_FEATURES,
    SEGMENT,
    TARGET,
    CategoricalFeature,
    Feature,
    NumericFeature,
    feature,
)

__all__ = [
    "CATEGORICAL_FEATURES",
    "ENTITY_ID",
    "FEATURES",
    "FEATURE_NAMES",
    "NUMERIC_FEATURES",
    "SEGMENT",
    "TARGET",
    "CategoricalFeature",
    "Feature",
    "NumericFeature",
    "feature",
]
