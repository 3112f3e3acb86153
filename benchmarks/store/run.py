"""Store benchmark: where should deployment events live? Measured, not asserted.

Compares, on the machine it runs on, the same event log stored three ways
(:mod:`benchmarks.store.stores`: SQLite, PostgreSQL relational, PostgreSQL JSONB) on the same
synthetic log (:mod:`benchmarks.store.events`).

Writes are timed unbatched (one transaction per event, as :class:`registry.EventStore` writes:
durability per event) on a capped sample, then batched (``batch_size`` events per transaction,
multi-row inserts) for the rest of the load. Reads are the three monitoring queries (current
state of a model, latest 100 events of a model, events in a 1-hour / 1-day window), each
repeated with random parameters; p50/p99 in milliseconds. Every size gets a fresh table.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.report import BenchmarkError, machine, markdown_table, write_result
from benchmarks.store.events import SPAN, generate_events, model_name
from benchmarks.store.stores import (
    DOC_DDL,
    QUERIES,
    PostgresDocumentStore,
    PostgresRelationalStore,
    SqliteStore,
    Store,
    scratch_postgres,
    server_version,
)
from registry.database import create_engine

__all__ = ["format_table", "run_store_benchmark"]


@dataclass(frozen=True)
class _Settings:
    models: int
    unbatched_cap: int
    batch_size: int
    repetitions: int
    seed: int


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return {
        "p50": round(cuts[49], 3),
        "p99": round(cuts[98], 3),
        "mean": round(statistics.fmean(samples_ms), 3),
    }


def _rate(events: int, seconds: float) -> dict[str, float]:
    return {
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds, 1) if seconds > 0 else 0.0,
    }


def _measure_size(
    store: Store, rows: list[dict[str, Any]], settings: _Settings, end: datetime
) -> dict[str, Any]:
    """Load ``rows`` into a fresh table, timing the writes, then time the reads."""
    store.reset()
    cap = min(settings.unbatched_cap, len(rows))
    t0 = time.perf_counter()
    for row in rows[:cap]:
        store.insert_one(row)
    unbatched = time.perf_counter() - t0
    rest = rows[cap:]
    t0 = time.perf_counter()
    for i in range(0, len(rest), settings.batch_size):
        store.insert_many(rest[i : i + settings.batch_size])
    batched = time.perf_counter() - t0
    store.analyze()
    return {
        "write": {"unbatched": _rate(cap, unbatched), "batched": _rate(len(rest), batched)},
        "read_ms": _reads(store, len(rows), settings, end),
        "storage_bytes": store.size_bytes(),
    }


def _reads(store: Store, size: int, settings: _Settings, end: datetime) -> dict[str, Any]:
    """Each monitoring query ``repetitions`` times with random parameters: latency, rows read."""
    rng = random.Random(settings.seed + size)
    start = end - SPAN
    reads: dict[str, Any] = {}
    for name in QUERIES:
        samples: list[float] = []
        returned = 0
        for _ in range(settings.repetitions):
            params: dict[str, Any]
            if name.startswith("window"):
                width = timedelta(hours=1) if name == "window_1h" else timedelta(days=1)
                s = start + (SPAN - width) * rng.random()
                params = {"s": s, "e": s + width}
            else:
                params = {"m": model_name(rng.randrange(settings.models))}
            t0 = time.perf_counter()
            returned += store.query(name, params)
            samples.append((time.perf_counter() - t0) * 1000)
        reads[name] = {**_percentiles(samples), "rows_mean": round(returned / len(samples), 1)}
    return reads


def _validate(sizes: Sequence[int], settings: _Settings) -> list[int]:
    if not sizes:
        raise BenchmarkError("sizes: give at least one number of events")
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise BenchmarkError(f"sizes: each size must be an integer >= 2, got {size!r}")
    for field, value, low in (
        ("models", settings.models, 1),
        ("unbatched_cap", settings.unbatched_cap, 0),
        ("batch_size", settings.batch_size, 1),
        ("repetitions", settings.repetitions, 2),
    ):
        if value < low:
            raise BenchmarkError(f"{field}: must be >= {low}, got {value}")
    return sorted(set(sizes))


@dataclass
class _Backends:
    """Each backend's figures per size, as they are measured."""

    sizes: list[int]
    settings: _Settings
    end: datetime
    say: Callable[[str], None]
    began: float
    measured: dict[str, dict[str, Any]]

    def run(self, store: Store, version: str) -> None:
        """Measure ``store`` at every size, each on a fresh table."""
        entry: dict[str, Any] = {"schema": store.schema, "version": version, "sizes": {}}
        self.measured[store.name] = entry
        for size in self.sizes:
            s = self.settings
            rows = generate_events(size, models=s.models, seed=s.seed, end=self.end)
            entry["sizes"][str(size)] = _measure_size(store, rows, s, self.end)
            elapsed = time.perf_counter() - self.began
            self.say(f"{store.name}: {size:,} events done ({elapsed:.0f}s)")

    def sqlite(self) -> None:
        """The registry's engine on a SQLite file in a scratch folder."""
        with tempfile.TemporaryDirectory(prefix="mlplat-bench-store-") as tmp:
            path = Path(tmp) / "events.db"
            engine = create_engine(f"sqlite:///{path}")
            try:
                self.run(SqliteStore(engine, path), sqlite3.sqlite_version)
            finally:
                engine.dispose()

    def postgres(self, admin_url: str) -> None:
        """Both PostgreSQL schemas in a scratch database, dropped afterwards."""
        with scratch_postgres(admin_url) as url:
            engine = create_engine(url)
            try:
                version = server_version(engine)
                self.run(PostgresRelationalStore(engine), version)
                self.run(PostgresDocumentStore(engine), version)
            finally:
                engine.dispose()


