"""``mlplat bench``: the commands users type, and the options each takes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from benchmarks.cli import bench
from mlplat.cli import main

pytestmark = pytest.mark.unit

COMMANDS = ("judge", "judge-log", "pipeline", "registry-race", "serve", "store")


def test_mlplat_bench_lists_every_benchmark() -> None:
    """``mlplat bench --help`` lists each benchmark the README and write-ups cite."""
    result = CliRunner().invoke(main, ["bench", "--help"])
    assert result.exit_code == 0, result.output
    for command in COMMANDS:
        assert f"  {command} " in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_benchmark_requires_an_out_file(command: str) -> None:
    """Each benchmark refuses to run without --out, naming the option."""
    result = CliRunner().invoke(bench, [command])
    assert result.exit_code == 2
    assert "--out" in result.output


def test_bad_store_sizes_are_refused_naming_the_option() -> None:
    """Sizes that are not comma-separated integers are a usage error on --sizes."""
    result = CliRunner().invoke(bench, ["store", "--out", "x.json", "--sizes", "10,ten"])
    assert result.exit_code == 2
    assert "--sizes" in result.output


def test_the_judge_refuses_too_few_canaries() -> None:
    """Fewer than ten canaries per scenario is refused before anything runs."""
    result = CliRunner().invoke(bench, ["judge", "--out", "x.json", "--runs", "3"])
    assert result.exit_code == 2
    assert "--runs" in result.output
