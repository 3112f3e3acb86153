"""Store benchmark: where should deployment events live? Measured, not asserted.

Compares, on the machine it runs on, the same event log stored three ways:

* ``sqlite`` — the real ``deployment_events`` table (:mod:`registry.event_table`) in SQLite with
  the engine the registry uses (WAL, ``synchronous=NORMAL``,
  :func:`registry.database.create_engine`);
* ``postgres_relational`` — the same table in PostgreSQL;
* ``postgres_jsonb`` — a document-style table, one JSONB document per event, with the indexes a
  competent engineer would add: expression B-tree indexes on ``doc->>'model_name'``/status/id and
  on ``doc->>'created_at'`` (ISO-8601 text in the ``C`` collation sorts chronologically), plus a
  GIN ``jsonb_path_ops`` index for ad-hoc containment queries.

Writes are timed unbatched (one transaction per event, as :class:`registry.EventStore` writes:
durability per event) on a capped sample, then batched (``batch_size`` events per transaction,
multi-row inserts) for the rest of the load. Reads are the three monitoring queries (current
state of a model, latest 100 events of a model, events in a 1-hour / 1-day window), each
repeated with random parameters; p50/p99 in milliseconds. Every size gets a fresh table.
"""

from __future__ import annotations

import json
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from registry.database import create_engine, normalise_url, write_transaction
from registry.errors import RegistryError
from registry.event_table import deployment_events, metadata

__all__ = [
    "QUERIES",
    "StoreBenchmarkError",
    "format_table",
    "run_store_benchmark",
]

QUERIES = ("current_state", "history_100", "window_1h", "window_1d")
"""The monitoring read queries, in report order."""

_SPAN = timedelta(days=90)
_ISO = "%Y-%m-%dT%H:%M:%S.%fZ"
# Roughly what CI and the controller do: many registrations and canary steps, few rollbacks.
_ACTIONS = (
    ("register", 0.34),
    ("challenger", 0.16),
    ("canary", 0.26),
    ("promote", 0.10),
    ("reject", 0.08),
    ("rollback", 0.03),
    ("external", 0.02),
    ("repair", 0.01),
)
_ACTORS = ("ci", "controller", "alice@laptop", "bob@build-7", "carol@ops")
_DOCS = "deployment_event_docs"
_DOC_DDL = (
    f"CREATE TABLE {_DOCS} (id bigserial PRIMARY KEY, doc jsonb NOT NULL)",
    f"CREATE INDEX ix_docs_model_status_id ON {_DOCS} ((doc->>'model_name'), (doc->>'status'), id)",
    f"CREATE INDEX ix_docs_created_at ON {_DOCS} ((doc->>'created_at') COLLATE \"C\")",
    f"CREATE INDEX ix_docs_gin ON {_DOCS} USING gin (doc jsonb_path_ops)",
)
_DOC_QUERIES = {
    "current_state": f"SELECT id, doc FROM {_DOCS} WHERE doc->>'model_name' = :m "
    "AND doc->>'status' = 'applied' ORDER BY id DESC LIMIT 1",
    "history_100": f"SELECT id, doc FROM {_DOCS} WHERE doc->>'model_name' = :m "
    "ORDER BY id DESC LIMIT 100",
    "window": f"SELECT id, doc FROM {_DOCS} WHERE (doc->>'created_at') COLLATE \"C\" >= :s "
    "AND (doc->>'created_at') COLLATE \"C\" < :e ORDER BY id",
}


class StoreBenchmarkError(RegistryError):
    """The store benchmark was asked for something it cannot do (bad sizes, bad settings)."""


@dataclass(frozen=True)
class _Settings:
    models: int
    unbatched_cap: int
    batch_size: int
    repetitions: int
    seed: int


# -- synthetic events --------------------------------------------------------------------------


def _choose_action(rng: random.Random) -> str:
    x = rng.random()
    for action, p in _ACTIONS:
        if x < p:
            return action
        x -= p
    return _ACTIONS[-1][0]


