"""Alembic environment of the deployment-events database (run by :mod:`migrations.runner`).

The runner hands over an open connection and the version table's name; nothing here reads a
URL, a file or an environment variable, so the same scripts serve SQLite and PostgreSQL.
"""

from __future__ import annotations

from alembic import context

from migrations.environment import run_migrations

run_migrations(context)
