"""Google Wallet: the object sync queue, written classes, notices, rate buckets, refusals.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "google_objects",
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("issuer_id", sa.String(length=40), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("inserted", sa.Boolean(), nullable=False),
        sa.Column("last_tier", sa.String(length=100), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("error_field", sa.String(length=200), nullable=True),
        sa.Column("installs", sa.Integer(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["serial"], ["passes.serial"]),
        sa.PrimaryKeyConstraint("serial"),
    )
    op.create_index("ix_google_objects_due", "google_objects", ["due_at"], unique=False)
    op.create_table(
        "google_classes",
        sa.Column("class_id", sa.String(length=250), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("class_id"),
    )
    op.create_table(
        "google_notices",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_google_notices_serial_sent", "google_notices", ["serial", "sent_at"], unique=False
    )
    op.create_table(
        "rate_buckets",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "callback_rejections",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", "reason"),
    )


def downgrade() -> None:
    op.drop_table("callback_rejections")
    op.drop_table("rate_buckets")
    op.drop_index("ix_google_notices_serial_sent", table_name="google_notices")
    op.drop_table("google_notices")
    op.drop_table("google_classes")
    op.drop_index("ix_google_objects_due", table_name="google_objects")
    op.drop_table("google_objects")
