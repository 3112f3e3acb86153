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

Any violation is a *divergence*, recorded with the round, the states and the events. The same
driver serves the integration test (a few rounds) and ``mlplat bench registry-race`` (hundreds).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

from registry.errors import RegistryError
from registry.events import Action, EventStatus
from registry.settings import RegistrySettings

__all__ = [
    "DEFAULT_POSTGRES_URL",
    "RaceConfig",
    "RaceResult",
    "race_stack",
    "run_race",
    "run_race_benchmark",
    "stall_failpoints",
]

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
    from registry.factory import open_registry

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


def run_race(config: RaceConfig) -> RaceResult:
    """Run the race and return its figures (divergences are recorded, not raised)."""
    from mlflow import MlflowClient

    from registry.factory import ensure_experiment, open_registry

    started = time.perf_counter()
    coordinator = open_registry(_settings(config, "race-coordinator", ""))
    client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)
    local = not config.tracking_uri.startswith("http")
    location = (config.home / "artifacts").absolute().as_uri() if local else None
    experiment = ensure_experiment(client, "registry-race", location)

    def register_one() -> int:
        run = client.create_run(experiment)
        lineage = {"gate_verdict": "passed", "data_digest": "race"}
        uri = f"runs:/{run.info.run_id}/model"
        return coordinator.register(uri, run.info.run_id, lineage, reason="race version")

    first = register_one()
    coordinator.bootstrap(first, reason="race start")

    context = mp.get_context("spawn")
    tasks: list[Queue[Any]] = [context.Queue() for _ in range(config.workers)]
    results: Queue[Any] = context.Queue()
    processes = [
        context.Process(target=_worker, args=(config, i, tasks[i], results), daemon=True)
        for i in range(config.workers)
    ]
    for process in processes:
        process.start()
    result = RaceResult(config.rounds, config.workers, config.max_stall_s)
    try:
        for _ in processes:
            _expect(results.get(timeout=_ROUND_DEADLINE_S), "ready")
        result.setup_seconds = round(time.perf_counter() - started, 2)
        rng = random.Random(config.seed)
        outcomes: Counter[str] = Counter()
        for round_no in range(config.rounds):
            usable = [v.version for v in coordinator.versions() if not v.rejected]
            while len(usable) < _MIN_USABLE_VERSIONS:
                usable.append(register_one())
            state = coordinator.state()
            last_id = _last_event_id(coordinator)
            ops = [_draw(rng, usable, state.champion) for _ in processes]
            began = time.perf_counter()
            for queue, op in zip(tasks, ops, strict=True):
                queue.put(op)
            answers = [results.get(timeout=_ROUND_DEADLINE_S) for _ in processes]
            result.round_seconds.append(time.perf_counter() - began)
            outcomes.update(f"{op}:{outcome}" for op, outcome in answers)
            problem = _check_round(coordinator, last_id, [outcome for _, outcome in answers])
            if problem:
                moves = [[op, *map(str, args)] for op, args in ops]
                result.divergences.append(
                    {"round": round_no, "moves": moves, "answers": answers, **problem}
                )
        result.outcomes = dict(sorted(outcomes.items()))
        result.events_written = len(coordinator.history(limit=1_000_000))
    finally:
        for queue in tasks:
            queue.put(None)
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return result


def _expect(message: tuple[str, int], kind: str) -> None:
    if message[0] != kind:
        raise RuntimeError(f"race worker sent {message!r} instead of {kind!r}")


def _last_event_id(registry: Any) -> int:
    latest = registry.history(limit=1)
    return latest[0].id if latest else 0


_RECONCILE_NOTES = {"move found done by reconcile", "interrupted move completed by reconcile"}
# Outcomes of a move that may have failed after writing its pending event.
_FAILED_AFTER_BEGIN = ("error:", "refused:RegistryUnavailable", "refused:EventStore",
                       "refused:MoveNotRecordedError", "refused:LeaseLostError")  # fmt: skip


