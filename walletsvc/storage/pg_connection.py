"""The unit of work's asyncpg connection, for the statements of the hot paths.

On PostgreSQL the repositories that a scan goes through (storage/pg_repositories.py)
send their statements straight through asyncpg instead of the ORM: the ORM's
per-statement cost (unit of work, compilation, the greenlet bridge) was about ten
times the driver's. They share one pooled connection and its transaction with the
ORM, so ORM and raw statements of one unit of work still commit or roll back together.

A unit of work whose statements are all raw (a scan, a pass download, Apple's "what
changed") never opens an ORM session: it takes a connection from the engine's pool,
begins, commits and gives it back itself. The session around the raw statements
(its transaction bookkeeping, and a greenlet hop for each of connection, commit,
rollback and close) cost about 0.8 ms of a scan's 3.2 ms of CPU. The ORM session is
made only when an ORM repository is first used, bound to the same connection
(`PgLink.orm`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker
from sqlalchemy.orm.util import identity_key
from sqlalchemy.util import greenlet_spawn
from sqlmodel.ext.asyncio.session import AsyncSession

from walletsvc.storage.tables import CustomerRow, PassRow


class PgLink:
    """One unit of work's hold on PostgreSQL: a pooled connection, and a session if needed.

    A transaction begins at the first statement that locks or writes. Reads before that
    run on their own, which under READ COMMITTED sees what a read inside a transaction
    would (each statement takes its own snapshot), and spares a read-only unit of work
    its BEGIN and ROLLBACK.

    The transaction is the one SQLAlchemy's asyncpg adapter tracks (its `_transaction`),
    so whichever of the two comes first, an ORM statement and a raw one run in one
    transaction, and the session's commit or rollback ends what the raw ones did.
    """

    def __init__(self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._engine = engine
        self._sessions = sessions
        self.session: AsyncSession | None = None
        self._pooled: Any = None  # the pool's connection, when we took it (not the session)
        self._bound: AsyncConnection | None = None  # the session's view of _pooled
        self._adapter: Any = None  # SQLAlchemy's adapter around the asyncpg connection
        self._began = False

    def orm(self) -> AsyncSession:
        """Return the unit of work's ORM session, made on first use."""
        if self.session is None:
            if self._pooled is None:
                self.session = self._sessions()
            else:
                # Raw statements came first: the session joins their connection (and
                # their transaction, which the adapter tracks).
                sync = Connection(self._engine.sync_engine, connection=self._pooled)
                self._bound = AsyncConnection(self._engine, sync)
                self.session = self._sessions(bind=self._bound)
        return self.session

    async def __call__(self, *, begin: bool = True) -> Any:
        """Return the asyncpg connection, after the ORM has written what it holds."""
        session = self.session
        if session is not None and (session.new or session.dirty or session.deleted):
            await session.flush()  # what the ORM was told comes first, as autoflush would
        if self._adapter is None:
            if session is not None:
                connection = await session.connection()
                self._adapter = (await connection.get_raw_connection()).dbapi_connection
            else:
                self._pooled = await self._engine.raw_connection()
                self._adapter = self._pooled.dbapi_connection
        adapter = self._adapter
        if (begin or adapter._transaction is not None) and not self._began:
            if adapter._transaction is None:
                await adapter._start_transaction()
            self._began = True
        return adapter._connection

    def forget(self, table: type[CustomerRow] | type[PassRow], key: str) -> None:
        """Drop a row the ORM may hold from before a raw write, so it reads it afresh."""
        if self.session is None:
            return
        row = self.session.identity_map.get(identity_key(table, key))
        if row is not None:
            self.session.expunge(row)

    async def commit(self) -> None:
        """Commit what the session and the raw statements did (one transaction)."""
        if self.session is not None:
            await self.session.commit()
            if self._pooled is None:
                # The session gave its connection back to the pool with its transaction.
                self._adapter = None
        adapter = self._adapter
        if adapter is not None and adapter._transaction is not None:
            await adapter._call_and_discard(adapter._transaction.commit)
        self._began = False

    async def close(self) -> None:
        """Roll back whatever was not committed and give the connection back."""
        try:
            if self.session is not None:
                try:
                    await self.session.rollback()
                finally:
                    await self.session.close()
        finally:
            self._adapter = None
            pooled, self._pooled = self._pooled, None
            if self._bound is not None:
                bound, self._bound = self._bound, None
                await bound.close()
            elif pooled is not None:
                # Checking in rolls back an open transaction (the pool's reset) and may
                # close a connection beyond pool_size: both await the driver.
                await greenlet_spawn(pooled.close)
