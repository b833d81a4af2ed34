"""Tier floors, loyalty policies, the tier feed, secret rotation, erasure, pass refreshes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tier_floor", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("loyalty", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(
            sa.Column("refreshed_version", sa.Integer(), nullable=False, server_default="1")
        )
    with op.batch_alter_table("terminals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("previous_valid_until", sa.DateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "tier_updates",
        sa.Column("cursor", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("program_id", sa.String(length=63), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("old_tier", sa.String(length=100), nullable=False),
        sa.Column("new_tier", sa.String(length=100), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"]),
        sa.PrimaryKeyConstraint("cursor"),
    )
    op.create_index("ix_tier_updates_program_id", "tier_updates", ["program_id"])


def downgrade() -> None:
    op.drop_index("ix_tier_updates_program_id", table_name="tier_updates")
    op.drop_table("tier_updates")
    with op.batch_alter_table("terminals", schema=None) as batch_op:
        batch_op.drop_column("previous_valid_until")
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.drop_column("refreshed_version")
        batch_op.drop_column("loyalty")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("erased_at")
        batch_op.drop_column("tier_floor")