def _check_round(registry: Any, last_id: int, answers: list[str]) -> dict[str, Any] | None:
    """What went wrong in the round that wrote events after ``last_id``, or ``None``."""
    problems = [f"unexpected failure: {a}" for a in answers if a.startswith("error:")]
    pending = registry.events.pending(registry.model_name)
    observed = registry.state().placement()
    logged = registry.events.applied_state(registry.model_name)
    if not pending and observed != logged:
        problems.append(f"MLflow shows {observed.describe()} but the log has {logged.describe()}")
    if pending:
        # A move whose MLflow call failed stays pending by design; reconcile must close it.
        registry.reconcile(wait=True)
        observed = registry.state().placement()
        logged = registry.events.applied_state(registry.model_name)
        if observed != logged or registry.events.pending(registry.model_name):
            problems.append(
                f"after reconcile MLflow shows {observed.describe()}, log has {logged.describe()}"
            )
    events = [e for e in registry.history(limit=200) if e.id > last_id]
    failed = any(a.startswith(_FAILED_AFTER_BEGIN) for a in answers)
    for event in events:
        touched = event.status is EventStatus.ABORTED or event.status_reason in _RECONCILE_NOTES
        if touched and not failed:
            problems.append(f"reconcile acted on a live owner's move: {event.describe()}")
        if event.action is Action.EXTERNAL:
            problems.append(f"false external event: {event.describe()}")
        if (
            event.status is EventStatus.APPLIED
            and event.alias is not None
            and event.from_version is not None
            and event.from_version == event.to_version
        ):
            problems.append(f"move to the same version reported: {event.describe()}")
    if not problems:
        return None
    return {
        "problems": problems,
        "events": [e.describe() for e in sorted(events, key=lambda e: e.id)],
    }


# -- the benchmark: a race on a fresh stack per backend ---------------------------------------

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
_SERVER_DEADLINE_S = 120.0


@contextmanager
def race_stack(backend: str, home: Path, postgres_url: str) -> Iterator[tuple[str, str, str]]:
    """Fresh stores for a race: ``(tracking_uri, events_url, description)``.

    ``sqlite``: MLflow's SQLite store and the event log in SQLite files, used directly by every
    process. ``postgres``: an ``mlflow server`` on a scratch PostgreSQL database and the event
    log in another scratch database (both dropped afterwards), as the team setup runs.
    """
    if backend == "sqlite":
        yield (
            f"sqlite:///{(home / 'mlflow.db').absolute()}",
            f"sqlite:///{(home / 'events.db').absolute()}",
            "MLflow SQLite store + SQLite event log, shared by every process",
        )
        return
    if backend != "postgres":
        raise ValueError(f"backend must be 'sqlite' or 'postgres', got {backend!r}")
    import sqlalchemy as sa

    from registry.database import normalise_url

    admin = sa.create_engine(normalise_url(postgres_url), isolation_level="AUTOCOMMIT")
    names = [f"mlplat_race_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("mlflow", "events")]
    try:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        urls = [
            sa.engine.make_url(normalise_url(postgres_url))
            .set(database=name)
            .render_as_string(hide_password=False)
            for name in names
        ]
        with _mlflow_server(urls[0], home) as server:
            yield server, urls[1], "mlflow server on PostgreSQL + PostgreSQL event log"
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def _mlflow_server(backend_store_uri: str, home: Path) -> Iterator[str]:
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    beside = Path(sys.executable).with_name("mlflow")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = (home / "mlflow-server.log").open("wb")
    command = [
        str(beside) if beside.exists() else "mlflow", "server",
        "--backend-store-uri", backend_store_uri,
        "--artifacts-destination", str(home / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + _SERVER_DEADLINE_S
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start; see {home / 'mlflow-server.log'}")
            time.sleep(0.25)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)
        log.close()


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
    import platform

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
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
