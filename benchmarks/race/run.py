"""``mlplat bench registry-race``: the race on a fresh stack of one backend, as a figures file."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from benchmarks.race.harness import RaceConfig, run_race, stall_failpoints
from benchmarks.race.stack import DEFAULT_POSTGRES_URL, race_stack
from benchmarks.report import machine

__all__ = ["run_race_benchmark"]


def run_race_benchmark(
    backend: str,
    rounds: int,
    *,
    workers: int = 4,
    max_stall_s: float = 0.02,
    seed: int = 0,
    postgres_url: str = DEFAULT_POSTGRES_URL,
) -> dict[str, Any]:
    """Race on a fresh stack of ``backend`` and return the figures for the JSON file."""
    with (
        tempfile.TemporaryDirectory(prefix="mlplat-race-") as tmp,
        race_stack(backend, Path(tmp), postgres_url) as (tracking_uri, events_url, stack),
    ):
        config = RaceConfig(
            tracking_uri=tracking_uri,
            events_url=events_url,
            home=Path(tmp),
            rounds=rounds,
            workers=workers,
            max_stall_s=max_stall_s,
            seed=seed,
        )
        result = run_race(config)
    return {
        "benchmark": "registry-race",
        "backend": backend,
        "stack": stack,
        "command": (
            f"mlplat bench registry-race --backend {backend} --rounds {rounds} "
            f"--workers {workers} --max-stall {max_stall_s:g} --seed {seed}"
        ),
        "failpoints": stall_failpoints(max_stall_s),
        **result.to_dict(),
        "machine": machine(),
    }