def generate_events(n: int, *, models: int, seed: int, end: datetime) -> list[dict[str, Any]]:
    """``n`` plausible deployment events for ``models`` models over the 90 days before ``end``.

    Rows are column dicts of :data:`registry.event_table.deployment_events`, oldest first (ids
    follow time, as in the real log). Every event is applied or aborted: the partial unique
    index allows one pending move per model, and a healthy log has none.
    """
    rng = random.Random(seed)
    start = end - _SPAN
    offsets = sorted(rng.random() for _ in range(n))
    latest = [1] * models
    champion: list[int | None] = [None] * models
    challenger: list[int | None] = [None] * models
    rows: list[dict[str, Any]] = []
    for offset in offsets:
        m = rng.randrange(models)
        action = _choose_action(rng)
        version = latest[m]
        alias: str | None = None
        weight = 0.0
        if action == "register":
            latest[m] += 1
            version = latest[m]
        elif action in ("challenger", "canary"):
            alias, challenger[m] = "challenger", version
            weight = rng.choice((0.0, 0.05, 0.1, 0.25, 0.5)) if action == "canary" else 0.0
        elif action in ("promote", "rollback", "external"):
            alias, champion[m], challenger[m] = "champion", version, None
        created = start + _SPAN * offset
        aborted = rng.random() < 0.03
        rows.append(
            {
                "model_name": f"credit-default-{m:03d}",
                "action": action,
                "status": "aborted" if aborted else "applied",
                "alias": alias,
                "from_version": max(version - 1, 1),
                "to_version": version,
                "champion": champion[m],
                "challenger": challenger[m],
                "canary_weight": weight,
                "previous_champion": max(version - 2, 1) if champion[m] else None,
                "actor": rng.choice(_ACTORS),
                "reason": f"{action} v{version}: gate verdict from CI run "
                + f"{rng.getrandbits(32):08x}",
                "evidence": f"reports/{m:03d}/v{version}/gate.json",
                "details": {
                    "verdict": {
                        "metric": "roc_auc",
                        "delta": round(rng.gauss(0.002, 0.01), 5),
                        "ci_low": round(rng.gauss(-0.004, 0.005), 5),
                        "ci_high": round(rng.gauss(0.008, 0.005), 5),
                        "p_value": round(rng.random(), 5),
                        "n": rng.randrange(2_000, 50_000),
                    },
                    "run_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                    "data_digest": f"{rng.getrandbits(64):016x}",
                },
                "status_reason": "gave up: MLflow unreachable" if aborted else None,
                "created_at": created,
                "applied_at": None if aborted else created + timedelta(milliseconds=40),
            }
        )
    return rows


def _as_doc(row: dict[str, Any]) -> dict[str, Any]:
    doc = dict(row)
    doc["created_at"] = row["created_at"].strftime(_ISO)
    doc["applied_at"] = row["applied_at"].strftime(_ISO) if row["applied_at"] else None
    return {"doc": doc}


# -- the three stores --------------------------------------------------------------------------


class _Store:
    """One schema in one database: create it fresh, insert rows, run the monitoring queries."""

    name = ""
    schema = ""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def reset(self) -> None:
        with self.engine.begin() as conn:
            metadata.drop_all(conn, checkfirst=True)
            metadata.create_all(conn)

    def insert_one(self, row: dict[str, Any]) -> None:
        # As EventStore.record: one write transaction per event, id returned.
        with write_transaction(self.engine) as conn:
            conn.execute(deployment_events.insert().returning(deployment_events.c.id), row)

    def insert_many(self, rows: list[dict[str, Any]]) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(deployment_events.insert(), rows)

    def analyze(self) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")

    def query(self, name: str, params: dict[str, Any]) -> int:
        t = deployment_events.c
        if name == "current_state":
            q = (
                sa.select(deployment_events)
                .where(t.model_name == params["m"], t.status == "applied")
                .order_by(t.id.desc())
                .limit(1)
            )
        elif name == "history_100":
            q = (
                sa.select(deployment_events)
                .where(t.model_name == params["m"])
                .order_by(t.id.desc())
                .limit(100)
            )
        else:
            q = (
                sa.select(deployment_events)
                .where(t.created_at >= params["s"], t.created_at < params["e"])
                .order_by(t.id)
            )
        with self.engine.connect() as conn:
            return len(conn.execute(q).all())

    def size_bytes(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT pg_total_relation_size('deployment_events')")
                ).scalar_one()
            )


