"""``mlplat init`` and ``mlplat contract check`` as a user types them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sklearn.datasets import load_breast_cancer

from features import load_contract
from features.cli import contract, init

pytestmark = pytest.mark.unit


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    """scikit-learn's breast-cancer data as a CSV, as a user would bring it."""
    path = tmp_path / "cancer.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(path, index=False)
    return path


def test_init_writes_a_contract_that_checks_and_lists_what_to_review(
    csv: Path, tmp_path: Path
) -> None:
    """The draft loads; the output names the file, the features, the TODOs and the next steps."""
    out = tmp_path / "contract.yml"
    result = CliRunner().invoke(init, [str(csv), "--target", "target", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "30 features" in result.output
    assert "fill in every TODO" in result.output
    assert f"mlplat pipeline run --data {csv}" in result.output
    assert load_contract(out).name == "cancer"
    checked = CliRunner().invoke(contract, ["check", str(out)])
    assert checked.exit_code == 0, checked.output
    assert "still TODO: target.positive, mean_radius" in checked.output


def test_init_refuses_to_overwrite_without_force(csv: Path, tmp_path: Path) -> None:
    """An existing file is kept unless --force is given."""
    out = tmp_path / "contract.yml"
    out.write_text("mine", encoding="utf-8")
    result = CliRunner().invoke(init, [str(csv), "--target", "target", "--out", str(out)])
    assert result.exit_code == 1
    assert "exists" in result.output
    assert out.read_text(encoding="utf-8") == "mine"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "nope"], "no column ['nope']"),
        (["--target", "mean radius"], "must hold the two labels 0 and 1"),
    ],
)
def test_init_explains_a_wrong_column_without_a_traceback(
    csv: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    """A missing or non-binary target is one message and exit code 1."""
    result = CliRunner().invoke(init, [str(csv), *args, "--out", str(tmp_path / "c.yml")])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_init_explains_an_unreadable_or_unknown_file(tmp_path: Path) -> None:
    """A missing file, a wrong extension and a broken Parquet each say what is wrong."""
    runner = CliRunner()
    missing = runner.invoke(init, [str(tmp_path / "absent.csv"), "--target", "y"])
    assert "does not exist" in missing.output
    text = tmp_path / "data.txt"
    text.write_text("a,b\n", encoding="utf-8")
    assert "unknown file type '.txt'" in runner.invoke(init, [str(text), "--target", "y"]).output
    broken = tmp_path / "data.parquet"
    broken.write_bytes(b"not parquet")
    assert (
        "cannot be read as .parquet" in runner.invoke(init, [str(broken), "--target", "y"]).output
    )


def test_check_explains_a_broken_contract(tmp_path: Path) -> None:
    """A contract that breaks the schema is reported with its field, exit code 1."""
    path = tmp_path / "contract.yml"
    path.write_text("version: 1\nname: x\n", encoding="utf-8")
    result = CliRunner().invoke(contract, ["check", str(path)])
    assert result.exit_code == 1
    assert "target: Field required" in result.output


def test_a_broken_contract_stops_any_mlplat_command_with_one_message(tmp_path: Path) -> None:
    """``mlplat pipeline validate`` on a broken MLPLAT_CONTRACT: exit 1, the problem, no trace."""
    path = tmp_path / "contract.yml"
    path.write_text("version: 1\nname: x\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "mlplat", "pipeline", "validate"], cwd=tmp_path,
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "MLPLAT_CONTRACT": str(path), "MLPLAT_HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "target: Field required" in done.stderr
    assert "Traceback" not in done.stderr
