"""The PostgreSQL pool under a burst: requests share its connections, none are churned.

SQLAlchemy closes an overflow connection as soon as it is returned to a full pool, so
a load just above the pool's size used to open and close a PostgreSQL backend every
few requests (1,245 new sessions in 35 s in bench/apple_web_service.py at 16
clients). The pool is fixed now: a burst waits for a connection and reuses it.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from walletsvc.storage.database import create_engine

pytestmark = pytest.mark.postgres


async def _backend(engine: AsyncEngine) -> int:
    """Do what a request does with a connection; return its PostgreSQL backend."""
    async with engine.connect() as connection:
        pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await asyncio.sleep(0.005)  # hold it, as a request's statements do
    return int(pid)


async def test_a_burst_above_the_pool_reuses_its_connections(external_database: str) -> None:
    engine = create_engine(external_database, pool_size=3)
    try:
        backends: set[int] = set()
        for _ in range(20):  # 20 bursts of 8 requests, 5 more than the pool holds
            backends |= set(await asyncio.gather(*(_backend(engine) for _ in range(8))))
        # All 160 ran, on the pool's three connections, the same three throughout:
        # none was opened for a burst and closed after it.
        assert len(backends) == 3
    finally:
        await engine.dispose()