class _SqliteStore(_Store):
    name = "sqlite"
    schema = "relational"

    def __init__(self, engine: Engine, path: Path) -> None:
        super().__init__(engine)
        self.path = path

    def size_bytes(self) -> int:
        with self.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return self.path.stat().st_size


class _PostgresRelationalStore(_Store):
    name = "postgres_relational"
    schema = "relational"

    def analyze(self) -> None:
        # VACUUM cannot run in a transaction; it also sets the visibility map, as autovacuum
        # would have done on a long-lived table.
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")


class _PostgresDocumentStore(_PostgresRelationalStore):
    name = "postgres_jsonb"
    schema = "document"

    def reset(self) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_DOCS}")
            for ddl in _DOC_DDL:
                conn.exec_driver_sql(ddl)

    def _insert(self) -> sa.TextClause:
        return sa.text(f"INSERT INTO {_DOCS} (doc) VALUES (CAST(:doc AS jsonb))")

    def insert_one(self, row: dict[str, Any]) -> None:
        doc = {"doc": json.dumps(_as_doc(row)["doc"])}
        with write_transaction(self.engine) as conn:
            conn.execute(
                sa.text(f"INSERT INTO {_DOCS} (doc) VALUES (CAST(:doc AS jsonb)) RETURNING id"),
                doc,
            )

    def insert_many(self, rows: list[dict[str, Any]]) -> None:
        docs = [{"doc": json.dumps(_as_doc(r)["doc"])} for r in rows]
        with write_transaction(self.engine) as conn:
            conn.execute(self._insert(), docs)

    def query(self, name: str, params: dict[str, Any]) -> int:
        sql = _DOC_QUERIES["window" if name.startswith("window") else name]
        if "s" in params:
            params = {"s": params["s"].strftime(_ISO), "e": params["e"].strftime(_ISO)}
        with self.engine.connect() as conn:
            return len(conn.execute(sa.text(sql), params).all())

    def size_bytes(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.text(f"SELECT pg_total_relation_size('{_DOCS}')")).scalar_one()
            )


@contextmanager
def _scratch_postgres(admin_url: str) -> Iterator[str]:
    """A fresh database ``mlplat_bench_<random>`` on the server, dropped afterwards."""
    admin = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"mlplat_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.SQLAlchemyError as exc:
        admin.dispose()
        raise StoreBenchmarkError(
            f"postgres_url: cannot create a scratch database ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0]})"
        ) from exc
    try:
        yield (
            sa.engine.make_url(normalise_url(admin_url))
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


# -- measuring ---------------------------------------------------------------------------------


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
    store: _Store, rows: list[dict[str, Any]], settings: _Settings, end: datetime
) -> dict[str, Any]:
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

    rng = random.Random(settings.seed + len(rows))
    start = end - _SPAN
    reads: dict[str, Any] = {}
    for name in QUERIES:
        samples: list[float] = []
        returned = 0
        for _ in range(settings.repetitions):
            params: dict[str, Any]
            if name.startswith("window"):
                width = timedelta(hours=1) if name == "window_1h" else timedelta(days=1)
                s = start + (_SPAN - width) * rng.random()
                params = {"s": s, "e": s + width}
            else:
                params = {"m": f"credit-default-{rng.randrange(settings.models):03d}"}
            t0 = time.perf_counter()
            returned += store.query(name, params)
            samples.append((time.perf_counter() - t0) * 1000)
        reads[name] = {**_percentiles(samples), "rows_mean": round(returned / len(samples), 1)}
    return {
        "write": {"unbatched": _rate(cap, unbatched), "batched": _rate(len(rest), batched)},
        "read_ms": reads,
        "storage_bytes": store.size_bytes(),
    }


def _server_version(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.exec_driver_sql("SHOW server_version").scalar_one())


