"""Each component's ``__init__`` is its public API: every name it lists must resolve."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

COMPONENTS = (
    "features",
    "pipeline",
    "registry",
    "serving",
    "monitoring",
    "ci",
    "mlplat",
    "benchmarks",
)


@pytest.mark.parametrize("package", COMPONENTS)
def test_every_exported_name_resolves(package: str) -> None:
    """A name in ``__all__`` that does not import breaks whoever copies the folder."""
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", None)
    assert exported, f"{package} has no __all__"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ lists names that do not resolve: {missing}"


def test_importing_monitoring_stays_light() -> None:
    """``import monitoring`` loads no MLflow: the judge and configs lift out without it."""
    code = "import sys, monitoring; monitoring.CanaryJudge; print('mlflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
