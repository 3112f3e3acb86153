"""The report helper every benchmark writes through: machine, goals, tables, the JSON file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.report import (
    Column,
    goal,
    machine,
    markdown_table,
    text_table,
    verdict,
    write_result,
)

pytestmark = pytest.mark.unit


def test_machine_names_cpus_python_platform_and_the_versions_asked_for() -> None:
    """Every figures file describes its machine with the same keys, plus chosen versions."""
    described = machine("numpy")
    assert list(described)[:3] == ["cpus", "python", "platform"]
    assert described["cpus"] >= 1
    assert described["numpy"].count(".") >= 1


def test_a_goal_carries_its_verdict_next_to_its_figures() -> None:
    """``goal`` keeps the figures a verdict was judged on; tables print met or MISSED."""
    assert goal(False, rate=0.02, at_most=0.01) == {"rate": 0.02, "at_most": 0.01, "met": False}
    assert (verdict(True), verdict(False)) == ("met", "MISSED")


def test_results_are_written_whole_with_no_temporary_file_left(tmp_path: Path) -> None:
    """The JSON file appears whole, its folder is created, nothing else is left beside it."""
    out = tmp_path / "nested" / "figures.json"
    write_result({"benchmark": "x", "figures": [1, 2]}, out)
    assert json.loads(out.read_text()) == {"benchmark": "x", "figures": [1, 2]}
    assert [p.name for p in out.parent.iterdir()] == ["figures.json"]


def test_markdown_tables_align_text_left_and_numbers_right() -> None:
    """The first column is text (left), the others numbers (right), one line per row."""
    table = markdown_table(["target", "req/s"], [["naive", "100.0"]])
    assert table.splitlines() == ["| target | req/s |", "| --- | ---: |", "| naive | 100.0 |"]


def test_text_tables_pad_numbers_and_cut_long_names() -> None:
    """Left columns are cut to their width so the numbers stay in line."""
    table = text_table([Column("name", 4, left=True), Column("n", 3)], [["abcdef", "7"]])
    assert table.splitlines() == ["name   n", "--------", "abcd   7"]
