"""Size-aware notes: which gates the data at hand fails, skips or judges at noise level."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from features import current
from pipeline.config import GateConfig, PipelineConfig, ValidationConfig
from pipeline.data import generate
from pipeline.sizing import size_notes

pytestmark = pytest.mark.unit


def levels(frame: pd.DataFrame, config: PipelineConfig) -> dict[str, str]:
    """The notes of ``frame`` by configuration key."""
    return {n.check: n.level for n in size_notes(frame, current(), config)}


def test_the_default_credit_data_has_no_size_note() -> None:
    """20,000 generated rows fit every default gate: nothing to say."""
    assert size_notes(generate(20_000, 1), current(), PipelineConfig()) == []


def test_a_small_dataset_names_every_gate_it_weakens() -> None:
    """900 rows: validation fails on min_rows, slices are skipped, the AUC margin is noise."""
    notes = size_notes(generate(900, 1), current(), PipelineConfig())
    by_check = {n.check: n for n in notes}
    assert by_check["validation.min_rows"].level == "fails"
    assert "900 rows < min_rows 1000" in by_check["validation.min_rows"].message
    slices = by_check["gates.min_slice_rows"]
    assert slices.level == "skipped"
    assert "< min_slice_rows 200" in slices.message
    assert by_check["gates.auc_margin"].level == "noise"
    assert by_check["reference_sample_rows"].level == "capped"


def test_a_label_rate_outside_the_band_is_announced() -> None:
    """A positive rate the validation band refuses is a note saying validation will fail."""
    frame = generate(3_000, 2)
    config = PipelineConfig(validation=ValidationConfig(min_default_rate=0.4))
    assert levels(frame, config)["validation.min_default_rate"] == "fails"


def test_thresholds_that_fit_the_size_silence_the_notes() -> None:
    """Lowering min_slice_rows to the slices' size removes the slice note."""
    frame = generate(3_000, 2)
    tight = PipelineConfig()
    loose = PipelineConfig(gates=GateConfig(min_slice_rows=10))
    assert "gates.min_slice_rows" in levels(frame, tight)
    assert "gates.min_slice_rows" not in levels(frame, loose)


def test_a_contract_without_a_segment_reports_slice_gates_skipped() -> None:
    """No segment column: the slice gates are reported skipped, with that reason."""
    contract = replace(current(), segment=None)
    notes = size_notes(generate(20_000, 1), contract, PipelineConfig())
    assert [(n.check, n.level) for n in notes] == [("gates.slice_auc_margin", "skipped")]
    assert "names no segment" in notes[0].message
