"""The feature contract shared by every component (see :mod:`features.contract`).

The contract is a YAML file (schema in :mod:`features.spec`); ``MLPLAT_CONTRACT`` names it.
"""

from features.contract import (
    CATEGORICAL_FEATURES,
    CONTRACT,
    CONTRACT_ENV,
    DEFAULT_CONTRACT,
    ENTITY_ID,
    FEATURE_NAMES,
    FEATURES,
    NUMERIC_FEATURES,
    SEGMENT,
    TARGET,
    CategoricalFeature,
    Contract,
    Direction,
    Feature,
    NumericFeature,
    contract_path,
    feature,
    load_contract,
)
from features.spec import ContractError

__all__ = [
    "CATEGORICAL_FEATURES",
    "CONTRACT",
    "CONTRACT_ENV",
    "DEFAULT_CONTRACT",
    "ENTITY_ID",
    "FEATURES",
    "FEATURE_NAMES",
    "NUMERIC_FEATURES",
    "SEGMENT",
    "TARGET",
    "CategoricalFeature",
    "Contract",
    "ContractError",
    "Direction",
    "Feature",
    "NumericFeature",
    "contract_path",
    "feature",
    "load_contract",
]
