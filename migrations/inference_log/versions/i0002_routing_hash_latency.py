"""Each scored row keeps its routing hash and its latency (the judge's log evidence reads them).

Both nullable: rows written before this revision read as "not recorded", which the judge
treats as missing evidence rather than as a value. Adding a nullable column rewrites no row.

Revision ID: i0002
Revises: i0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i0002"
down_revision = "i0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``routing_hash`` and ``latency_s`` to ``inference_log``."""
    op.add_column("inference_log", sa.Column("routing_hash", sa.Float, nullable=True))
    op.add_column("inference_log", sa.Column("latency_s", sa.Float, nullable=True))


def downgrade() -> None:
    """Drop the two columns (SQLite 3.35+ and PostgreSQL both drop a column in place)."""
    op.drop_column("inference_log", "latency_s")
    op.drop_column("inference_log", "routing_hash")
