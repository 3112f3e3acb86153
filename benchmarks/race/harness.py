"""The registry race: several OS processes moving one model's aliases at once, checked every round.

Each round the coordinator draws one move per worker process (promote, rollback, canary, weight,
reject), the workers make them concurrently through :class:`registry.ModelRegistry` with random
stalls injected at every step (:mod:`registry.failpoints`), and when all have answered the
coordinator checks the promise the registry makes:

* with no move pending, MLflow's aliases, canary weight and previous-champion tag equal the
  state of the latest applied event;
* no event of the round is an ``external`` one (nothing outside mlplat moved anything, so one
  would be a false attribution to "unknown (outside mlplat)");
* no applied event moves an alias from a version to the same version ("rollback 2->2");
* reconcile never finished or aborted a move of the round unless a worker's move failed after
  its pending event (no worker dies in the race, so anything else means reconcile acted on a
  live owner's move in flight);
* a move left pending by a failed MLflow call is completed by a reconcile without any of the
  above; and no worker hit an unexpected exception (a crash inside MLflow included).

Any violation is a *divergence*, recorded with the round, the states and the events
(:func:`benchmarks.race.checks.check_round`). The same driver serves the integration test (a few
rounds) and ``mlplat bench registry-race`` (hundreds, :mod:`benchmarks.race.run`).
"""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from benchmarks.race.checks import check_round
from registry import (
    ModelRegistry,
    RegistryError,
    RegistrySettings,
    ensure_experiment,
    open_registry,
)

__all__ = ["RaceConfig", "RaceResult", "run_race", "stall_failpoints"]

_STALL_POINTS = (
    "registry.after_lock",
    "registry.after_reconcile",
    "registry.after_begin",
    "registry.before_alias_write",
    "registry.after_alias_write",
    "registry.before_mark_applied",
    "reconcile.after_read_log",
)
_MIN_USABLE_VERSIONS = 4
_ROUND_DEADLINE_S = 120.0


def stall_failpoints(max_stall_s: float) -> str:
    """A failpoint spec that stalls a random time up to ``max_stall_s`` at every step."""
    if max_stall_s <= 0:
        return ""
    return ";".join(f"{name}=rsleep({max_stall_s:g})" for name in _STALL_POINTS)


@dataclass(frozen=True)
class RaceConfig:
    """What to race, and where.

    Attributes:
        tracking_uri: MLflow tracking/registry URI (``sqlite:///…`` or ``http://…``).
        events_url: Event database URL (SQLite or PostgreSQL).
        home: Directory for artifacts and worker files.
        rounds: Rounds to run.
        workers: Concurrent worker processes (one move each per round).
        max_stall_s: Upper bound of the random stall injected at each step of a move.
        seed: Seed of the move draws.
        model_name: The registered model raced on.
    """

    tracking_uri: str
    events_url: str
    home: Path
    rounds: int = 20
    workers: int = 4
    max_stall_s: float = 0.05
    seed: int = 0
    model_name: str = "race-model"


@dataclass
class RaceResult:
    """Figures of one race, as written to the benchmark JSON."""

    rounds: int
    workers: int
    max_stall_s: float
    divergences: list[dict[str, Any]] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    events_written: int = 0
    round_seconds: list[float] = field(default_factory=list)
    setup_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures, with round-time percentiles."""
        times = sorted(self.round_seconds)

        def pct(q: float) -> float:
            return round(times[min(len(times) - 1, int(q * len(times)))], 4) if times else 0.0

        payload = asdict(self)
        payload.pop("round_seconds")
        payload["divergence_count"] = len(self.divergences)
        payload["round_seconds_p50"] = pct(0.5)
        payload["round_seconds_p99"] = pct(0.99)
        payload["round_seconds_max"] = round(times[-1], 4) if times else 0.0
        payload["total_seconds"] = round(sum(times), 2)
        return payload


def _settings(config: RaceConfig, actor: str, failpoints: str) -> RegistrySettings:
    return RegistrySettings(
        home=config.home,
        tracking_uri=config.tracking_uri,
        events_url=config.events_url,
        model_name=config.model_name,
        experiment_name="registry-race",
        actor=actor,
        failpoints=failpoints,
        lock_lease_seconds=15.0,
        lock_timeout_seconds=_ROUND_DEADLINE_S / 2,
    )


def _worker(config: RaceConfig, index: int, tasks: Queue[Any], results: Queue[Any]) -> None:
    """One racing process: make each move it is sent, answer with its outcome."""
    failpoints = stall_failpoints(config.max_stall_s)
    registry = open_registry(_settings(config, f"racer-{index}", failpoints))
    results.put(("ready", index))
    while True:
        task = tasks.get()
        if task is None:
            return
        op, args = task
        try:
            if op == "promote":
                done = registry.promote(args[0], reason="race")
            elif op == "rollback":
                done = registry.rollback(reason="race")
            elif op == "canary":
                done = registry.start_canary(args[0], args[1], reason="race")
            elif op == "weight":
                done = registry.set_canary_weight(args[0], reason="race")
            else:
                done = registry.reject(args[0], reason="race")
            outcome = "moved" if done is not None else "no-op"
        except RegistryError as exc:
            outcome = f"refused:{type(exc).__name__}"
        except Exception as exc:  # reported as a failure of the round, never swallowed
            outcome = f"error:{type(exc).__name__}:{str(exc).splitlines()[0][:200]}"
        results.put((op, outcome))


def _draw(
    rng: random.Random, usable: list[int], champion: int | None
) -> tuple[str, tuple[Any, ...]]:
    others = [v for v in usable if v != champion] or usable
    op = rng.choice(["promote", "promote", "rollback", "rollback", "canary", "weight", "reject"])
    if op == "promote":
        return op, (rng.choice(others),)
    if op == "canary":
        return op, (rng.choice(others), rng.choice([0.1, 0.25, 0.5]))
    if op == "weight":
        return op, (rng.choice([0.0, 0.1, 0.3]),)
    if op == "reject":
        return op, (rng.choice(others),)
    return op, ()


@dataclass
class _Coordinator:
    """The process that hands out the moves and checks each round, and its version supply."""

    registry: ModelRegistry
    register_one: Callable[[], int]

    def usable_versions(self) -> list[int]:
        """Versions a move may name: not rejected, registering more when fewer than four."""
        usable = [v.version for v in self.registry.versions() if not v.rejected]
        while len(usable) < _MIN_USABLE_VERSIONS:
            usable.append(self.register_one())
        return usable


def _open_coordinator(config: RaceConfig) -> _Coordinator:
    """Open the coordinator's registry, and bootstrap the model with a first version."""
    registry = open_registry(_settings(config, "race-coordinator", ""))
    client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)
    local = not config.tracking_uri.startswith("http")
    location = (config.home / "artifacts").absolute().as_uri() if local else None
    experiment = ensure_experiment(client, "registry-race", location)

    def register_one() -> int:
        run = client.create_run(experiment)
        lineage = {"gate_verdict": "passed", "data_digest": "race"}
        uri = f"runs:/{run.info.run_id}/model"
        return registry.register(uri, run.info.run_id, lineage, reason="race version")

    registry.bootstrap(register_one(), reason="race start")
    return _Coordinator(registry, register_one)


