"""No batching penalty at low load: a request that finds the queue empty goes to the model at once.

"At once" is pinned without a clock: the batcher may yield a few event-loop turns (to let requests
already on the socket join), but it must not set a timer, which is what waiting for company would
take. The loop below records every timer scheduled while one request is served.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from serving.batcher import MicroBatcher
from serving.reconcile import SMOKE_ROW

pytestmark = pytest.mark.unit


class _TimerRecordingLoop(asyncio.SelectorEventLoop):
    """An event loop that notes each timer it is asked for (and then sets it as usual)."""

    def __init__(self) -> None:
        super().__init__()
        self.timers: list[float] = []

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        self.timers.append(when - self.time())
        return super().call_at(when, callback, *args, **kw)


class _Model:
    """Scores every row 0.25 and records the size of each call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict_proba(self, X: pd.DataFrame) -> Any:  # noqa: N803
        self.calls.append(len(X))
        return np.tile([0.75, 0.25], (len(X), 1))


def _serve_one_request(window_seconds: float) -> tuple[list[float], list[int], list[float]]:
    """One request on an idle batcher: the timers set, the model's call sizes, the answer."""
    loop = _TimerRecordingLoop()
    model = _Model()

    async def one_request() -> list[float]:
        batcher = MicroBatcher(window_seconds=window_seconds)
        batcher.start()
        try:
            return await batcher.score(model, [SMOKE_ROW])
        finally:
            await batcher.stop()

    try:
        answer = loop.run_until_complete(one_request())
    finally:
        loop.close()
    return loop.timers, model.calls, answer


def test_a_request_on_an_idle_batcher_goes_to_the_model_without_waiting() -> None:
    """Default settings: no timer is set, the model is called once with this request's row."""
    timers, calls, answer = _serve_one_request(window_seconds=0.0)
    assert timers == []
    assert calls == [1]
    assert answer == [0.25]


def test_a_batching_window_would_show_up_as_a_timer() -> None:
    """The check can fail: with a 5 ms window the idle batcher does wait, on a timer."""
    timers, calls, answer = _serve_one_request(window_seconds=0.005)
    assert timers
    assert max(timers) == pytest.approx(0.005, abs=0.004)
    assert (calls, answer) == ([1], [0.25])
