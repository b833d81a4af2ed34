"""Incoming-request token buckets in the database: one upsert refills and takes.

Every process leases tokens here (services/request_limits.py), so a limit holds across
processes. The statement runs on its own connection, never inside a caller's
transaction: a scan's transaction is not lengthened and its locks are not mixed in.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Double, Integer, bindparam, cast, delete, func, literal
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from walletsvc.storage.tables import RequestBucketRow

TABLE = RequestBucketRow.__table__  # type: ignore[attr-defined]


class SqlRequestBuckets:
    """`take` and `forget_full` on the request_buckets table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._statement = self._take_statement()

    def _take_statement(self) -> Any:
        now = bindparam("now", type_=Double)
        want = bindparam("want", type_=Integer)
        rate = bindparam("rate", type_=Double)
        burst = bindparam("burst", type_=Double)
        old = TABLE.c
        # The level the bucket has refilled to by `now` (never from a clock behind the row's).
        elapsed = self._greatest(literal(0.0), now - old.updated_s)
        level = self._least(burst, old.tokens + elapsed * rate)
        taken = self._least(cast(want, Double), self._floor(level))
        later = self._greatest(old.updated_s, now)
        dialect = postgresql if self._postgres else sqlite
        first = self._least(cast(want, Double), burst)
        insert = dialect.insert(TABLE).values(
            key=bindparam("key"),
            tokens=burst - first,
            taken=cast(first, Integer),
            updated_s=now,
            full_at=now + first / rate,
        )
        # Every SET expression reads the row as it was: all computed from one snapshot.
        return insert.on_conflict_do_update(
            index_elements=[old.key],
            set_={
                "tokens": level - taken,
                "taken": cast(taken, Integer),
                "updated_s": later,
                "full_at": later + (burst - (level - taken)) / rate,
            },
        ).returning(TABLE.c.taken, TABLE.c.tokens)

    def _least(self, a: Any, b: Any) -> Any:
        return func.least(a, b) if self._postgres else func.min(a, b)

    def _greatest(self, a: Any, b: Any) -> Any:
        return func.greatest(a, b) if self._postgres else func.max(a, b)

    def _floor(self, value: Any) -> Any:
        # SQLite has no floor() unless built with math functions; the value is >= 0, so
        # truncation is the floor there. PostgreSQL's cast would round instead.
        return func.floor(value) if self._postgres else cast(cast(value, Integer), Double)

    async def take(
        self, key: str, want: int, now: float, rate: float, burst: int
    ) -> tuple[int, float]:
        """Take up to `want` tokens of `key`; return how many and, when none, seconds to wait."""
        params = {"key": key, "want": want, "now": now, "rate": rate, "burst": float(burst)}
        if self._postgres:
            # One statement in autocommit: one round trip, no BEGIN/COMMIT.
            async with self._engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                row = (await autocommit.execute(self._statement, params)).one()
        else:
            async with self._engine.begin() as connection:
                row = (await connection.execute(self._statement, params)).one()
        taken, tokens = int(row[0]), float(row[1])
        wait = 0.0 if taken else max(0.0, 1.0 - tokens) / rate
        return taken, wait

    async def forget_full(self, now: float) -> int:
        """Delete the buckets that have refilled completely (a missing row is a full bucket)."""
        async with self._engine.begin() as connection:
            result = await connection.execute(delete(TABLE).where(TABLE.c.full_at < now))
        return int(getattr(result, "rowcount", 0) or 0)
