"""The loop that checks every judge after every simulated window, over every scenario.

Every judge sees the same simulated canaries (:class:`~benchmarks.judge.world.World`), is
checked after every window, and a canary's first terminal verdict ends it for that judge; the
outcome records which verdict and when. One seed makes every figure reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from benchmarks.judge.batch_judges import BatchJudge, OurBatchJudge, default_judges
from benchmarks.judge.scenarios import Scenario, SimulationParams
from benchmarks.judge.world import World
from monitoring.judge import VerdictCode

__all__ = ["JudgeOutcome", "run_simulation"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class JudgeOutcome:
    """How each simulated canary ended under one judge.

    Attributes:
        verdict: Terminal verdict code per canary (CONTINUE if none within its windows).
        window: Window of the terminal verdict (0 if none).
    """

    verdict: IntArray
    window: IntArray


def _simulate_scenario(
    params: SimulationParams,
    scenario: Scenario,
    judges: Sequence[BatchJudge],
    rng: np.random.Generator,
) -> dict[str, JudgeOutcome]:
    runs = params.runs
    world = World(params, scenario, rng)
    outcomes = {
        j.name: (np.full(runs, VerdictCode.CONTINUE, dtype=np.int64), np.zeros(runs, np.int64))
        for j in judges
    }
    for judge in judges:
        judge.start(runs, scenario.traffic)
    last = min(params.windows, max(j.max_windows for j in judges))
    for window in range(1, last + 1):
        active = [
            j
            for j in judges
            if window <= j.max_windows and np.any(outcomes[j.name][0] == VerdictCode.CONTINUE)
        ]
        if not active:
            break
        peers = any(not isinstance(j, OurBatchJudge) for j in active)
        data = world.window(window, peers=peers)
        for judge in active:
            codes = judge.judge_window(data)
            final, at = outcomes[judge.name]
            newly = (final == VerdictCode.CONTINUE) & (codes != VerdictCode.CONTINUE)
            final[newly] = codes[newly]
            at[newly] = window
    return {name: JudgeOutcome(verdict=v, window=w) for name, (v, w) in outcomes.items()}


def run_simulation(
    params: SimulationParams,
    judges: Sequence[BatchJudge] | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, JudgeOutcome]]:
    """Run every judge on every scenario, on the same simulated traffic.

    Args:
        params: The simulation's parameters and seed.
        judges: The judges; :func:`default_judges` if ``None``.
        progress: Called with each scenario's name as it starts.

    Returns:
        ``{judge name: {scenario name: outcome}}``.
    """
    chosen = list(judges) if judges is not None else default_judges(params)
    names = [j.name for j in chosen]
    if len(set(names)) != len(names):
        raise ValueError(f"judge names must be unique, got {names}")
    seeds = np.random.SeedSequence(params.seed).spawn(len(params.scenarios))
    results: dict[str, dict[str, JudgeOutcome]] = {name: {} for name in names}
    for scenario, seed in zip(params.scenarios, seeds, strict=True):
        if progress is not None:
            progress(scenario.name)
        outcomes = _simulate_scenario(params, scenario, chosen, np.random.default_rng(seed))
        for name, outcome in outcomes.items():
            results[name][scenario.name] = outcome
    return results
