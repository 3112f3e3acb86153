"""Every component imports only what ``pyproject.toml``'s ``[tool.mlplat.components]`` allows."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
ALLOWED: dict[str, list[str]] = PYPROJECT["tool"]["mlplat"]["components"]


def imports_of(path: Path) -> Iterator[tuple[str, int]]:
    """Every absolute import in ``path`` — top-level, in functions and under TYPE_CHECKING."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno


def crossings(component: str) -> list[str]:
    """``file:line imports X`` for each import of another component that the table forbids."""
    allowed = {component, *ALLOWED[component]}
    found = []
    for path in sorted((ROOT / component).rglob("*.py")):
        for module, line in imports_of(path):
            top = module.split(".")[0]
            if top in ALLOWED and top not in allowed:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


def test_the_table_names_every_package_that_ships() -> None:
    """Each package the wheel ships is a component of the table, and each component exists."""
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    shipped = {pattern.rstrip("*") for pattern in include}
    assert shipped == set(ALLOWED)
    assert all((ROOT / name / "__init__.py").is_file() for name in ALLOWED)


def test_the_table_has_no_cycle() -> None:
    """Dependencies point one way: no component reaches itself through the table."""

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        stack = list(ALLOWED[start])
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.add(name)
                stack.extend(ALLOWED[name])
        return seen

    assert [name for name in ALLOWED if name in reachable(name)] == []


@pytest.mark.parametrize("component", sorted(ALLOWED))
def test_a_component_imports_only_what_the_table_allows(component: str) -> None:
    """An import of a component the table does not list is named with its file and line."""
    assert crossings(component) == []


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    """A lazy import counts: hiding a dependency in a function does not get it past the test."""
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from serving.app import create_app\n", encoding="utf-8")
    assert ("serving.app", 2) in list(imports_of(source))
