"""The inference log as first released: scored rows, delayed labels, failed rows.

The scored-rows table starts with the platform's own columns only; the columns of the feature
contract are not a revision (they change with the contract, not with the platform) and are
added by :func:`migrations.contract_columns.sync_feature_columns` after every upgrade.
A frozen copy of ``interfaces/inference_log.py`` at that release, never an import of it.

Revision ID: i0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i0001"
down_revision = None
branch_labels = None
depends_on = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    """Create ``inference_log``, ``inference_feedback`` and ``inference_failures``."""
    op.create_table(
        "inference_log",
        sa.Column("id", _id(), primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("variant", sa.String(16), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("prediction", sa.Integer, nullable=False),
    )
    op.create_index("ix_inference_log_ts", "inference_log", ["ts"])
    op.create_index("ix_inference_log_variant_ts", "inference_log", ["variant", "ts"])
    op.create_index("ix_inference_log_request", "inference_log", ["request_id", "row"])
    op.create_table(
        "inference_feedback",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("row", sa.Integer, primary_key=True),
        sa.Column("label", sa.Integer, nullable=False),
        sa.Column("received_ts", sa.Float, nullable=False),
    )
    op.create_table(
        "inference_failures",
        sa.Column("id", _id(), primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("variant", sa.String(16), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("routing_hash", sa.Float, nullable=True),
        sa.Column("latency_s", sa.Float, nullable=True),
        sa.Column("slice_value", sa.String(64), nullable=True),
    )
    op.create_index("ix_inference_failures_ts", "inference_failures", ["ts"])


def downgrade() -> None:
    """Drop the three tables (and every logged row with them)."""
    op.drop_table("inference_failures")
    op.drop_table("inference_feedback")
    op.drop_table("inference_log")
