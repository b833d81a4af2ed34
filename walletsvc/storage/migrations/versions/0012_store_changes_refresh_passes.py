"""Adding a store re-renders the program's passes: their locations list the stores.

`stores_version` is bumped by every store change; `refreshed_stores_version` is the one
every pass has been re-rendered for, as `refreshed_version` is for the design. Apart
from `design_version` because the design version is part of a pass's content digest
(new artwork changes the bundle): a store change must push only the passes whose
locations actually changed.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("programs") as batch:
        batch.add_column(
            sa.Column("stores_version", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("refreshed_stores_version", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("programs") as batch:
        batch.drop_column("refreshed_stores_version")
        batch.drop_column("stores_version")
