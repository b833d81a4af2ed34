"""The unit of work's asyncpg connection, for the statements of the hot paths.

On PostgreSQL the repositories that a scan goes through (storage/pg_repositories.py)
send their statements straight through asyncpg instead of the ORM: the ORM's
per-statement cost (unit of work, compilation, the greenlet bridge) was about ten
times the driver's. They share the session's connection and its transaction, so ORM
and raw statements of one unit of work still commit or roll back together.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm.util import identity_key
from sqlmodel.ext.asyncio.session import AsyncSession

from walletsvc.storage.tables import CustomerRow, PassRow


class PgConnection:
    """Hands out the session's asyncpg connection, with the transaction begun when needed.

    A transaction begins at the first statement that locks or writes. Reads before that
    run on their own, which under READ COMMITTED sees what a read inside a transaction
    would (each statement takes its own snapshot), and spares a read-only unit of work
    its BEGIN and ROLLBACK.
    """

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._raw: Any = None
        self._began = False

    async def __call__(self, *, begin: bool = True) -> Any:
        """Return the asyncpg connection, after the ORM has written what it holds."""
        session = self._session
        if session.new or session.dirty or session.deleted:
            await session.flush()  # what the ORM was told comes first, as autoflush would
        if self._raw is None:
            connection = await session.connection()
            self._raw = (await connection.get_raw_connection()).dbapi_connection
        if (begin or self._raw._transaction is not None) and not self._began:
            if self._raw._transaction is None:
                # SQLAlchemy's adapter owns the transaction, so the session's commit
                # and rollback end what these statements did.
                await self._raw._start_transaction()
            self._began = True
        return self._raw._connection

    def forget(self, table: type[CustomerRow] | type[PassRow], key: str) -> None:
        """Drop a row the ORM may hold from before a raw write, so it reads it afresh."""
        row = self._session.identity_map.get(identity_key(table, key))
        if row is not None:
            self._session.expunge(row)
