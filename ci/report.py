"""Progress and summary output for the CI pipeline: one line per stage, a table at the end.

Progress goes to stderr so ``--json`` can keep stdout for the machine-readable summary.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

_MARKS = {"running": "[cyan]…[/]", "passed": "[green]✓[/]", "failed": "[red]✗[/]", "skipped": "-"}


class ConsoleReporter:
    """Prints one line per finished stage with its duration, to stderr."""

    def __init__(self, console: Console | None = None, *, quiet: bool = False) -> None:
        self._console = console or Console(stderr=True, highlight=False)
        self._quiet = quiet
        self._started: dict[str, float] = {}

    def __call__(self, stage: str, status: str, detail: str = "") -> None:
        """Print the transition (running stages only start the clock); a ``note`` is a line."""
        if status == "running":
            self._started[stage] = time.perf_counter()
            return
        if self._quiet:
            return
        if status == "note":
            self._console.print(f" [yellow]![/] {stage:<10}         {detail}")
            return
        elapsed = time.perf_counter() - self._started.pop(stage, time.perf_counter())
        mark = _MARKS.get(status, status)
        suffix = f"  {detail}" if detail else ""
        self._console.print(f" {mark} {stage:<10} {elapsed:6.1f}s{suffix}")


def summary_table(rows: list[tuple[str, str]], title: str) -> Table:
    """Build the closing key/value table of a run."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table
