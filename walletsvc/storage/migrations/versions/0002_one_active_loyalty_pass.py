"""One active loyalty pass per customer, enforced by a partial unique index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE_LOYALTY = "kind = 'loyalty' AND state = 'active'"


def upgrade() -> None:
    op.create_index(
        "uq_passes_one_active_loyalty",
        "passes",
        ["customer_id"],
        unique=True,
        postgresql_where=sa.text(ACTIVE_LOYALTY),
        sqlite_where=sa.text(ACTIVE_LOYALTY),
    )


def downgrade() -> None:
    op.drop_index("uq_passes_one_active_loyalty", table_name="passes")
