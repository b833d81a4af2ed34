"""Event delivery: per-sink, per-event delivery state and what relays share about sinks.

`outbox.distributed_at` marks rows the relay's fan-out has turned into deliveries;
rows already in the outbox when this runs are undistributed, so the first relay
delivers them too.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("distributed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_outbox_undistributed",
        "outbox",
        ["seq"],
        postgresql_where=sa.text("distributed_at IS NULL"),
        sqlite_where=sa.text("distributed_at IS NULL"),
    )
    op.create_table(
        "outbox_deliveries",
        sa.Column("sink", sa.String(length=64), nullable=False),
        sa.Column("seq", _SEQ, autoincrement=False, nullable=False),
        sa.Column("partition_key", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_id", sa.String(length=32), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("dead_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["seq"], ["outbox.seq"]),
        sa.PrimaryKeyConstraint("sink", "seq"),
    )
    op.create_index(
        "ix_outbox_deliveries_due", "outbox_deliveries", ["sink", "state", "next_attempt_at"]
    )
    op.create_index(
        "ix_outbox_deliveries_partition", "outbox_deliveries", ["sink", "partition_key", "seq"]
    )
    op.create_table(
        "event_sinks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("gone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("gone_reason", sa.String(length=200), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("event_sinks")
    op.drop_index("ix_outbox_deliveries_partition", table_name="outbox_deliveries")
    op.drop_index("ix_outbox_deliveries_due", table_name="outbox_deliveries")
    op.drop_table("outbox_deliveries")
    op.drop_index("ix_outbox_undistributed", table_name="outbox")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("distributed_at")
