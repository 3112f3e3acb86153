"""``mlplat pipeline check-config``: the size notes for the data a user names, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ci.cli import EXIT_GATE_FAILED, pipeline
from pipeline.data import generate

pytestmark = pytest.mark.unit


def test_check_config_lists_what_a_small_file_weakens(tmp_path: Path) -> None:
    """900 rows in a CSV: validation will fail and the slice gates are skipped; exit 3."""
    data = tmp_path / "rows.csv"
    generate(900, 1).to_csv(data, index=False)
    done = CliRunner().invoke(pipeline, ["check-config", "--data", str(data)])
    assert done.exit_code == EXIT_GATE_FAILED, done.output
    assert "900 rows < min_rows 1000" in done.output
    assert "slice gates skipped" in done.output


def test_check_config_json_and_a_config_that_fits(tmp_path: Path) -> None:
    """A --config lowering min_rows and the band makes it exit 0; --json lists the notes."""
    data = tmp_path / "rows.csv"
    generate(900, 1).to_csv(data, index=False)
    config = tmp_path / "small.yml"
    config.write_text("validation:\n  min_rows: 500\n", encoding="utf-8")
    args = ["check-config", "--data", str(data), "--config", str(config), "--json"]
    done = CliRunner().invoke(pipeline, args)
    assert done.exit_code == 0, done.output
    payload = json.loads(done.output)
    assert payload["rows"] == 900
    assert {n["check"] for n in payload["notes"]} >= {"gates.min_slice_rows"}
    assert "validation.min_rows" not in {n["check"] for n in payload["notes"]}


def test_a_missing_file_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """A --data path that does not exist is a one-line error and exit code 1."""
    done = CliRunner().invoke(pipeline, ["check-config", "--data", str(tmp_path / "no.csv")])
    assert done.exit_code == 1
    assert "does not exist" in done.output
    assert "Traceback" not in done.output
