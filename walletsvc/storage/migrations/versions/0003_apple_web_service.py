"""Apple's PassKit web service: devices, registrations, the push queue, logs and change tags.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("update_tag", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.create_table(
        "counters",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "apple_devices",
        sa.Column("device_library_id", sa.String(length=128), nullable=False),
        sa.Column("push_token", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device_library_id"),
    )
    op.create_table(
        "apple_registrations",
        sa.Column("device_library_id", sa.String(length=128), nullable=False),
        sa.Column("pass_type_id", sa.String(length=128), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["device_library_id"], ["apple_devices.device_library_id"]),
        sa.ForeignKeyConstraint(["serial"], ["passes.serial"]),
        sa.PrimaryKeyConstraint("device_library_id", "pass_type_id", "serial"),
    )
    op.create_index(
        "ix_apple_registrations_serial", "apple_registrations", ["serial"], unique=False
    )
    op.create_table(
        "apple_push_queue",
        sa.Column("pass_type_id", sa.String(length=128), nullable=False),
        sa.Column("push_token", sa.String(length=200), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("pass_type_id", "push_token"),
    )
    op.create_index("ix_apple_push_queue_due", "apple_push_queue", ["due_at"], unique=False)
    op.create_table(
        "apple_logs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message", sa.String(length=1000), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("apple_logs")
    op.drop_index("ix_apple_push_queue_due", table_name="apple_push_queue")
    op.drop_table("apple_push_queue")
    op.drop_index("ix_apple_registrations_serial", table_name="apple_registrations")
    op.drop_table("apple_registrations")
    op.drop_table("apple_devices")
    op.drop_table("counters")
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.drop_column("update_tag")
