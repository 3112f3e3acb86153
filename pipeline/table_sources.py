"""Labelled rows from a file or a database query.

Each source reads its rows, renames source columns to the contract's feature names (a
contract's ``column:``), checks that every contract column is there and returns them in contract
order. Each read is a snapshot: the pipeline names it by the digest of the rows it got
(``pipeline/tracking.py::dataset_digest``), so a run on an unchanged snapshot is recognised. A
source that cannot be read, or lacks a column, raises :class:`SourceError` naming the source and
the problem.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pandas as pd
import sqlalchemy as sa

from features import Contract
from pipeline.data import generate
from pipeline.sources import DataSource, GeneratedData

__all__ = [
    "ENTITY_FALLBACK_PREFIX",
    "FileSource",
    "SourceError",
    "SqlSource",
    "conform",
    "open_source",
]

ENTITY_FALLBACK_PREFIX: Final = "row-"
"""Ids given to rows of a source that has no entity-id column (``row-0``, ``row-1``, ...)."""


class SourceError(ValueError):
    """A data source cannot be read, or its rows do not carry the contract's columns."""


def conform(frame: pd.DataFrame, contract: Contract, origin: str) -> pd.DataFrame:
    """The contract's columns of ``frame``, renamed and in contract order.

    Source columns named otherwise (``column:`` in the contract) take the feature's name; a
    missing entity-id column is filled with positional ids (``row-0``, ...); other columns are
    left out.

    Raises:
        SourceError: A feature or the target is missing, or the target holds values other than
            0 and 1; the message names ``origin`` and the columns.
    """
    frame = frame.rename(columns=contract.source_columns)
    wanted = [*contract.feature_names, contract.target]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise SourceError(
            f"{origin}: no column {missing} (contract {contract.name!r}); "
            f"the source has {list(frame.columns)[:20]}"
        )
    labels = frame[contract.target]
    if labels.isna().any() or not set(pd.unique(labels).tolist()) <= {0, 1}:
        raise SourceError(f"{origin}: target {contract.target!r} must hold only 0 and 1")
    out = frame[wanted].copy()
    out[contract.target] = labels.astype("int64")
    if contract.entity_id is not None:
        if contract.entity_id in frame.columns:
            out[contract.entity_id] = frame[contract.entity_id].astype(str).to_numpy()
        else:
            out[contract.entity_id] = [f"{ENTITY_FALLBACK_PREFIX}{i}" for i in range(len(out))]
    return out.reset_index(drop=True)


@dataclass(frozen=True)
class FileSource:
    """A CSV or Parquet file (each read is a snapshot of it).

    Attributes:
        path: The file.
        contract: The contract the rows must carry.
    """

    path: Path
    contract: Contract

    def load(self) -> pd.DataFrame:
        """Read the file and conform it to the contract.

        Raises:
            SourceError: Unknown file type, unreadable file or a missing contract column.
        """
        suffix = self.path.suffix.lower()
        readers = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".pq": pd.read_parquet}
        if suffix not in readers:
            raise SourceError(f"{self.path}: unknown file type {suffix!r} (.csv or .parquet)")
        try:
            raw = readers[suffix](self.path)
        except FileNotFoundError:
            raise SourceError(f"{self.path} does not exist") from None
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise SourceError(f"{self.path} cannot be read: {exc}") from None
        return conform(raw, self.contract, str(self.path))

    @property
    def description(self) -> str:
        """``read from <path>``."""
        return f"read from {self.path}"

    @property
    def lineage(self) -> Mapping[str, str]:
        """The file the rows came from."""
        return {"data_source": f"file:{self.path.resolve()}"}


@dataclass(frozen=True)
class SqlSource:
    """The rows a SQL query returns (any SQLAlchemy URL); each read is a snapshot.

    Attributes:
        url: SQLAlchemy database URL; its password never appears in lineage or messages.
        query: A SELECT returning the contract's columns.
        contract: The contract the rows must carry.
    """

    url: str
    query: str
    contract: Contract

    @property
    def safe_url(self) -> str:
        """The URL with its password hidden."""
        try:
            return sa.engine.make_url(self.url).render_as_string(hide_password=True)
        except sa.exc.ArgumentError:
            return "<unparseable database URL>"

    def load(self) -> pd.DataFrame:
        """Run the query and conform its rows to the contract.

        Raises:
            SourceError: A malformed URL, an unreachable database, a failing query or a missing
                contract column.
        """
        try:
            engine = sa.create_engine(self.url)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise SourceError(f"database URL {self.safe_url}: {exc}") from None
        try:
            with engine.connect() as connection:
                raw = pd.read_sql_query(sa.text(self.query), connection)
        except sa.exc.SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise SourceError(f"query on {self.safe_url} failed: {reason}") from None
        finally:
            engine.dispose()
        return conform(raw, self.contract, f"query on {self.safe_url}")

    @property
    def description(self) -> str:
        """``queried from <url without password>``."""
        return f"queried from {self.safe_url}"

    @property
    def lineage(self) -> Mapping[str, str]:
        """The database (password hidden) and a digest of the query text."""
        query = hashlib.sha256(self.query.encode()).hexdigest()[:16]
        return {"data_source": f"sql:{self.safe_url}", "data_query": f"sha256:{query}"}


def open_source(
    data: str | None, query: str | None, contract: Contract, *, n_rows: int, seed: int
) -> DataSource:
    """The source a command names: a file, a database query, or the built-in generator.

    Args:
        data: A ``.csv``/``.parquet`` path, a SQLAlchemy URL (it contains ``://``), or ``None``
            for the credit generator (``n_rows`` rows, ``seed``).
        query: The SELECT to run on a database URL; refused with a file.
        contract: The contract the rows must carry.
        n_rows: Rows the generator makes.
        seed: Seed of the generator.

    Raises:
        SourceError: A URL without a query, a query without a URL, or no ``data`` for a
            contract the generator does not produce (it makes the credit example's columns).
    """
    if data is None:
        if query is not None:
            raise SourceError("--query needs --data naming a database URL")
        try:
            columns = set(generate(2, 0).columns)
        except KeyError:  # the process's contract asks for columns the generator lacks
            columns = set()
        missing = [c for c in (*contract.feature_names, contract.target) if c not in columns]
        if missing:
            raise SourceError(
                f"contract {contract.name!r}: the built-in generator makes the credit example's "
                f"columns, not {missing[:5]}; name your data with --data PATH or MLPLAT_DATA"
            )
        return GeneratedData(n_rows, seed)
    if "://" in data:
        if not query:
            raise SourceError(f"{data.split('://')[0]} URL given without --query (a SELECT)")
        return SqlSource(data, query, contract)
    if query is not None:
        raise SourceError(f"--query applies to a database URL, not the file {data}")
    return FileSource(Path(data), contract)
