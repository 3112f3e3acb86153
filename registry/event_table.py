"""The ``deployment_events`` table: one row per alias move, with the state it produced.

Each row carries the full deployment state *after* the move, so "what is deployed now" is the
latest applied row, with no replay; the indexes serve the three monitoring queries (state of a
model, history of a model, events in a time window). ``model_locks`` holds one lease per model:
who is moving its aliases right now and until when (see :mod:`registry.lock`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

__all__ = ["deployment_events", "metadata", "model_locks"]


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timestamps in UTC, timezone-aware on the way out on every backend.

    SQLite has no timezone type: values are stored as naive UTC and re-labelled when read.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

_PENDING_ONLY = sa.text("status = 'pending'")

deployment_events = sa.Table(
    "deployment_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("alias", sa.String(64)),
    sa.Column("from_version", sa.Integer),
    sa.Column("to_version", sa.Integer),
    # The state after the move: the latest applied row *is* the current deployment.
    sa.Column("champion", sa.Integer),
    sa.Column("challenger", sa.Integer),
    sa.Column("canary_weight", sa.Double, nullable=False),
    sa.Column("previous_champion", sa.Integer),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("evidence", sa.Text),
    sa.Column("details", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    sa.Column("status_reason", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("applied_at", UTCDateTime),
    sa.CheckConstraint("status in ('pending', 'applied', 'aborted')", name="ck_event_status"),
    sa.CheckConstraint("canary_weight >= 0 and canary_weight <= 1", name="ck_event_weight"),
    # "Current state" and "history" of a model: newest applied row first.
    sa.Index("ix_deployment_events_model_status_id", "model_name", "status", "id"),
    # "Events in a time window", across models or for one.
    sa.Index("ix_deployment_events_created_at", "created_at"),
    sa.Index("ix_deployment_events_model_created_at", "model_name", "created_at"),
    # At most one move in flight per model: the database, not a lock file, serialises movers.
    sa.Index(
        "ux_deployment_events_one_pending",
        "model_name",
        unique=True,
        sqlite_where=_PENDING_ONLY,
        postgresql_where=_PENDING_ONLY,
    ),
)

model_locks = sa.Table(
    "model_locks",
    metadata,
    sa.Column("model_name", sa.String(256), primary_key=True),
    # NULL owner: free. An owner whose lease expired is presumed dead (see registry.lock).
    sa.Column("owner", sa.String(512)),
    # Bumped on every acquisition: a fencing token, so a stale holder's writes are refused.
    sa.Column("token", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    sa.Column("acquired_at", UTCDateTime),
    sa.Column("expires_at", UTCDateTime),
)