@dataclass
class _Workers:
    """The racing processes, one task queue each and one shared answer queue."""

    tasks: list[Queue[Any]]
    results: Queue[Any]
    processes: list[SpawnProcess]

    @classmethod
    def start(cls, config: RaceConfig) -> _Workers:
        """Spawn ``config.workers`` processes (each opens its own registry)."""
        context = mp.get_context("spawn")
        tasks: list[Queue[Any]] = [context.Queue() for _ in range(config.workers)]
        results: Queue[Any] = context.Queue()
        processes = [
            context.Process(target=_worker, args=(config, i, tasks[i], results), daemon=True)
            for i in range(config.workers)
        ]
        for process in processes:
            process.start()
        return cls(tasks, results, processes)

    def wait_ready(self) -> None:
        """Wait until every worker has opened its registry."""
        for _ in self.processes:
            _expect(self.results.get(timeout=_ROUND_DEADLINE_S), "ready")

    def play(self, ops: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[str, str]]:
        """Send each worker its move at once; return every ``(op, outcome)`` answer."""
        for queue, op in zip(self.tasks, ops, strict=True):
            queue.put(op)
        return [self.results.get(timeout=_ROUND_DEADLINE_S) for _ in self.processes]

    def stop(self) -> None:
        """Tell every worker to finish; kill those that do not within 30 s."""
        for queue in self.tasks:
            queue.put(None)
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()


def run_race(config: RaceConfig) -> RaceResult:
    """Run the race and return its figures (divergences are recorded, not raised)."""
    started = time.perf_counter()
    coordinator = _open_coordinator(config)
    workers = _Workers.start(config)
    result = RaceResult(config.rounds, config.workers, config.max_stall_s)
    try:
        workers.wait_ready()
        result.setup_seconds = round(time.perf_counter() - started, 2)
        rng = random.Random(config.seed)
        outcomes: Counter[str] = Counter()
        for round_no in range(config.rounds):
            usable = coordinator.usable_versions()
            state = coordinator.registry.state()
            last_id = _last_event_id(coordinator.registry)
            ops = [_draw(rng, usable, state.champion) for _ in workers.processes]
            began = time.perf_counter()
            answers = workers.play(ops)
            result.round_seconds.append(time.perf_counter() - began)
            outcomes.update(f"{op}:{outcome}" for op, outcome in answers)
            problem = check_round(coordinator.registry, last_id, [a for _, a in answers])
            if problem:
                moves = [[op, *map(str, args)] for op, args in ops]
                result.divergences.append(
                    {"round": round_no, "moves": moves, "answers": answers, **problem}
                )
        result.outcomes = dict(sorted(outcomes.items()))
        result.events_written = len(coordinator.registry.history(limit=1_000_000))
    finally:
        workers.stop()
    return result


def _expect(message: tuple[str, int], kind: str) -> None:
    if message[0] != kind:
        raise RuntimeError(f"race worker sent {message!r} instead of {kind!r}")


def _last_event_id(registry: ModelRegistry) -> int:
    latest = registry.history(limit=1)
    return latest[0].id if latest else 0
