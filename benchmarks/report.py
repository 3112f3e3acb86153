"""What every benchmark's report has in common: the machine, goals, tables and the JSON file.

A benchmark returns its figures as a dict and writes it with :func:`write_result`; the
write-ups quote that file. Every file carries ``benchmark`` (its name), ``command`` (what made
it) and ``machine`` (:func:`machine`); a benchmark with goals reports each one with a ``met``
flag next to the figures it was judged on (:func:`goal`). Tables for the terminal and the
write-ups come from :func:`markdown_table` or :func:`text_table`.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from interfaces.files import write_json_atomically

__all__ = [
    "BenchmarkError",
    "Column",
    "goal",
    "machine",
    "markdown_table",
    "text_table",
    "verdict",
    "write_result",
]


class BenchmarkError(Exception):
    """A benchmark cannot run as asked; the message names the argument, tool or server."""


def machine(*distributions: str) -> dict[str, Any]:
    """Describe the machine the figures come from.

    Args:
        distributions: Installed packages whose versions matter to the figures (``"numpy"``).

    Returns:
        ``cpus``, ``python`` and ``platform``, then one key per distribution with its version.
    """
    described: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    described.update({name: version(name) for name in distributions})
    return described


def goal(met: bool, **figures: Any) -> dict[str, Any]:
    """One goal's verdict and the figures it was judged on: ``{**figures, "met": met}``."""
    return {**figures, "met": bool(met)}


def verdict(met: bool) -> str:
    """How a table prints a goal: ``met`` or ``MISSED``."""
    return "met" if met else "MISSED"


def write_result(result: Mapping[str, Any], out: Path) -> Path:
    """Write a benchmark's figures to ``out`` as JSON, atomically (parents are created)."""
    return write_json_atomically(out, result)


def markdown_table(
    header: Sequence[str], rows: Iterable[Sequence[object]], *, text_columns: int = 1
) -> str:
    """A Markdown table; the first ``text_columns`` columns are left-aligned, the rest right."""
    rule = ["---" if i < text_columns else "---:" for i in range(len(header))]
    lines = [_markdown_row(header), _markdown_row(rule)]
    lines += [_markdown_row([str(cell) for cell in row]) for row in rows]
    return "\n".join(lines)


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


@dataclass(frozen=True)
class Column:
    """A column of a plain-text table.

    Attributes:
        title: The heading.
        width: Characters; text longer than that is cut in a left-aligned column.
        left: Left-align (names) rather than right-align (numbers).
    """

    title: str
    width: int
    left: bool = False

    def cell(self, text: str) -> str:
        """``text`` padded (and, left-aligned, cut) to the column's width."""
        return f"{text[: self.width]:<{self.width}}" if self.left else f"{text:>{self.width}}"


def text_table(columns: Sequence[Column], rows: Iterable[Sequence[str]]) -> str:
    """A fixed-width table for a terminal: a heading line, a rule, one line per row."""
    header = " ".join(column.cell(column.title) for column in columns)
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(" ".join(column.cell(text) for column, text in zip(columns, row, strict=True)))
    return "\n".join(lines)
