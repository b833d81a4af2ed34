"""Wider inbox keys: sources name an adapter and a terminal, keys a program and an event id.

`pos:<adapter>:<terminal>` reaches 101 characters and `<program>:<scan or event id>`
264; the 64 and 200 of 0004 rejected long but valid ids on PostgreSQL.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.alter_column(
            "source", existing_type=sa.String(length=64), type_=sa.String(length=128)
        )
        batch_op.alter_column(
            "external_id", existing_type=sa.String(length=200), type_=sa.String(length=300)
        )


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.alter_column(
            "external_id", existing_type=sa.String(length=300), type_=sa.String(length=200)
        )
        batch_op.alter_column(
            "source", existing_type=sa.String(length=128), type_=sa.String(length=64)
        )
