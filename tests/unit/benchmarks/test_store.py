"""The store benchmark at a tiny size: the figures file has every key and sane numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.report import BenchmarkError
from benchmarks.store.run import format_table, run_store_benchmark
from benchmarks.store.stores import QUERIES


def _tiny_run(out: Path, postgres_url: str | None) -> dict[str, Any]:
    return run_store_benchmark(
        out,
        sizes=(500,),
        postgres_url=postgres_url,
        unbatched_cap=50,
        batch_size=100,
        repetitions=20,
    )


def _assert_sane(entry: dict[str, Any], size: int) -> None:
    figures = entry["sizes"][str(size)]
    write = figures["write"]
    assert write["unbatched"]["events"] + write["batched"]["events"] == size
    assert write["unbatched"]["events_per_s"] > 0
    assert write["batched"]["events_per_s"] > 0
    assert figures["storage_bytes"] > 0
    for query in QUERIES:
        read = figures["read_ms"][query]
        assert 0 < read["p50"] <= read["p99"], query
    # 50 models: a model's current state is one row, its history at most 100 rows.
    assert figures["read_ms"]["current_state"]["rows_mean"] == pytest.approx(1.0)
    assert 0 < figures["read_ms"]["history_100"]["rows_mean"] <= 100
    # 500 events over 90 days: a day holds about 5.6 of them on average.
    assert 0 < figures["read_ms"]["window_1d"]["rows_mean"] < 30


@pytest.mark.unit
def test_sqlite_run_writes_figures_file_with_every_query(tmp_path: Path) -> None:
    """A SQLite-only run writes the JSON it returns, with writes, reads and the command."""
    out = tmp_path / "store.json"

    result = _tiny_run(out, None)

    assert json.loads(out.read_text()) == result
    assert set(result["backends"]) == {"sqlite"}
    assert result["skipped"] == {"postgres": "no postgres_url given"}
    assert result["command"].startswith("mlplat bench store --out")
    _assert_sane(result["backends"]["sqlite"], 500)
    assert "| sqlite | 500 |" in format_table(result)
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.unit
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"sizes": ()}, "sizes"), ({"sizes": (0,)}, "sizes"), ({"batch_size": 0}, "batch_size")],
)
def test_bad_settings_are_refused_naming_the_field(
    tmp_path: Path, kwargs: dict[str, Any], field: str
) -> None:
    """Out-of-range sizes or settings raise a readable error and write nothing."""
    out = tmp_path / "store.json"
    with pytest.raises(BenchmarkError, match=field):
        run_store_benchmark(out, postgres_url=None, **kwargs)
    assert not out.exists()


@pytest.mark.integration
def test_postgres_run_measures_relational_and_jsonb_and_drops_its_database(
    tmp_path: Path, postgres_admin_url: str
) -> None:
    """With a server, both PostgreSQL schemas are measured and the scratch database is gone."""
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_admin_url)
    scratch = sa.text("SELECT datname FROM pg_database WHERE datname LIKE 'mlplat_bench_%'")
    try:
        with engine.connect() as conn:
            before = set(conn.execute(scratch).scalars())
        result = _tiny_run(tmp_path / "store.json", postgres_admin_url)
        with engine.connect() as conn:
            after = set(conn.execute(scratch).scalars())
    finally:
        engine.dispose()

    assert set(result["backends"]) == {"sqlite", "postgres_relational", "postgres_jsonb"}
    assert result["backends"]["postgres_jsonb"]["schema"] == "document"
    for name in ("postgres_relational", "postgres_jsonb"):
        _assert_sane(result["backends"][name], 500)
    assert after <= before  # its own scratch database was dropped
