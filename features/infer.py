"""Draft a contract from a dataset, for a person to review (``mlplat init``).

What can be read off the data is filled in: each column's kind, validity bounds with headroom,
categories, a null budget above the observed rate, and a valid example row. What cannot — units,
descriptions, what a positive label means — is marked ``TODO`` and listed in the notes, together
with anything that looks wrong (a constant column, an id-like category, a rare class).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pandas as pd

__all__ = ["Draft", "InferenceError", "draft_contract", "feature_name"]

HEADROOM: Final = 0.10
"""Bounds are widened by this share of the observed range on each side (a count stays >= 0)."""
MAX_CATEGORIES: Final = 50
"""A text column with more distinct values than this is likely an id or free text."""
TODO: Final = "TODO"


class InferenceError(ValueError):
    """The dataset cannot carry a contract as asked (missing column, non-binary target, ...)."""


@dataclass
class Draft:
    """A drafted contract and what a person should check before using it.

    Attributes:
        contract: The contract as a mapping, ready to be written as YAML.
        notes: One line per thing to check or fill in, most important first.
    """

    contract: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _bounds(values: pd.Series, integral: bool) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    pad = (high - low) * HEADROOM or max(abs(high), 1.0) * HEADROOM
    lower = low - pad if low < 0 or low - pad >= 0 else 0.0
    upper = high + pad
    if integral:
        return float(math.floor(lower)), float(math.ceil(upper))
    return _round(lower, math.floor), _round(upper, math.ceil)


def _round(value: float, direction: Callable[[float], int]) -> float:
    """``value`` to four significant digits, away from the data (``floor`` for a minimum)."""
    if value == 0:
        return 0.0
    scale = 10.0 ** (3 - math.floor(math.log10(abs(value))))
    return float(direction(value * scale) / scale)


def _number(value: float, integral: bool) -> int | float:
    return int(value) if integral else float(value)


def _null_budget(rate: float) -> float:
    """The observed null rate plus room (0 when the column never was null)."""
    return 0.0 if rate == 0 else min(1.0, round(rate * 1.5 + 0.01, 3))


def feature_name(column: str) -> str:
    """A contract name for a source column: ``mean radius`` -> ``mean_radius``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", column.strip()).strip("_") or "column"
    return name if re.match(r"[A-Za-z_]", name) else f"f_{name}"


