"""Token buckets in the database, so a rate limit holds across every walletsvc process."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from walletsvc.storage.tables import CallbackRejectionRow, RateBucketRow


class SqlRateBuckets:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def take(
        self, key: str, want: int, now: datetime, rate: float, burst: int
    ) -> tuple[int, float]:
        """Take up to `want` tokens from the bucket `key`; (taken, seconds to wait if none).

        The row is write-locked for the rest of the caller's transaction, so processes
        take turns: an UPDATE first, because on SQLite a plain SELECT takes only a
        shared lock and two processes could both read the same tokens.
        """
        dialect = postgresql if self._session.get_bind().dialect.name == "postgresql" else sqlite
        table = RateBucketRow.__table__  # type: ignore[attr-defined]
        await self._session.exec(
            dialect.insert(table)
            .values(key=key, tokens=float(burst), updated_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
        )
        await self._session.exec(
            update(RateBucketRow)
            .where(col(RateBucketRow.key) == key)
            .values(tokens=col(RateBucketRow.tokens))
        )
        row = (
            await self._session.exec(
                select(RateBucketRow).where(col(RateBucketRow.key) == key).with_for_update()
            )
        ).one()
        await self._session.refresh(row)
        # SQLite hands the time back without its zone; it was written in UTC.
        updated = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
        elapsed = max(0.0, (now - updated).total_seconds())
        tokens = min(float(burst), row.tokens + elapsed * rate)
        taken = min(want, int(tokens))
        row.tokens = tokens - taken
        row.updated_at = max(now, updated)
        self._session.add(row)
        await self._session.flush()
        wait = 0.0 if taken else (1.0 - tokens) / rate
        return taken, wait


class SqlCallbackRejections:
    """Counters shared by every process, kept across restarts."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, source: str, reason: str) -> None:
        table = CallbackRejectionRow.__table__  # type: ignore[attr-defined]
        dialect = postgresql if self._session.get_bind().dialect.name == "postgresql" else sqlite
        # One statement, so concurrent refusals add up instead of overwriting each other.
        await self._session.exec(
            dialect.insert(table)
            .values(source=source, reason=reason, total=1)
            .on_conflict_do_update(
                index_elements=["source", "reason"], set_={"total": table.c.total + 1}
            )
        )

    async def total(self, source: str, reason: str) -> int:
        query = select(CallbackRejectionRow.total).where(
            col(CallbackRejectionRow.source) == source,
            col(CallbackRejectionRow.reason) == reason,
        )
        return int((await self._session.exec(query)).first() or 0)
