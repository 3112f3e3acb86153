"""The demo's live display: a status panel at the bottom, milestones scrolling above it.

:class:`DemoProgress` is the scenarios' :class:`~demo.verdicts.Narrator`. The panel is
redrawn a few times a second from the latest state (the current scenario and step, the traffic
rates the world's sampler measured, the last verdict); ``say`` prints a line that stays. On a
console that is not a terminal (CI logs, ``--json`` piped away) only the lines are printed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from demo.samples import TrafficStats

__all__ = ["DemoProgress"]


class DemoProgress:
    """Live status of a demo run.

    Args:
        console: Where to draw (stderr with ``--json``).
        stats: Returns the latest traffic rates.
        started: ``time.monotonic()`` when the demo started.
    """

    def __init__(self, console: Console, stats: Callable[[], TrafficStats], started: float) -> None:
        self.console = console
        self._stats = stats
        self._started = started
        self._lock = threading.Lock()
        self._scenario = "starting"
        self._step = ""
        self._verdict = "none yet"
        self._live: Live | None = None

    def __enter__(self) -> Self:
        if self.console.is_terminal:
            self._live = Live(
                get_renderable=self._render, console=self.console, refresh_per_second=4,
                transient=True, redirect_stdout=False, redirect_stderr=False,
            )  # fmt: skip
            self._live.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def phase(self, title: str) -> None:
        """A new scenario (or setup phase) begins."""
        with self._lock:
            self._scenario, self._step = title, ""
        self.console.rule(f"[bold]{title}[/]", align="left")

    def step(self, text: str) -> None:
        """The step in progress (shown in the panel only)."""
        with self._lock:
            self._step = text

    def say(self, text: str) -> None:
        """A line that stays in the scrollback."""
        self.console.print(text, highlight=False)

    def verdict(self, text: str) -> None:
        """The latest verdict, kept in the panel."""
        with self._lock:
            self._verdict = text

    def _render(self) -> RenderableType:
        with self._lock:
            scenario, step, verdict = self._scenario, self._step, self._verdict
        stats = self._stats()
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        grid.add_row("now", Text(scenario))
        grid.add_row("step", Text(step[:300]))
        grid.add_row(
            "traffic",
            Text(
                f"{stats.requests_per_s:5.0f} req/s  canary share {stats.canary_share:4.0%}  "
                f"labels {stats.labels_per_s:4.0f}/s  scored {stats.total:,.0f}  "
                f"5xx {stats.server_errors:,.0f}"
            ),
        )
        grid.add_row("last verdict", Text(verdict))
        elapsed = time.monotonic() - self._started
        return Group(Panel(grid, title=f"mlplat demo — {elapsed:5.1f} s", title_align="left"))
