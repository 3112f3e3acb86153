"""The deployment-events store as first released: the event log and one lease per model.

A frozen copy of ``registry/event_table.py`` at that release (migrations never import the live
table definitions: a later edit there must not rewrite history here).

Revision ID: e0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "e0001"
down_revision = None
branch_labels = None
depends_on = None

_PENDING_ONLY = sa.text("status = 'pending'")


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    """Create ``deployment_events`` and ``model_locks`` with their indexes."""
    op.create_table(
        "deployment_events",
        sa.Column("id", _id(), primary_key=True),
        sa.Column("model_name", sa.String(256), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("alias", sa.String(64)),
        sa.Column("from_version", sa.Integer),
        sa.Column("to_version", sa.Integer),
        sa.Column("champion", sa.Integer),
        sa.Column("challenger", sa.Integer),
        sa.Column("canary_weight", sa.Double, nullable=False),
        sa.Column("previous_champion", sa.Integer),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text),
        sa.Column("details", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("status_reason", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("status in ('pending', 'applied', 'aborted')", name="ck_event_status"),
        sa.CheckConstraint("canary_weight >= 0 and canary_weight <= 1", name="ck_event_weight"),
    )
    op.create_index(
        "ix_deployment_events_model_status_id", "deployment_events", ["model_name", "status", "id"]
    )
    op.create_index("ix_deployment_events_created_at", "deployment_events", ["created_at"])
    op.create_index(
        "ix_deployment_events_model_created_at", "deployment_events", ["model_name", "created_at"]
    )
    op.create_index(
        "ux_deployment_events_one_pending",
        "deployment_events",
        ["model_name"],
        unique=True,
        sqlite_where=_PENDING_ONLY,
        postgresql_where=_PENDING_ONLY,
    )
    op.create_table(
        "model_locks",
        sa.Column("model_name", sa.String(256), primary_key=True),
        sa.Column("owner", sa.String(512)),
        sa.Column("token", _id(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True)),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    """Drop both tables (and with them every recorded event: only for an empty store)."""
    op.drop_table("model_locks")
    op.drop_table("deployment_events")