def _named(column: str, spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with ``name`` (and ``column`` when the source spells it otherwise) first."""
    name = feature_name(column)
    return {"name": name, **({"column": column} if name != column else {}), **spec}


def _numeric(name: str, values: pd.Series, notes: list[str]) -> dict[str, Any]:
    present = values.dropna()
    integral = pd.api.types.is_integer_dtype(values.dtype) or bool(
        len(present) and (present == present.round()).all() and present.abs().max() < 2**53
    )
    low, high = _bounds(present, integral)
    if present.nunique() == 1:
        notes.append(f"{name}: constant in this data ({present.iloc[0]!r}); it teaches nothing")
    return _named(name, {
        "kind": "int" if integral else "float",
        "minimum": _number(low, integral),
        "maximum": _number(high, integral),
        "unit": TODO,
        "max_null_rate": _null_budget(float(values.isna().mean())),
        "description": TODO,
    })  # fmt: skip


def _categorical(name: str, values: pd.Series, notes: list[str]) -> dict[str, Any]:
    categories = sorted({str(v) for v in values.dropna()})
    if len(categories) > MAX_CATEGORIES:
        notes.append(
            f"{name}: {len(categories)} distinct values — an id or free text? Drop it "
            "(--drop) or group its values"
        )
    return _named(name, {
        "kind": "category",
        "categories": categories,
        "max_null_rate": _null_budget(float(values.isna().mean())),
        "description": TODO,
    })  # fmt: skip


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
        values.dtype
    )


def _check_target(data: pd.DataFrame, target: str, notes: list[str]) -> None:
    labels = data[target]
    if labels.isna().any():
        raise InferenceError(f"target {target!r} has {int(labels.isna().sum())} empty values")
    values = set(pd.unique(labels).tolist())
    if not values <= {0, 1} or len(values) != 2:
        shown = sorted(map(str, values))[:5]
        raise InferenceError(
            f"target {target!r} must hold the two labels 0 and 1; it holds {shown}"
            " — map it to 0/1 first (1 = the outcome the score predicts)"
        )
    share = float(labels.mean())
    if min(share, 1 - share) < 0.05:
        notes.append(f"{target}: only {min(share, 1 - share):.1%} of rows are in the rare class")


def _example(data: pd.DataFrame, features: list[dict[str, Any]]) -> dict[str, Any]:
    """The complete row nearest the medians: a typical, valid record."""
    columns = {f["name"]: f.get("column", f["name"]) for f in features}
    complete = (
        data[list(columns.values())].dropna().rename(columns={v: k for k, v in columns.items()})
    )
    if complete.empty:
        raise InferenceError("no row has a value in every feature; cannot pick an example")
    numeric = [f["name"] for f in features if f["kind"] != "category"]
    if numeric:
        scaled = (complete[numeric] - complete[numeric].median()) / (
            complete[numeric].std(ddof=0).replace(0, 1)
        )
        row = complete.loc[scaled.abs().sum(axis=1).idxmin()]
    else:
        row = complete.iloc[0]
    example: dict[str, Any] = {}
    for spec in features:
        value = row[spec["name"]]
        if spec["kind"] == "category":
            example[spec["name"]] = str(value)
        else:
            example[spec["name"]] = _number(float(value), spec["kind"] == "int")
    return example


def draft_contract(
    data: pd.DataFrame,
    target: str,
    *,
    name: str = "my-model",
    entity_id: str | None = None,
    segment: str | None = None,
    drop: tuple[str, ...] = (),
) -> Draft:
    """Draft a contract for ``data``, whose ``target`` column holds the 0/1 label.

    Args:
        data: The training data, one row per labelled example.
        target: The label column (0/1; 1 = the outcome the model scores).
        name: The contract's name.
        entity_id: A routing-key column (never a model input), if the data has one.
        segment: A categorical column to slice evaluation by, if any.
        drop: Columns to leave out of the contract (ids, leaks, free text).

    Returns:
        The draft and the notes a person should read before using it.

    Raises:
        InferenceError: A named column is missing, or the target is not binary 0/1.
    """
    named = [c for c in (target, entity_id, segment, *drop) if c is not None]
    absent = [c for c in named if c not in data.columns]
    if absent:
        raise InferenceError(f"no column {absent} in the data; it has {list(data.columns)}")
    if len(data) == 0:
        raise InferenceError("the dataset has no rows")
    notes: list[str] = []
    _check_target(data, target, notes)
    skip = {target, *drop} | ({entity_id} if entity_id else set())
    features: list[dict[str, Any]] = []
    for column in data.columns:
        if column in skip:
            continue
        values = data[column]
        if values.isna().all():
            notes.append(f"{column}: empty in every row; left out")
            continue
        as_category = not _is_numeric(values) or column == segment
        spec = _categorical if as_category else _numeric
        features.append(spec(str(column), values, notes))
    if not features:
        raise InferenceError("no feature column is left once target, id and dropped are removed")
    contract: dict[str, Any] = {
        "version": 1,
        "name": name,
        "description": TODO,
        "target": {"column": target, "positive": TODO, "score": f"P({target})"},
        "entity_id": entity_id,
        "segment": segment,
        "features": features,
        "example": _example(data, features),
        "directions": [],
    }
    notes[:0] = _fill_in_notes(contract, len(data))
    return Draft({k: v for k, v in contract.items() if v is not None}, notes)


def _fill_in_notes(contract: Mapping[str, Any], rows: int) -> list[str]:
    numeric = [f["name"] for f in contract["features"] if f["kind"] != "category"]
    notes = [
        f"drafted from {rows} rows: bounds are the observed range plus {HEADROOM:.0%} — "
        "widen them to what is *valid*, not what was seen",
        "fill in every TODO: target.positive (what a 1 means), each description"
        + (", each numeric unit" if numeric else ""),
    ]
    if contract.get("segment") is None:
        notes.append("no segment: evaluation gates will not compare slices (--segment COLUMN)")
    if contract.get("entity_id") is None:
        notes.append("no entity_id: requests are routed by request id (--entity-id COLUMN)")
    notes.append("optional: add 'directions' the model must respect (behavioural tests)")
    return notes
