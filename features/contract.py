"""The feature contract: the one place that says what a model input looks like.

Every component reads it: the data generator produces it, the Great Expectations suite is
generated from it, the serving request schema is built from it, and the drift checks use it to
pick a statistical test per column. It is a YAML file (schema: :mod:`features.spec`): the
credit example's is ``examples/credit/contract.yml``, and ``MLPLAT_CONTRACT`` names another.
The package's names (``features.FEATURES``, ``features.TARGET``, ...) are that file's contents,
read once, on first use (:func:`current`).

Ranges are *validity* bounds (a value outside them is a broken record), not the range of the
training data: drift inside the valid range is the monitoring's job, not the validator's.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from features.spec import ContractError, ContractSpec, read_spec

NumericKind = Literal["int", "float"]


@dataclass(frozen=True)
class NumericFeature:
    """A numeric input with hard validity bounds.

    Attributes:
        name: Column name, as sent by callers.
        kind: ``"int"`` for counts and scores, ``"float"`` otherwise.
        minimum: Smallest valid value (inclusive).
        maximum: Largest valid value (inclusive).
        unit: The unit callers must use; training-serving skew is a unit mismatch.
        max_null_rate: Largest share of nulls a healthy batch may have (0 = never null).
        description: One line for humans and the OpenAPI docs.
    """

    name: str
    kind: NumericKind
    minimum: float
    maximum: float
    unit: str
    max_null_rate: float
    description: str

    @property
    def nullable(self) -> bool:
        """Whether a single record may omit this value."""
        return self.max_null_rate > 0


@dataclass(frozen=True)
class CategoricalFeature:
    """A categorical input with a closed set of allowed values.

    Attributes:
        name: Column name, as sent by callers.
        categories: Every allowed value; anything else is an unknown category.
        max_null_rate: Largest share of nulls a healthy batch may have (0 = never null).
        description: One line for humans and the OpenAPI docs.
    """

    name: str
    categories: tuple[str, ...]
    max_null_rate: float
    description: str

    @property
    def nullable(self) -> bool:
        """Whether a single record may omit this value."""
        return self.max_null_rate > 0


Feature = NumericFeature | CategoricalFeature


@dataclass(frozen=True)
class Direction:
    """Raising ``feature`` by ``step`` must move a sound model's score ``score`` (behaviour test).

    Attributes:
        feature: A numeric feature of the contract.
        step: The increase, in the feature's unit.
        score: ``higher`` or ``lower``.
    """

    feature: str
    step: float
    score: Literal["higher", "lower"]


@dataclass(frozen=True)
class Contract:
    """A checked contract: the inputs, the label, the routing key and the slice column.

    Attributes:
        name: The contract's name (e.g. ``credit-risk``).
        description: One line on what the model decides.
        features: The model inputs, in the column order every model is trained with.
        target: The binary label column.
        positive: What a label of 1 means, in words.
        score: How the model's score reads, e.g. ``P(default)``.
        entity_id: The optional routing key column (never a model input), or ``None``.
        segment: The slice column (a categorical feature), or ``None``.
        example: One valid record.
        directions: Directions a sound model respects.
        source: The file it was read from.
        renames: ``(source column, feature name)`` pairs for renamed columns.
    """

    name: str
    description: str
    features: tuple[Feature, ...]
    target: str
    positive: str
    score: str
    entity_id: str | None
    segment: str | None
    example: dict[str, Any]
    directions: tuple[Direction, ...]
    source: Path
    renames: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_spec(cls, spec: ContractSpec, source: Path) -> Contract:
        """Build the contract objects from a checked file."""
        features: list[Feature] = []
        for f in spec.features:
            if f.kind == "category":
                features.append(
                    CategoricalFeature(f.name, f.categories or (), f.max_null_rate, f.description)
                )
            elif f.minimum is None or f.maximum is None:
                raise ContractError(f"feature {f.name!r} has no bounds")  # the spec forbids it
            else:
                features.append(
                    NumericFeature(
                        f.name, f.kind, f.minimum, f.maximum, f.unit or "",
                        f.max_null_rate, f.description,
                    )
                )  # fmt: skip
        return cls(
            name=spec.name,
            description=spec.description,
            features=tuple(features),
            target=spec.target.column,
            positive=spec.target.positive,
            score=spec.target.score,
            entity_id=spec.entity_id,
            segment=spec.segment,
            example=dict(spec.example),
            directions=tuple(Direction(d.feature, d.step, d.score) for d in spec.directions),
            source=source,
            renames=tuple(
                (f.column, f.name) for f in spec.features if f.column not in (None, f.name)
            ),
        )

    @property
    def source_columns(self) -> dict[str, str]:
        """Data-source column -> feature name, for the features whose column is named otherwise."""
        return dict(self.renames)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The input column names, in order."""
        return tuple(f.name for f in self.features)


CONTRACT_ENV: Final = "MLPLAT_CONTRACT"
"""Environment variable naming the contract file to use instead of the credit example's."""
DEFAULT_CONTRACT: Final = Path(__file__).resolve().parent.parent / "examples/credit/contract.yml"
"""The credit-risk example's contract, used when :data:`CONTRACT_ENV` is unset."""


def contract_path() -> Path:
    """The contract file this process uses: ``$MLPLAT_CONTRACT``, else the credit example's."""
    configured = os.environ.get(CONTRACT_ENV, "").strip()
    return Path(configured).expanduser() if configured else DEFAULT_CONTRACT


def load_contract(path: Path | str | None = None) -> Contract:
    """Read and check a contract file (default: :func:`contract_path`).

    Raises:
        features.spec.ContractError: The file is missing or invalid; the message says where.
    """
    source = Path(path) if path is not None else contract_path()
    return Contract.from_spec(read_spec(source), source)


@functools.cache
def current() -> Contract:
    """The contract of this process, read once on first use (see :func:`contract_path`).

    The components read it through the package's names (``features.FEATURES``, ...), which
    are resolved on first access, so importing :mod:`features.spec` or :mod:`features.infer`
    never reads a contract and a broken file fails where its names are first needed.

    Raises:
        features.spec.ContractError: The file is missing or invalid.
    """
    return load_contract()


def names() -> dict[str, object]:
    """The package-level names derived from :func:`current` (``FEATURES``, ``TARGET``, ...)."""
    contract = current()
    return {
        "CONTRACT": contract,
        "FEATURES": contract.features,
        "FEATURE_NAMES": contract.feature_names,
        "TARGET": contract.target,
        "SEGMENT": contract.segment,
        "ENTITY_ID": contract.entity_id,
        "NUMERIC_FEATURES": tuple(f for f in contract.features if isinstance(f, NumericFeature)),
        "CATEGORICAL_FEATURES": tuple(
            f for f in contract.features if isinstance(f, CategoricalFeature)
        ),
    }


def feature(name: str) -> Feature:
    """Return the current contract's entry for ``name``.

    Raises:
        KeyError: ``name`` is not a feature of the contract; the message lists the valid names.
    """
    contract = current()
    for f in contract.features:
        if f.name == name:
            return f
    raise KeyError(
        f"unknown feature {name!r}; the contract has: {', '.join(contract.feature_names)}"
    )
