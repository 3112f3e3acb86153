"""Every code citation and relative link in the docs points at something that exists.

The write-ups cite code as `` `path/to/file.py::Symbol` `` (or `` `Class.method` ``) and files as
`` `path/to/file` ``; they link each other with ``[text](path#anchor)``. This test reads every
Markdown file under ``docs/`` plus ``README.md`` and fails, listing every dangling reference at
once, when a cited path, symbol or heading anchor no longer exists — so the links cannot rot
silently when code is renamed.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]

# Backticked tokens that look like repo paths but are not: placeholders in the docs' own
# description of the citation format. Keep this list small; a real path belongs in the repo.
NOT_REPO_PATHS = frozenset(
    {
        "path/to/file.py",
        "path/to/file.py::symbol",
        "path/to/file.py::Symbol",
        "path/to/file.py::Class.method",
        "path/to/file",
    }
)

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
# A repo-relative path with an extension (or a folder ending in "/"), optionally "::symbol".
_PATH_TOKEN = re.compile(
    r"^(?P<path>(?:\.{0,2}[\w\-]+/)*[\w\-.]*[\w\-]+(?:\.[A-Za-z0-9]+|/))(?:::(?P<symbol>[A-Za-z_][\w.]*))?$"
)
_LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True)
class Reference:
    """One cited path (with an optional symbol or anchor) and where it was cited."""

    source: str
    line: int
    target: str
    symbol: str | None = None
    anchor: str | None = None


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """Return the numbered lines outside fenced code blocks (commands, folder maps)."""
    lines: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def references(text: str, source: Path) -> list[Reference]:
    """Extract the repo-path citations and relative links of one Markdown document.

    Args:
        text: The Markdown source.
        source: The document's path (links resolve relative to its folder).

    Returns:
        Every citation, with paths resolved relative to the repository root.
    """
    refs: list[Reference] = []
    where = _relative(source)
    for number, line in _prose_lines(text):
        for token in _INLINE_CODE.findall(line):
            token = token.strip()
            if token in NOT_REPO_PATHS or token.startswith("/") or "://" in token:
                continue
            match = _PATH_TOKEN.match(token)
            if match is None or "/" not in match["path"]:
                continue
            refs.append(Reference(where, number, match["path"], symbol=match["symbol"]))
        for target in _LINK.findall(_INLINE_CODE.sub("", line)):
            if re.match(r"^[a-z][a-z0-9+.\-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            resolved = (source.parent / path).resolve() if path else source.resolve()
            refs.append(Reference(where, number, _relative(resolved), anchor=anchor or None))
    return refs


def _relative(path: Path) -> str:
    resolved = path.resolve()
    try:
        return resolved.relative_to(ROOT).as_posix()
    except ValueError:
        return resolved.as_posix()


def _bound_names(body: list[ast.stmt]) -> dict[str, ast.stmt]:
    """Names a block of statements binds: defs, classes, (annotated) assignments, imports."""
    names: dict[str, ast.stmt] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        names[name.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.ImportFrom | ast.Import):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = node
        elif isinstance(node, ast.If | ast.Try):
            # `if TYPE_CHECKING:` imports and try/except fallbacks still bind module names.
            names.update(_bound_names(node.body))
            for handler in getattr(node, "handlers", []):
                names.update(_bound_names(handler.body))
            names.update(_bound_names(node.orelse))
    return names


@cache
def _module(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def symbol_defined(path: Path, symbol: str) -> bool:
    """Whether ``symbol`` (``name`` or ``Class.member``) is defined in the module at ``path``."""
    body: list[ast.stmt] = _module(path).body
    parts = symbol.split(".")
    for depth, part in enumerate(parts):
        node = _bound_names(body).get(part)
        if node is None:
            return False
        if depth < len(parts) - 1:
            if not isinstance(node, ast.ClassDef):
                return False
            body = node.body
    return True


def github_slugs(markdown: str) -> set[str]:
    """The anchors GitHub generates for the headings of a document (duplicates get -1, -2…)."""
    slugs: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in _prose_lines(markdown):
        heading = _HEADING.match(line)
        if heading is None:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading[2]).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        slugs.add(slug if count == 0 else f"{slug}-{count}")
    return slugs


def dangling(
    refs: list[Reference], root: Path = ROOT, texts: Mapping[str, str] | None = None
) -> list[str]:
    """Describe every reference whose path, symbol or anchor does not exist.

    Args:
        refs: The references to check.
        root: The repository root the paths are relative to.
        texts: Markdown sources by repo-relative name, for documents not on disk (tests).

    Returns:
        One line per dangling reference, ``source:line: what is wrong``.
    """
    texts = texts or {}
    problems: list[str] = []
    for ref in refs:
        where = f"{ref.source}:{ref.line}"
        path = root / ref.target
        if ref.target in texts:
            if ref.anchor is not None and ref.anchor not in github_slugs(texts[ref.target]):
                problems.append(f"{where}: `{ref.target}` has no heading #{ref.anchor}")
        elif not path.exists():
            problems.append(f"{where}: `{ref.target}` does not exist")
        elif ref.symbol is not None:
            if path.suffix != ".py":
                problems.append(f"{where}: `{ref.target}` is not a Python module (::{ref.symbol})")
            elif not symbol_defined(path, ref.symbol):
                problems.append(f"{where}: `{ref.target}` defines no `{ref.symbol}`")
        elif ref.anchor is not None:
            if path.suffix != ".md" or path.is_dir():
                problems.append(f"{where}: anchor #{ref.anchor} on a non-Markdown `{ref.target}`")
            elif ref.anchor not in github_slugs(path.read_text(encoding="utf-8")):
                problems.append(f"{where}: `{ref.target}` has no heading #{ref.anchor}")
    return problems


def documents(root: Path = ROOT) -> list[Path]:
    """Every Markdown file the link check covers: ``docs/**.md`` and ``README.md``."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def _check(text: str, name: str = "docs/synthetic.md") -> list[str]:
    return dangling(references(text, ROOT / name), texts={name: text})


def test_every_cited_path_symbol_and_anchor_in_the_docs_exists() -> None:
    """Every `path::symbol`, file path and relative link in the docs and README resolves."""
    refs = [ref for doc in documents() for ref in references(doc.read_text("utf-8"), doc)]
    assert len(refs) > 0, "no references found: the extractor is broken"
    problems = dangling(refs)
    assert not problems, "dangling references in the docs:\n" + "\n".join(problems)


def test_a_missing_file_is_reported() -> None:
    """A cited path that does not exist is a dangling reference."""
    problems = _check("See `pipeline/no_such_module.py::decide`.\n")
    assert problems == ["docs/synthetic.md:1: `pipeline/no_such_module.py` does not exist"]


def test_a_missing_symbol_is_reported() -> None:
    """A symbol the module does not define is dangling, top-level or as Class.member."""
    text = (
        "`pipeline/gates.py::no_such_gate` and\n`monitoring/judge/judge.py::CanaryJudge.no_such`\n"
    )
    assert _check(text) == [
        "docs/synthetic.md:1: `pipeline/gates.py` defines no `no_such_gate`",
        "docs/synthetic.md:2: `monitoring/judge/judge.py` defines no `CanaryJudge.no_such`",
    ]


def test_a_missing_heading_anchor_is_reported() -> None:
    """A relative link to a heading that does not exist is dangling."""
    problems = _check("[runbook](runbook.md#no-such-alert)\n")
    assert problems == ["docs/synthetic.md:1: `docs/runbook.md` has no heading #no-such-alert"]


def test_every_dangling_reference_is_reported_at_once() -> None:
    """The check lists all problems, not just the first, so one run fixes them all."""
    problems = _check("`a/b.py` `c/d.yml` [x](missing.md)\n")
    assert len(problems) == 3


def test_existing_functions_classes_members_and_constants_resolve() -> None:
    """Functions, classes, methods, enum members and annotated constants all count as defined."""
    text = (
        "`pipeline/gates.py::decide` `pipeline/gates.py::paired_bootstrap_auc_diff` "
        "`monitoring/judge/judge.py::CanaryJudge.evaluate` "
        "`monitoring/judge/results.py::SignalName.LATENCY` "
        "`interfaces/metric_names.py::EIGHT_METRICS` `ci/__init__.py::run_pipeline` "
        "`.github/workflows/ml-pipeline.yml` [adr](adr/README.md) [q](#top)\n# Top\n"
    )
    assert _check(text) == []


def test_urls_commands_globs_and_placeholders_are_not_references() -> None:
    """Only things that look like repo paths are checked; fenced code blocks are skipped."""
    text = (
        "`https://example.org/a.py` `mlplat bench judge --out bench-results/x.json` "
        "`tests/unit/*` `path/to/file.py::Symbol` `/tmp/x.json` [site](https://example.org)\n"
        "```\nno/such/file.py\n```\n"
    )
    assert references(text, ROOT / "docs/synthetic.md") == []


def test_heading_slugs_follow_github_rules() -> None:
    """Lowercase, spaces to hyphens, punctuation dropped, duplicates numbered."""
    slugs = github_slugs("# Rollback, retrain or accept\n## `Q2`: the judge\n## Q2: the judge\n")
    assert slugs == {"rollback-retrain-or-accept", "q2-the-judge", "q2-the-judge-1"}
