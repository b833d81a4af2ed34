"""Token buckets of incoming requests, shared by every process (issue 8, limits).

Separate from rate_buckets (Google's outgoing rate): times are epoch seconds so a
single upsert can refill and take, and `full_at` lets idle rows be deleted.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "request_buckets",
        sa.Column("key", sa.String(length=200), primary_key=True),
        sa.Column("tokens", sa.Double(), nullable=False),
        sa.Column("taken", sa.Integer(), nullable=False),
        sa.Column("updated_s", sa.Double(), nullable=False),
        sa.Column("full_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_request_buckets_full_at", "request_buckets", ["full_at"])


def downgrade() -> None:
    op.drop_index("ix_request_buckets_full_at", table_name="request_buckets")
    op.drop_table("request_buckets")
