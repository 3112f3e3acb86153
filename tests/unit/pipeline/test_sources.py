"""The generated credit data as a pipeline data source."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.data import generate
from pipeline.sources import DataSource, GeneratedData

pytestmark = pytest.mark.unit


def test_generated_data_loads_the_seeded_generator_output() -> None:
    """``load`` is ``generate(n_rows, seed)``: the same rows on every call."""
    source = GeneratedData(n_rows=200, seed=5)
    pd.testing.assert_frame_equal(source.load(), generate(200, 5))
    pd.testing.assert_frame_equal(source.load(), source.load())


def test_generated_data_names_its_seed_and_adds_no_lineage_tag() -> None:
    """The progress line names the seed; the run's own seed tag is the lineage, nothing more."""
    source: DataSource = GeneratedData(n_rows=200, seed=5)
    assert source.description == "generated with seed 5"
    assert dict(source.lineage) == {}
