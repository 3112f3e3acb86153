"""The contract file: a valid one loads, every kind of mistake is refused with where and why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from features import (
    CONTRACT_ENV,
    CategoricalFeature,
    ContractError,
    NumericFeature,
    contract_path,
    current,
    load_contract,
)

pytestmark = pytest.mark.unit


def small() -> dict[str, Any]:
    """A minimal valid contract: two numeric inputs, one category that is the segment."""
    return {
        "version": 1,
        "name": "tiny",
        "target": {"column": "label", "positive": "the thing happened"},
        "entity_id": "id",
        "segment": "region",
        "features": [
            {"name": "x", "kind": "float", "minimum": 0, "maximum": 1, "unit": "ratio",
             "description": "x"},
            {"name": "n", "kind": "int", "minimum": 0, "maximum": 10, "unit": "items",
             "max_null_rate": 0.2, "description": "n"},
            {"name": "region", "kind": "category", "categories": ["north", "south"],
             "description": "region"},
        ],
        "example": {"x": 0.5, "n": None, "region": "north"},
        "directions": [{"feature": "x", "step": 0.1, "score": "higher"}],
    }  # fmt: skip


def write(tmp_path: Path, data: object) -> Path:
    """Write ``data`` as a contract file and return its path."""
    path = tmp_path / "contract.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_a_valid_contract_becomes_the_objects_the_components_use(tmp_path: Path) -> None:
    """Features keep their order and kind; target, key, segment and directions come along."""
    contract = load_contract(write(tmp_path, small()))
    assert contract.feature_names == ("x", "n", "region")
    assert contract.features[1] == NumericFeature("n", "int", 0, 10, "items", 0.2, "n")
    assert isinstance(contract.features[2], CategoricalFeature)
    assert (contract.target, contract.entity_id, contract.segment) == ("label", "id", "region")
    assert contract.directions[0].score == "higher"
    assert contract.score == "P(positive)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["features"][0].update(minimum=2), "(x): 'minimum' (2) must be below"),
        (lambda d: d["features"][0].pop("unit"), "needs 'minimum', 'maximum' and 'unit'"),
        (lambda d: d["features"][2].pop("categories"), "needs a non-empty 'categories'"),
        (lambda d: d["features"][2].update(categories=["a", "a"]), "lists a value twice"),
        (lambda d: d["features"].append(dict(d["features"][0])), "features listed twice: x"),
        (lambda d: d["features"][0].update(kind="text"), "features[0] (x).kind"),
        (lambda d: d["features"][0].update(colour="red"), "features[0] (x).colour"),
        (lambda d: d.update(segment="x"), "segment 'x' must name a category feature"),
        (lambda d: d["target"].update(column="x"), "target.column 'x' is also a feature"),
        (lambda d: d["example"].update(x=7), "example: x=7 is outside [0, 1]"),
        (lambda d: d["example"].update(region="west"), "region='west' is not one of its"),
        (lambda d: d["example"].pop("x"), "missing ['x']"),
        (lambda d: d["example"].update(x=None), "example: x may not be null"),
        (lambda d: d["directions"].append({"feature": "region", "step": 1, "score": "lower"}),
         "'region' is not a numeric feature"),
        (lambda d: d.update(version=2), "version"),
    ],
)  # fmt: skip
def test_a_broken_contract_names_the_file_the_field_and_the_problem(
    tmp_path: Path, change: Any, message: str
) -> None:
    """Each mistake is one readable line naming its place, never a stack trace of pydantic's."""
    data = small()
    change(data)
    path = write(tmp_path, data)
    with pytest.raises(ContractError) as caught:
        load_contract(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_a_missing_or_unreadable_file_is_a_contract_error(tmp_path: Path) -> None:
    """No file, a YAML syntax error and a list instead of a mapping each say what is wrong."""
    with pytest.raises(ContractError, match="does not exist"):
        load_contract(tmp_path / "absent.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text("features: [\n", encoding="utf-8")
    with pytest.raises(ContractError, match="cannot be read"):
        load_contract(broken)
    with pytest.raises(ContractError, match="must hold a mapping"):
        load_contract(write(tmp_path, [1, 2]))


def test_the_environment_variable_chooses_the_contract(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``MLPLAT_CONTRACT`` points the process at another file; unset, the credit example's."""
    monkeypatch.delenv(CONTRACT_ENV, raising=False)
    assert contract_path().parts[-3:] == ("examples", "credit", "contract.yml")
    path = write(tmp_path, small())
    monkeypatch.setenv(CONTRACT_ENV, str(path))
    assert contract_path() == path


def test_a_process_started_on_another_contract_serves_its_features(tmp_path: Path) -> None:
    """The package-level names come from the file ``MLPLAT_CONTRACT`` names at start-up."""
    path = write(tmp_path, small())
    code = "import features; print(','.join(features.FEATURE_NAMES), features.TARGET)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PATH": "/usr/bin:/bin", CONTRACT_ENV: str(path)},
    )  # fmt: skip
    assert done.stdout.split() == ["x,n,region", "label"]


def test_a_broken_contract_fails_where_its_names_are_first_used(tmp_path: Path) -> None:
    """``import features`` is free; the first contract name read raises the file's problem."""
    data = small()
    data["features"][0]["maximum"] = -1
    path = write(tmp_path, data)
    done = subprocess.run(
        [sys.executable, "-c", "import features; features.FEATURES"],
        capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", CONTRACT_ENV: str(path)},
    )  # fmt: skip
    assert done.returncode != 0
    assert "ContractError" in done.stderr
    assert "'minimum' (0) must be below 'maximum'" in done.stderr


def test_a_contract_without_key_or_segment_is_the_process_contract(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither entity_id nor segment is required: the names read None, not an error."""
    data = small()
    del data["entity_id"]
    data.pop("segment", None)
    monkeypatch.setenv(CONTRACT_ENV, str(write(tmp_path, data)))
    current.cache_clear()
    try:
        contract = current()
        assert (contract.entity_id, contract.segment) == (None, None)
    finally:
        monkeypatch.delenv(CONTRACT_ENV)
        current.cache_clear()
