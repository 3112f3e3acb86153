"""A component copied with only the paths ``docs/reuse.md`` names passes its tests on its own.

For each component the guide lists under "Lift it", the test copies exactly the paths of its
``- **Copy:**`` line and its ``- **Tests that come along:**`` line into an empty folder, hides
this checkout from the interpreter (the editable install's finder is removed, so an import of a
folder that was not copied fails as it would in the reader's project), and runs those tests.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "reuse.md"
COMPONENTS = ("features", "interfaces", "pipeline", "registry", "serving", "monitoring", "ci")

# Hides this checkout: the editable install maps every component to ROOT through a meta-path
# finder, which would let a folder that was not copied import from here silently.
ISOLATE = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path
                    if not getattr(f, "__module__", type(f).__module__).startswith("__editable__")]
sys.path[:] = [p for p in sys.path if p and p.rstrip("/") != {root!r}]
sys.path.insert(0, {here!r})
"""


def section(title: str) -> str:
    """The text of the guide's section whose heading starts with ``title``."""
    parts = re.split(r"^## ", GUIDE.read_text(encoding="utf-8"), flags=re.M)
    found = [part for part in parts if part.startswith(title)]
    assert found, f"docs/reuse.md has no section '## {title}'"
    return found[0]


def listed(text: str, label: str) -> list[str]:
    """The backquoted paths on the ``- **label:**`` line (continued onto indented lines)."""
    match = re.search(rf"^- \*\*{label}:\*\*(.*(?:\n  .*)*)", text, flags=re.M)
    assert match, f"no '- **{label}:**' line"
    return re.findall(r"`([^`]+)`", match.group(1))


def copy_paths(paths: list[str], into: Path) -> None:
    """Copy each file or folder, and the ``__init__.py`` of every test package above it."""
    for name in paths:
        source = ROOT / name
        assert source.exists(), f"docs/reuse.md names {name}, which does not exist"
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
        for parent in Path(name).parents:
            init = ROOT / parent / "__init__.py"
            if parent.parts and parent.parts[0] == "tests" and init.exists():
                (into / parent).mkdir(parents=True, exist_ok=True)
                shutil.copy2(init, into / parent / "__init__.py")


def run_isolated(here: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in ``here`` with this checkout hidden (see :data:`ISOLATE`)."""
    prelude = ISOLATE.format(root=str(ROOT), here=str(here))
    return subprocess.run(
        [sys.executable, "-c", prelude + code], cwd=here, capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("title", ["`serving/`", "The canary judge alone"])
def test_a_lifted_component_passes_its_tests_with_only_the_listed_folders(
    title: str, tmp_path: Path
) -> None:
    """Copy what the guide says, nothing more: its tests pass, and the rest is not importable."""
    text = section(title)
    copied, tests = listed(text, "Copy"), listed(text, "Tests that come along")
    copy_paths([*copied, *tests], tmp_path)
    left_out = [c for c in COMPONENTS if not any(p.split("/")[0] == c for p in copied)]
    probe = "\n".join(
        f"try:\n    import {name}\n    print('leak: {name}')\nexcept ModuleNotFoundError:\n    pass"
        for name in left_out
    )
    isolation = run_isolated(tmp_path, probe)
    assert isolation.returncode == 0, isolation.stderr
    assert "leak" not in isolation.stdout, f"importable without being copied: {isolation.stdout}"

    args = ["-q", "-p", "no:cacheprovider", *tests]
    done = run_isolated(tmp_path, f"import pytest\nsys.exit(pytest.main({args!r}))")
    tail = (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0, f"the lifted tests failed in {tmp_path}:\n{tail}"
    assert " passed" in done.stdout
