"""Drafting a contract from data: what is read off the data, and what is left for a person."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer

from features import CategoricalFeature, NumericFeature, load_contract
from features.infer import InferenceError, draft_contract, feature_name

pytestmark = pytest.mark.unit


def frame(rows: int = 200) -> pd.DataFrame:
    """Mixed data: a float with nulls, a count, a category, a constant, an id and a label."""
    rng = np.random.default_rng(0)
    income = rng.lognormal(10, 0.5, rows)
    income[:10] = np.nan
    return pd.DataFrame({
        "id": [f"c{i}" for i in range(rows)],
        "income": income,
        "children": rng.integers(0, 5, rows),
        "region": rng.choice(["north", "south", "east"], rows),
        "flag": 1.0,
        "label": rng.integers(0, 2, rows),
    })  # fmt: skip


def test_a_draft_is_a_valid_contract_that_accepts_every_row_it_was_drawn_from(
    tmp_path: Path,
) -> None:
    """Written out and loaded back, the draft's bounds and categories hold every source row."""
    data = frame()
    draft = draft_contract(data, "label", entity_id="id", segment="region")
    path = tmp_path / "contract.yml"
    path.write_text(yaml.safe_dump(draft.contract, sort_keys=False), encoding="utf-8")
    contract = load_contract(path)
    assert contract.feature_names == ("income", "children", "region", "flag")
    for spec in contract.features:
        column = data[spec.name].dropna()
        if isinstance(spec, NumericFeature):
            assert spec.minimum <= column.min()
            assert column.max() <= spec.maximum
        else:
            assert isinstance(spec, CategoricalFeature)
            assert set(column) <= set(spec.categories)
    assert (contract.entity_id, contract.segment) == ("id", "region")


def test_kinds_null_budgets_and_headroom_are_read_off_the_data() -> None:
    """Integral columns are ints, nulls get a budget above what was seen, counts stay >= 0."""
    draft = draft_contract(frame(), "label", entity_id="id")
    specs = {f["name"]: f for f in draft.contract["features"]}
    assert specs["children"]["kind"] == "int"
    assert specs["children"]["minimum"] == 0
    assert specs["income"]["kind"] == "float"
    assert specs["income"]["max_null_rate"] > 10 / 200
    assert specs["children"]["max_null_rate"] == 0.0
    assert specs["region"]["categories"] == ["east", "north", "south"]


def test_the_notes_say_what_to_fill_in_and_what_looks_wrong() -> None:
    """TODOs, the constant column and the missing segment are each named."""
    notes = "\n".join(draft_contract(frame(), "label", entity_id="id").notes)
    assert "fill in every TODO" in notes
    assert "flag: constant" in notes
    assert "no segment" in notes


def test_column_names_that_are_not_identifiers_are_renamed_and_mapped() -> None:
    """``mean radius`` becomes ``mean_radius`` with ``column: mean radius`` kept for the source."""
    assert feature_name("mean radius") == "mean_radius"
    assert feature_name("2nd try!") == "f_2nd_try"
    data = pd.DataFrame({"mean radius": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    spec = draft_contract(data, "y").contract["features"][0]
    assert (spec["name"], spec["column"]) == ("mean_radius", "mean radius")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.assign(label=d["label"] + 1), "must hold the two labels 0 and 1"),
        (lambda d: d.assign(label=0), "must hold the two labels 0 and 1"),
        (lambda d: d.assign(label=d["label"].where(d.index > 0)), "has 1 empty values"),
        (lambda d: d.drop(columns="label"), "no column ['label']"),
        (lambda d: d.iloc[:0], "no rows"),
    ],
)
def test_data_that_cannot_carry_a_contract_is_refused_with_the_reason(
    change: object, message: str
) -> None:
    """A non-binary or missing target, or no rows, is an InferenceError saying which."""
    data = change(frame())  # type: ignore[operator]
    with pytest.raises(InferenceError) as caught:
        draft_contract(data, "label", entity_id="id")
    assert message in str(caught.value)


def test_a_real_public_dataset_drafts_into_a_loadable_contract(tmp_path: Path) -> None:
    """scikit-learn's breast-cancer data (569 rows, 30 spaced names) drafts and loads."""
    data = load_breast_cancer(as_frame=True).frame
    draft = draft_contract(data, "target", name="breast-cancer")
    path = tmp_path / "contract.yml"
    path.write_text(yaml.safe_dump(draft.contract, sort_keys=False), encoding="utf-8")
    contract = load_contract(path)
    assert len(contract.features) == 30
    assert contract.source_columns["worst concave points"] == "worst_concave_points"
    assert contract.example["mean_radius"] > 0