def run_store_benchmark(
    out: Path,
    *,
    sizes: Sequence[int] = (10_000, 100_000, 1_000_000),
    postgres_url: str | None = None,
    models: int = 50,
    unbatched_cap: int = 2_000,
    batch_size: int = 1_000,
    repetitions: int = 200,
    seed: int = 0,
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Benchmark the event log as SQLite, PostgreSQL relational and PostgreSQL JSONB; write JSON.

    Args:
        out: Where the JSON result goes (written atomically: temp file + rename).
        sizes: Numbers of events; each size is loaded into a fresh table.
        postgres_url: SQLAlchemy URL of a PostgreSQL server whose user may create databases; a
            scratch database is created and dropped. Without it only SQLite runs.
        models: Distinct model names the events spread over.
        unbatched_cap: Events written one transaction each at the start of every load (the
            registry's write path); the rest is loaded batched.
        batch_size: Events per transaction in the batched load.
        repetitions: Runs of each read query (random parameters) per size.
        seed: Seed of the synthetic events and the query parameters.
        command: The command line to record; ``mlplat bench store --out OUT …`` by default.
        progress: Called with a short line as each backend and size is done.

    Returns:
        The result, as written to ``out``.

    Raises:
        BenchmarkError: If a size or setting is out of range or PostgreSQL is unusable.
    """
    settings = _Settings(models, unbatched_cap, batch_size, repetitions, seed)
    ordered = _validate(sizes, settings)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    end = datetime(2026, 1, 1, tzinfo=UTC)
    backends = _Backends(
        ordered, settings, end, progress or (lambda _line: None), time.perf_counter(), {}
    )
    backends.sqlite()
    skipped: dict[str, str] = {}
    if postgres_url is None:
        skipped["postgres"] = "no postgres_url given"
    else:
        backends.postgres(postgres_url)
    result: dict[str, Any] = {
        "benchmark": "store",
        "command": command or f"mlplat bench store --out {out} --sizes {_joined(ordered)}",
        "started_at": started_at,
        "duration_s": round(time.perf_counter() - backends.began, 1),
        "machine": machine("sqlalchemy"),
        "settings": _recorded(ordered, settings),
        "backends": backends.measured,
        "skipped": skipped,
    }
    write_result(result, out)
    return result


def _recorded(sizes: list[int], settings: _Settings) -> dict[str, Any]:
    """The settings as the figures file records them."""
    return {
        "sizes": sizes,
        "models": settings.models,
        "unbatched_cap": settings.unbatched_cap,
        "batch_size": settings.batch_size,
        "repetitions": settings.repetitions,
        "seed": settings.seed,
        "span_days": SPAN.days,
        "queries": list(QUERIES),
        "document_indexes": list(DOC_DDL[1:]),
    }


def _joined(sizes: Sequence[int]) -> str:
    return ",".join(str(size) for size in sizes)


def format_table(result: dict[str, Any]) -> str:
    """The result as a Markdown table: one row per backend and size."""
    header = [
        "store", "events", "unbatched ev/s", "batched ev/s", "size MB",
        *(f"{q} p50/p99 ms" for q in QUERIES),
    ]  # fmt: skip
    rows = [
        _row(name, size, figures)
        for name, entry in result["backends"].items()
        for size, figures in entry["sizes"].items()
    ]
    lines = [markdown_table(header, rows)]
    for name, why in result.get("skipped", {}).items():
        lines.append(f"\n{name} skipped: {why}")
    return "\n".join(lines)


def _row(name: str, size: str, figures: dict[str, Any]) -> list[str]:
    write = figures["write"]
    return [
        name,
        f"{int(size):,}",
        f"{write['unbatched']['events_per_s']:,.0f}",
        f"{write['batched']['events_per_s']:,.0f}",
        f"{figures['storage_bytes'] / 1e6:,.1f}",
        *(
            f"{figures['read_ms'][q]['p50']:.2f} / {figures['read_ms'][q]['p99']:.2f}"
            for q in QUERIES
        ),
    ]


def _latency(read: dict[str, Any]) -> str:
    return f"{read['p50']:.2f} / {read['p99']:.2f}"
