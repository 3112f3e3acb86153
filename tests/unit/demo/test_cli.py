"""``mlplat demo`` on a contract its generated world does not produce: one line, exit 1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from demo.cli import demo
from features import CONTRACT_ENV, current

pytestmark = pytest.mark.unit

OTHER_CONTRACT = """
version: 1
name: tumours
target: {column: target, positive: benign}
features:
  - {name: mean_radius, kind: float, minimum: 0, maximum: 40, unit: mm, description: radius}
example: {mean_radius: 12.5}
"""


@pytest.fixture
def other_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """MLPLAT_CONTRACT names a one-feature contract for this test only."""
    path = tmp_path / "contract.yml"
    path.write_text(OTHER_CONTRACT, encoding="utf-8")
    monkeypatch.setenv(CONTRACT_ENV, str(path))
    current.cache_clear()
    yield path
    monkeypatch.delenv(CONTRACT_ENV)
    current.cache_clear()


def test_the_demo_refuses_a_contract_other_than_the_credit_example(
    other_contract: Path, tmp_path: Path
) -> None:
    """The demo names the contract it cannot run on and exits 1 before starting anything."""
    out = tmp_path / "demo-output"
    done = CliRunner().invoke(demo, ["--out", str(out)])
    assert done.exit_code == 1
    assert "runs the credit example only" in done.output
    assert str(other_contract) in done.output
    assert not out.exists()
