"""Files and queries as data sources: conformed to the contract, or refused with the reason."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from features import Contract, load_contract
from features import load_contract as load_credit_contract
from pipeline.sources import GeneratedData
from pipeline.table_sources import FileSource, SourceError, SqlSource, conform, open_source

pytestmark = pytest.mark.unit

CONTRACT_YAML = """
version: 1
name: tiny
target: {column: label, positive: it happened}
entity_id: id
segment: region
features:
  - {name: x_value, column: x value, kind: float, minimum: 0, maximum: 1, unit: ratio,
     description: x}
  - {name: region, kind: category, categories: [north, south], description: region}
example: {x_value: 0.5, region: north}
"""


@pytest.fixture
def contract(tmp_path: Path) -> Contract:
    """A two-feature contract whose numeric column is spelt ``x value`` in the source."""
    path = tmp_path / "contract.yml"
    path.write_text(CONTRACT_YAML, encoding="utf-8")
    return load_contract(path)


def raw() -> pd.DataFrame:
    """Rows as a user's export has them: source spelling, an extra column, columns reordered."""
    return pd.DataFrame({
        "region": ["north", "south", "north"], "extra": [1, 2, 3],
        "label": [0, 1, 0], "x value": [0.1, 0.7, 0.4],
    })  # fmt: skip


def test_rows_are_renamed_ordered_and_given_ids(contract: Contract) -> None:
    """Features in contract order, then the target; positional ids where the source has none."""
    rows = conform(raw(), contract, "test")
    assert list(rows.columns) == ["x_value", "region", "label", "id"]
    assert rows["id"].tolist() == ["row-0", "row-1", "row-2"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_file_source_reads_csv_and_parquet_alike(
    contract: Contract, tmp_path: Path, suffix: str
) -> None:
    """The same rows come back from either format, and the lineage names the file."""
    path = tmp_path / f"data{suffix}"
    (raw().to_csv(path, index=False) if suffix == ".csv" else raw().to_parquet(path))
    source = FileSource(path, contract)
    assert source.load()["x_value"].tolist() == [0.1, 0.7, 0.4]
    assert source.lineage["data_source"] == f"file:{path.resolve()}"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (raw().drop(columns="x value"), "no column ['x_value']"),
        (raw().assign(label=[0, 2, 1]), "must hold only 0 and 1"),
        (raw().assign(label=[0, None, 1]), "must hold only 0 and 1"),
    ],
)
def test_rows_without_the_contract_columns_are_refused(
    contract: Contract, frame: pd.DataFrame, message: str, tmp_path: Path
) -> None:
    """A missing feature or a label outside 0/1 names the file and the column."""
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(SourceError) as caught:
        FileSource(path, contract).load()
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_an_unreadable_file_is_a_source_error(contract: Contract, tmp_path: Path) -> None:
    """Missing file, unknown suffix and corrupt Parquet each say what is wrong."""
    with pytest.raises(SourceError, match="does not exist"):
        FileSource(tmp_path / "absent.csv", contract).load()
    with pytest.raises(SourceError, match=r"unknown file type '\.xlsx'"):
        FileSource(tmp_path / "data.xlsx", contract).load()
    broken = tmp_path / "data.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(SourceError, match="cannot be read"):
        FileSource(broken, contract).load()


def test_a_sql_source_reads_a_query_and_hides_the_password(
    contract: Contract, tmp_path: Path
) -> None:
    """A query's rows conform like a file's; lineage holds the URL without its password."""
    url = f"sqlite:///{tmp_path / 'data.db'}"
    engine = sa.create_engine(url)
    raw().to_sql("loans", engine, index=False)
    engine.dispose()
    source = SqlSource(url, 'SELECT * FROM loans WHERE "x value" > 0.2', contract)
    assert source.load()["region"].tolist() == ["south", "north"]
    hidden = SqlSource("postgresql://user:hunter2@db/x", "SELECT 1", contract)
    assert "hunter2" not in hidden.lineage["data_source"]
    assert "hunter2" not in hidden.description


def test_a_failing_query_names_the_database_not_the_password(
    contract: Contract, tmp_path: Path
) -> None:
    """An unknown table is one line naming the database; an unreachable server too."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(SourceError, match="no such table: loans"):
        SqlSource(url, "SELECT * FROM loans", contract).load()
    down = SqlSource("postgresql+psycopg://u:secretpw@127.0.0.1:1/x", "SELECT 1", contract)
    with pytest.raises(SourceError) as caught:
        down.load()
    assert "secretpw" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)


def test_open_source_picks_file_query_or_the_generator(contract: Contract) -> None:
    """A path is a file, a URL with a query is SQL, nothing is the credit generator."""
    assert open_source("rows.csv", None, contract, n_rows=10, seed=1) == FileSource(
        Path("rows.csv"), contract
    )
    sql = open_source("sqlite:///x.db", "SELECT 1", contract, n_rows=10, seed=1)
    assert isinstance(sql, SqlSource)
    assert sql.query == "SELECT 1"
    credit = load_credit_contract()
    assert open_source(None, None, credit, n_rows=10, seed=3) == GeneratedData(10, 3)


@pytest.mark.parametrize(
    ("data", "query", "message"),
    [
        ("sqlite:///x.db", None, "without --query"),
        ("rows.csv", "SELECT 1", "applies to a database URL"),
        (None, "SELECT 1", "needs --data"),
        (None, None, "built-in generator makes the credit example's columns"),
    ],
)
def test_open_source_refuses_options_that_name_no_source(
    contract: Contract, data: str | None, query: str | None, message: str
) -> None:
    """A URL without a query, a stray query, or no data for a non-credit contract is refused."""
    with pytest.raises(SourceError, match=message):
        open_source(data, query, contract, n_rows=10, seed=1)
