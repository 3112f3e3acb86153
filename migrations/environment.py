"""What both Alembic environments do: migrate the connection the runner passed in.

Both ``env.py`` files call :func:`run_migrations`, so the two schemas differ only in their
version scripts. The connection, and the name of the table that records the revision, come
from the runner through ``Config.attributes``; the runner owns the transaction.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_migrations"]


def run_migrations(context: Any) -> None:
    """Configure Alembic's ``context`` on the runner's connection and run the scripts."""
    config = context.config
    context.configure(
        connection=config.attributes["connection"],
        version_table=config.attributes["version_table"],
        target_metadata=None,
        # One transaction per database: a failing script leaves the schema as it was
        # (PostgreSQL has transactional DDL; on SQLite each script is small and additive).
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()
