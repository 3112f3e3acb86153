"""The contract file's schema: what a YAML feature contract may say, checked with clear errors.

A contract file names the model's inputs (kind, validity bounds, unit, categories, null budget,
description), the target and what a positive means, the routing key, the slice column, one
valid example record and, optionally, the directions a sound model must respect. Every
component is generated from it; this module only reads and checks the file —
:mod:`features.contract` turns it into the objects the components use.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "ContractError",
    "ContractSpec",
    "DirectionSpec",
    "FeatureSpec",
    "TargetSpec",
    "read_spec",
]

Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")]


class ContractError(ValueError):
    """The contract file is missing, unreadable or breaks the schema; the message says where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Strict):
    """One model input.

    Attributes:
        name: The feature's name, as callers send it (letters, digits, ``_``, ``.``, ``-``).
        column: The column's name in the data source, when it differs from ``name`` (e.g.
            ``mean radius`` for ``mean_radius``); sources rename it on reading.
        kind: ``int`` (counts, scores), ``float`` or ``category`` (a closed set of strings).
        minimum: Smallest valid value, inclusive (numeric kinds only).
        maximum: Largest valid value, inclusive (numeric kinds only).
        unit: The unit callers must use (numeric kinds only); a unit mismatch is training-serving
            skew.
        categories: Every allowed value (``category`` only).
        max_null_rate: Largest share of nulls a healthy batch may have (0 = never null).
        description: One line for people and the OpenAPI docs.
    """

    name: Name
    column: str | None = Field(default=None, min_length=1)
    kind: Literal["int", "float", "category"]
    minimum: int | float | None = None
    maximum: int | float | None = None
    unit: str | None = None
    categories: tuple[str, ...] | None = None
    max_null_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    description: str = Field(min_length=1)

    @model_validator(mode="after")
    def _fits_its_kind(self) -> FeatureSpec:
        if self.kind == "category":
            if not self.categories:
                raise ValueError("a category feature needs a non-empty 'categories' list")
            if len(set(self.categories)) != len(self.categories):
                raise ValueError("'categories' lists a value twice")
            extra = [k for k in ("minimum", "maximum", "unit") if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"a category feature takes no {', '.join(extra)}")
            return self
        if self.categories is not None:
            raise ValueError(f"an {self.kind} feature takes no 'categories'")
        if self.minimum is None or self.maximum is None or self.unit is None:
            raise ValueError(f"an {self.kind} feature needs 'minimum', 'maximum' and 'unit'")
        if not (math.isfinite(self.minimum) and math.isfinite(self.maximum)):
            raise ValueError("'minimum' and 'maximum' must be finite numbers")
        if self.minimum >= self.maximum:
            raise ValueError(f"'minimum' ({self.minimum:g}) must be below 'maximum'")
        return self


class TargetSpec(_Strict):
    """The label.

    Attributes:
        column: The label column in the training data (values 0 and 1).
        positive: What a 1 means, in words (shown in reports and the API docs).
        score: How the model's score reads, e.g. ``P(default)``.
    """

    column: Name
    positive: str = Field(min_length=1)
    score: str = Field(default="P(positive)", min_length=1)


class DirectionSpec(_Strict):
    """A direction any sound model respects: raising ``feature`` by ``step`` moves the score.

    Attributes:
        feature: A numeric feature.
        step: How much to raise it (in the feature's unit).
        score: ``higher`` or ``lower``: which way the score must move.
    """

    feature: Name
    step: float = Field(gt=0)
    score: Literal["higher", "lower"]


class ContractSpec(_Strict):
    """A whole contract file (``version: 1``)."""

    version: Literal[1]
    name: Name
    description: str = ""
    target: TargetSpec
    entity_id: Name | None = None
    segment: Name | None = None
    features: tuple[FeatureSpec, ...] = Field(min_length=1)
    example: dict[str, Any]
    directions: tuple[DirectionSpec, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> ContractSpec:
        names = [f.name for f in self.features]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"features listed twice: {', '.join(twice)}")
        by_name = {f.name: f for f in self.features}
        for role, column in (("target.column", self.target.column), ("entity_id", self.entity_id)):
            if column in by_name:
                raise ValueError(f"{role} {column!r} is also a feature; a model may not see it")
        if self.target.column == self.entity_id:
            raise ValueError("target.column and entity_id name the same column")
        if self.segment is not None and (
            self.segment not in by_name or by_name[self.segment].kind != "category"
        ):
            raise ValueError(f"segment {self.segment!r} must name a category feature")
        for direction in self.directions:
            spec = by_name.get(direction.feature)
            if spec is None or spec.kind == "category":
                raise ValueError(f"directions: {direction.feature!r} is not a numeric feature")
        _check_example(self.example, by_name)
        return self


def _check_example(example: dict[str, Any], features: dict[str, FeatureSpec]) -> None:
    """Raise ``ValueError`` unless ``example`` is a valid record of the contract."""
    missing = [name for name in features if name not in example]
    unknown = [name for name in example if name not in features]
    if missing or unknown:
        raise ValueError(
            f"example: missing {missing or 'nothing'}, not in the contract {unknown or 'nothing'}"
        )
    for name, spec in features.items():
        value = example[name]
        if value is None:
            if spec.max_null_rate == 0:
                raise ValueError(f"example: {name} may not be null")
        elif spec.kind == "category":
            if value not in (spec.categories or ()):
                raise ValueError(f"example: {name}={value!r} is not one of its categories")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"example: {name}={value!r} is not a number")
        elif spec.kind == "int" and float(value) != int(value):
            raise ValueError(f"example: {name}={value!r} must be a whole number")
        elif not (spec.minimum or 0) <= value <= (spec.maximum or 0):
            raise ValueError(
                f"example: {name}={value!r} is outside [{spec.minimum:g}, {spec.maximum:g}]"
            )


def _where(loc: tuple[int | str, ...], data: object) -> str:
    """``features[3] (loan_amount).maximum`` for a pydantic error location."""
    parts: list[str] = []
    node = data
    for key in loc:
        if isinstance(key, int):
            label = f"[{key}]"
            if isinstance(node, list) and key < len(node) and isinstance(node[key], dict):
                name = node[key].get("name") or node[key].get("feature")
                label += f" ({name})" if name else ""
            parts.append(label)
            node = node[key] if isinstance(node, list) and key < len(node) else None
        else:
            parts.append(("." if parts else "") + key)
            node = node.get(key) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def read_spec(path: Path | str) -> ContractSpec:
    """Read and check the contract file at ``path``.

    Raises:
        ContractError: The file is missing, is not YAML, or breaks the schema; the message
            names the file and each offending field.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContractError(f"contract file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ContractError(f"contract file {path} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise ContractError(f"contract file {path} must hold a mapping (version, features, ...)")
    try:
        return ContractSpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        deeper = {err["loc"][0] for err in errors if len(err["loc"]) > 1}
        problems = [
            f"  {_where(tuple(err['loc']), data)}: {err['msg'].removeprefix('Value error, ')}"
            for err in errors
            if len(err["loc"]) > 1 or err["loc"][:1] not in [(key,) for key in deeper]
        ]
        raise ContractError(f"contract file {path} is invalid:\n" + "\n".join(problems)) from None
