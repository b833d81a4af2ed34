"""A program's revision: a number that changes whenever its row or one of its stores does.

Each process keeps programs and their stores in a cache (storage/pg_repositories.py,
ProgramCache) and checks it against the database on every pass lock and pass read.
It used to compare md5 digests of the whole program row (its JSON design included) and
of all its stores, computed by PostgreSQL on every request (0.05 ms of PostgreSQL time per
"latest pass" read for a program without stores, 0.3-0.4 ms with a hundred: the digest
grows with the stores). The revision replaces both with one integer column.

It is maintained by triggers, not by our code, so a change made any way at all (the
ORM, raw SQL, the CLI, psql, a later migration) moves it and every other process's
cache sees the change at its next read. Numbers come from one sequence shared by all
programs, never from `revision + 1`: a number is never used twice, so a revision
that a rolled-back transaction (or a deleted and re-added program) had cannot match
different content later. The sequence is not OWNED BY the column, so
`TRUNCATE ... RESTART IDENTITY` (the test suite's) does not rewind it either.

`stores_version` (0012) stays separate: it is bumped by the application when a store
is added and owes a background re-render of the program's passes. The revision moves
on any change of the program row (the refresh's own marks included) or of its stores,
and only says "read it again"; folding one into the other would start refreshes, or
miss changes.

SQLite gets the column only: the cache exists only on PostgreSQL
(storage/unit_of_work.py, SqlUnitOfWorkFactory).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UPGRADE = [
    "CREATE SEQUENCE program_revisions AS bigint",
    # Every insert and update of a program takes a fresh number, whatever it set itself.
    """
    CREATE FUNCTION program_next_revision() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.revision := nextval('program_revisions');
        RETURN NEW;
    END
    $$
    """,
    "CREATE TRIGGER program_revision BEFORE INSERT OR UPDATE ON programs"
    " FOR EACH ROW EXECUTE FUNCTION program_next_revision()",
    # A store's insert, update or delete touches its program's row (both programs' when
    # it moves), which the trigger above gives a new revision. The same transaction
    # holds the program row until it commits, as the application's own stores_version
    # bump already did; the foreign key's KEY SHARE lock does not conflict with it.
    """
    CREATE FUNCTION store_changed_program_revision() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            UPDATE programs SET revision = 0 WHERE id = OLD.program_id;
        END IF;
        IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.program_id <> OLD.program_id) THEN
            UPDATE programs SET revision = 0 WHERE id = NEW.program_id;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    "CREATE TRIGGER store_program_revision AFTER INSERT OR UPDATE OR DELETE ON stores"
    " FOR EACH ROW EXECUTE FUNCTION store_changed_program_revision()",
    # TRUNCATE fires no row triggers: every program may have lost stores.
    """
    CREATE FUNCTION stores_truncated_program_revision() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE programs SET revision = 0;
        RETURN NULL;
    END
    $$
    """,
    "CREATE TRIGGER stores_truncated_program_revision AFTER TRUNCATE ON stores"
    " FOR EACH STATEMENT EXECUTE FUNCTION stores_truncated_program_revision()",
    # The programs there are now get their first numbers through the trigger.
    "UPDATE programs SET revision = 0",
]

_DOWNGRADE = [
    "DROP TRIGGER stores_truncated_program_revision ON stores",
    "DROP FUNCTION stores_truncated_program_revision()",
    "DROP TRIGGER store_program_revision ON stores",
    "DROP FUNCTION store_changed_program_revision()",
    "DROP TRIGGER program_revision ON programs",
    "DROP FUNCTION program_next_revision()",
    "DROP SEQUENCE program_revisions",
]


def upgrade() -> None:
    with op.batch_alter_table("programs") as batch:
        batch.add_column(sa.Column("revision", sa.BigInteger(), nullable=False, server_default="0"))
    if op.get_bind().dialect.name == "postgresql":
        for statement in _UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _DOWNGRADE:
            op.execute(statement)
    with op.batch_alter_table("programs") as batch:
        batch.drop_column("revision")
