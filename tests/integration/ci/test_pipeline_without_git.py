"""``mlplat pipeline run`` where git is not installed, as in the runtime image.

The image holds no checkout and no git executable. The run must still say which code made it (the
``MLPLAT_CODE_VERSION`` the image build sets from its ``GIT_COMMIT`` argument) and, without that,
record ``unknown``; either way without GitPython's "Bad git executable" warnings, which MLflow's
git probe used to print three times per command.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from pipeline.tracking import CODE_VERSION_ENV, UNKNOWN_CODE_VERSION

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GIT_NOISE = re.compile(r"git executable|GitPython|import Git|GIT_PYTHON", re.IGNORECASE)


def path_without_git(bin_dir: Path) -> str:
    """A PATH holding every program of this process's PATH except git (links in ``bin_dir``)."""
    bin_dir.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        folder = Path(directory)
        if not directory or not folder.is_dir():
            continue
        for program in folder.iterdir():
            link = bin_dir / program.name
            if program.name.startswith("git") or link.exists() or link.is_symlink():
                continue
            link.symlink_to(program)
    return str(bin_dir)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh local store, no git on PATH, and no GitPython setting inherited."""
    home = tmp_path_factory.mktemp("no-git")
    (home / "small.yml").write_text("data:\n  n_rows: 6000\n")
    path = path_without_git(home / "bin")
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLPLAT_", "MLFLOW_", "GIT_"))
    }
    environment.update(PATH=path, MLPLAT_HOME=str(home / "store"), MLPLAT_ACTOR="pytest")
    return environment


def run(env: dict[str, str], seed: int) -> tuple[dict[str, object], str]:
    """``mlplat pipeline run`` once; its JSON summary and its stderr."""
    config = Path(env["MLPLAT_HOME"]).parent / "small.yml"
    done = subprocess.run(
        [sys.executable, "-m", "mlplat", "pipeline", "run", "--json", "--config", str(config),
         "--seed", str(seed)],
        env=env, capture_output=True, text=True, timeout=300, check=False, cwd=config.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary: dict[str, object] = json.loads(done.stdout)
    return summary, done.stderr


def recorded(env: dict[str, str], summary: dict[str, object]) -> tuple[str, str]:
    """The code version on the MLflow run and on the registered version."""
    store = f"sqlite:///{Path(env['MLPLAT_HOME']) / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    run_tags = client.get_run(str(summary["run_id"])).data.tags
    version = client.get_model_version("credit-default", str(summary["model_version"]))
    return run_tags["mlplat.code_version"], version.tags["mlplat.code_version"]


def test_without_git_or_a_build_version_the_run_records_unknown_and_warns_nothing(
    env: dict[str, str],
) -> None:
    """No git, no MLPLAT_CODE_VERSION: "unknown" on the run and the version, no git warning."""
    assert subprocess.run(["sh", "-c", "command -v git"], env=env, check=False).returncode != 0
    summary, stderr = run(env, seed=42)
    assert summary["outcome"] == "registered"
    assert not GIT_NOISE.search(stderr), stderr
    assert recorded(env, summary) == (UNKNOWN_CODE_VERSION, UNKNOWN_CODE_VERSION)


def test_the_build_time_code_version_is_recorded_quietly(env: dict[str, str]) -> None:
    """MLPLAT_CODE_VERSION, as the image sets it, is the run's and the version's code version."""
    summary, stderr = run({**env, CODE_VERSION_ENV: "0123abcd"}, seed=43)
    assert summary["outcome"] == "registered"
    assert not GIT_NOISE.search(stderr), stderr
    assert recorded(env, summary) == ("0123abcd", "0123abcd")
