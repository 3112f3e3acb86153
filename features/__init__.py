"""The feature contract shared by every component (see :mod:`features.contract`).

The contract is a YAML file (schema in :mod:`features.spec`); ``MLPLAT_CONTRACT`` names it, the
credit example's is the default. The names derived from it (:data:`FEATURES`, :data:`TARGET`,
...) are read on first use (PEP 562), so a program can catch a broken contract's
:class:`ContractError` and importing the package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from features.contract import (
    CONTRACT_ENV,
    DEFAULT_CONTRACT,
    CategoricalFeature,
    Contract,
    Direction,
    Feature,
    NumericFeature,
    contract_path,
    current,
    feature,
    load_contract,
)
from features.contract import (
    names as _names,
)
from features.spec import ContractError

if TYPE_CHECKING:
    CONTRACT: Contract
    FEATURES: tuple[Feature, ...]
    FEATURE_NAMES: tuple[str, ...]
    NUMERIC_FEATURES: tuple[NumericFeature, ...]
    CATEGORICAL_FEATURES: tuple[CategoricalFeature, ...]
    TARGET: str
    SEGMENT: str | None
    ENTITY_ID: str | None

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
    "current",
    "feature",
    "load_contract",
]

_DERIVED = frozenset(
    {"CONTRACT", "FEATURES", "FEATURE_NAMES", "NUMERIC_FEATURES", "CATEGORICAL_FEATURES",
     "TARGET", "SEGMENT", "ENTITY_ID"}
)  # fmt: skip


def __getattr__(name: str) -> object:
    """Resolve a contract-derived name on first use (the contract is read once)."""
    if name in _DERIVED:
        return _names()[name]
    raise AttributeError(f"module 'features' has no attribute {name!r}")
