"""The inference log's feature columns, reconciled with the feature contract.

The scored-rows table keeps one column per contract feature, so the drift checks read what the
model saw. Those columns follow the contract, not the platform's releases, so they are not
Alembic revisions; after every upgrade :func:`sync_feature_columns` compares the live table
with the contract in force (``MLPLAT_CONTRACT``):

* a feature the table lacks gets a nullable column (rows logged before read as missing);
* a column the contract no longer names is **kept** — it holds the old rows' values — and
  reported, never dropped;
* a column whose kind changed (a number in the table, a category in the contract, or back) is
  refused: :class:`ContractColumnError` names it, and nothing is altered, because rows of both
  kinds in one column would poison every drift check that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from interfaces.inference_log import log_tables

__all__ = ["ColumnChanges", "ContractColumnError", "sync_feature_columns"]

TABLE = "inference_log"


class ContractColumnError(ValueError):
    """The contract and the logged table disagree on a column's kind; the message names it."""


@dataclass(frozen=True)
class ColumnChanges:
    """What reconciling the feature columns did.

    Attributes:
        added: Contract features that got a column now.
        kept: Columns the contract no longer names, left in place with their data.
    """

    added: tuple[str, ...] = ()
    kept: tuple[str, ...] = field(default=())


def _is_numeric(kind: sa.types.TypeEngine[object]) -> bool:
    return isinstance(kind, sa.types.Integer | sa.types.Float | sa.types.Numeric)


def sync_feature_columns(conn: Connection) -> ColumnChanges:
    """Give ``inference_log`` a column per contract feature (see the module docstring).

    Raises:
        ContractColumnError: A column's kind in the table differs from the contract's.
        features.spec.ContractError: The contract file is missing or invalid.
    """
    wanted = log_tables(sa.MetaData()).predictions
    live = {c["name"]: c["type"] for c in sa.inspect(conn).get_columns(TABLE)}
    mismatched = [
        f"{name} is {'a number' if _is_numeric(live[name]) else 'text'} in the log but "
        f"{'a number' if _is_numeric(column.type) else 'a category'} in the contract"
        for name, column in wanted.columns.items()
        if name in live and _is_numeric(live[name]) != _is_numeric(column.type)
    ]
    if mismatched:
        raise ContractColumnError(
            f"the inference log's columns disagree with the feature contract: "
            f"{'; '.join(mismatched)}. Nothing was changed: keep the old log (point "
            "MLPLAT_SERVING_INFERENCE_LOG_URL at a new database) or rename the feature."
        )
    missing = [column for column in wanted.columns if column.name not in live]
    for column in missing:
        column_type = column.type.compile(dialect=conn.dialect)
        conn.execute(sa.text(f'ALTER TABLE "{TABLE}" ADD COLUMN "{column.name}" {column_type}'))
    added = tuple(column.name for column in missing)
    kept = tuple(sorted(name for name in live if name not in wanted.columns))
    return ColumnChanges(added=added, kept=kept)
