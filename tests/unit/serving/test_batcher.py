"""The micro-batcher: concurrent rows share one model call, results go back to their owners."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features import FEATURE_NAMES
from serving.batcher import MicroBatcher, OverloadedError, build_frame
from serving.reconcile import SMOKE_ROW

pytestmark = pytest.mark.unit


class EchoModel:
    """Scores a row by its age / 100, records batch sizes, can hold the first call."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def predict_proba(self, X: pd.DataFrame) -> Any:  # noqa: N803
        self.entered.set()
        self.gate.wait(timeout=10)
        self.batch_sizes.append(len(X))
        p = X["age"].to_numpy(dtype=float) / 100.0
        return np.column_stack([1 - p, p])


class FailingModel:
    def predict_proba(self, X: pd.DataFrame) -> Any:  # noqa: N803
        raise RuntimeError("boom")


def _row(age: int) -> list[Any]:
    values = dict(zip(FEATURE_NAMES, SMOKE_ROW, strict=True))
    values["age"] = age
    return [values[name] for name in FEATURE_NAMES]


def test_build_frame_keeps_contract_order_and_dtypes_and_turns_none_into_nan() -> None:
    """Rows become a frame in contract order and dtypes, with None as NaN."""
    row = _row(30)
    row[FEATURE_NAMES.index("debt_to_income")] = None
    frame = build_frame([row, _row(40)])
    assert list(frame.columns) == list(FEATURE_NAMES)
    assert frame["age"].dtype == np.int64
    assert frame["segment"].dtype == object
    assert np.isnan(frame["debt_to_income"].iloc[0])


async def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


async def _score_all(batcher: MicroBatcher, model: Any, ages: list[int]) -> list[list[float]]:
    return list(await asyncio.gather(*(batcher.score(model, [_row(a)]) for a in ages)))


def test_rows_waiting_while_the_model_is_busy_form_one_batch() -> None:
    """Rows queued while the model is busy are scored as one batch, each getting its own score."""
    model = EchoModel()

    async def scenario() -> list[list[float]]:
        batcher = MicroBatcher(max_rows=64)
        batcher.start()
        model.gate.clear()  # hold the first call so the others queue up behind it
        first = asyncio.ensure_future(batcher.score(model, [_row(20)]))
        await _until(model.entered.is_set)
        rest = asyncio.ensure_future(_score_all(batcher, model, list(range(21, 41))))
        await _until(lambda: batcher.queued_rows == 20)
        model.gate.set()
        results = [await first, *await rest]
        await batcher.stop()
        return results

    results = asyncio.run(scenario())
    assert [r[0] for r in results] == pytest.approx([a / 100 for a in range(20, 41)])
    assert model.batch_sizes == [1, 20]


def test_max_rows_caps_a_batch() -> None:
    """No batch exceeds max_rows, and every row is scored."""
    model = EchoModel()

    async def scenario() -> None:
        batcher = MicroBatcher(max_rows=8)
        batcher.start()
        model.gate.clear()
        pending = asyncio.ensure_future(_score_all(batcher, model, list(range(20, 45))))
        await _until(model.entered.is_set)
        model.gate.set()
        await pending
        await batcher.stop()

    asyncio.run(scenario())
    assert max(model.batch_sizes) <= 8
    assert sum(model.batch_sizes) == 25


def test_a_failing_model_fails_only_its_own_rows() -> None:
    """A model that raises fails only its own callers; another model's rows are scored."""
    good = EchoModel()

    async def scenario() -> tuple[Any, Any]:
        batcher = MicroBatcher()
        batcher.start()
        results = await asyncio.gather(
            batcher.score(FailingModel(), [_row(30)]),
            batcher.score(good, [_row(50)]),
            return_exceptions=True,
        )
        await batcher.stop()
        return results[0], results[1]

    failed, scored = asyncio.run(scenario())
    assert isinstance(failed, RuntimeError)
    assert scored == [0.5]


def test_a_full_queue_refuses_new_rows_at_once() -> None:
    """With the queue full, new rows are refused at once with OverloadedError."""
    model = EchoModel()

    async def scenario() -> None:
        batcher = MicroBatcher(max_queue_rows=4)
        batcher.start()
        model.gate.clear()
        busy = asyncio.ensure_future(batcher.score(model, [_row(20)]))
        await _until(model.entered.is_set)
        queued = asyncio.ensure_future(batcher.score(model, [_row(21)] * 4))
        await _until(lambda: batcher.queued_rows == 4)
        with pytest.raises(OverloadedError):
            await batcher.score(model, [_row(22)])
        model.gate.set()
        await asyncio.gather(busy, queued)
        await batcher.stop()

    asyncio.run(scenario())


def test_on_batch_reports_rows_scored() -> None:
    """The on_batch callback gets each batch's row count and the rows still queued."""
    seen: list[tuple[int, int]] = []

    async def scenario() -> None:
        batcher = MicroBatcher(on_batch=lambda rows, queued: seen.append((rows, queued)))
        batcher.start()
        await batcher.score(EchoModel(), [_row(20), _row(30)])
        await batcher.stop()

    asyncio.run(scenario())
    assert seen == [(2, 0)]