def _validate(sizes: Sequence[int], settings: _Settings) -> list[int]:
    if not sizes:
        raise StoreBenchmarkError("sizes: give at least one number of events")
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise StoreBenchmarkError(f"sizes: each size must be an integer >= 2, got {size!r}")
    for field, value, low in (
        ("models", settings.models, 1),
        ("unbatched_cap", settings.unbatched_cap, 0),
        ("batch_size", settings.batch_size, 1),
        ("repetitions", settings.repetitions, 2),
    ):
        if value < low:
            raise StoreBenchmarkError(f"{field}: must be >= {low}, got {value}")
    return sorted(set(sizes))


def _write_json_atomic(payload: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2)
            fh.write("\n")
        Path(tmp).replace(out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        StoreBenchmarkError: If a size or setting is out of range or PostgreSQL is unusable.
    """
    settings = _Settings(models, unbatched_cap, batch_size, repetitions, seed)
    ordered = _validate(sizes, settings)
    say = progress or (lambda _line: None)
    end = datetime(2026, 1, 1, tzinfo=UTC)
    began = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    backends: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}

    def run(store: _Store, version: str) -> None:
        entry: dict[str, Any] = {"schema": store.schema, "version": version, "sizes": {}}
        backends[store.name] = entry
        for size in ordered:
            rows = generate_events(size, models=models, seed=seed, end=end)
            entry["sizes"][str(size)] = _measure_size(store, rows, settings, end)
            say(f"{store.name}: {size:,} events done ({time.perf_counter() - began:.0f}s)")

    with tempfile.TemporaryDirectory(prefix="mlplat-bench-store-") as tmp:
        path = Path(tmp) / "events.db"
        engine = create_engine(f"sqlite:///{path}")
        try:
            run(_SqliteStore(engine, path), sqlite3.sqlite_version)
        finally:
            engine.dispose()

    if postgres_url is None:
        skipped["postgres"] = "no postgres_url given"
    else:
        with _scratch_postgres(postgres_url) as url:
            engine = create_engine(url)
            try:
                version = _server_version(engine)
                run(_PostgresRelationalStore(engine), version)
                run(_PostgresDocumentStore(engine), version)
            finally:
                engine.dispose()

    size_flags = " ".join(f"--sizes {s}" for s in ordered)
    result: dict[str, Any] = {
        "benchmark": "store",
        "command": command or f"mlplat bench store --out {out} {size_flags}",
        "started_at": started_at,
        "duration_s": round(time.perf_counter() - began, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "sqlalchemy": sa.__version__,
        },
        "settings": {
            "sizes": ordered,
            "models": models,
            "unbatched_cap": unbatched_cap,
            "batch_size": batch_size,
            "repetitions": repetitions,
            "seed": seed,
            "span_days": _SPAN.days,
            "queries": list(QUERIES),
            "document_indexes": list(_DOC_DDL[1:]),
        },
        "backends": backends,
        "skipped": skipped,
    }
    _write_json_atomic(result, out)
    return result


def format_table(result: dict[str, Any]) -> str:
    """The result as a Markdown table: one row per backend and size."""
    header = (
        "| store | events | unbatched ev/s | batched ev/s | size MB | "
        + " | ".join(f"{q} p50/p99 ms" for q in QUERIES)
        + " |"
    )
    lines = [header, "|" + "---|" * (5 + len(QUERIES))]
    for name, entry in result["backends"].items():
        for size, m in entry["sizes"].items():
            w = m["write"]
            cells = [
                name,
                f"{int(size):,}",
                f"{w['unbatched']['events_per_s']:,.0f}",
                f"{w['batched']['events_per_s']:,.0f}",
                f"{m['storage_bytes'] / 1e6:,.1f}",
            ]
            cells += [
                f"{m['read_ms'][q]['p50']:.2f} / {m['read_ms'][q]['p99']:.2f}" for q in QUERIES
            ]
            lines.append("| " + " | ".join(cells) + " |")
    for name, why in result.get("skipped", {}).items():
        lines.append(f"\n{name} skipped: {why}")
    return "\n".join(lines)
