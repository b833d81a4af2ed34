"""The operator dashboard reads events of a few types within a time window.

Without this index each dashboard view would read the whole outbox, which only grows.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_outbox_type_recorded", "outbox", ["type", "recorded_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_type_recorded", table_name="outbox")
