"""The tier-updates feed, its cursors in commit order."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from walletsvc.domain.tier import TierUpdate
from walletsvc.storage.counter import claim_interval, next_value
from walletsvc.storage.mapping import aware
from walletsvc.storage.tables import CounterRow, TierUpdateRow

TIER_UPDATE = "tier_update"


class SqlTierFeed:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def append(self, update: TierUpdate, now: datetime) -> int:
        # The counter row stays locked until commit, so tier-changing transactions
        # commit in cursor order and a reader paging by cursor skips nothing.
        cursor = await next_value(self._session, TIER_UPDATE)
        self._session.add(
            TierUpdateRow(
                cursor=cursor,
                program_id=update.program_id,
                customer_id=update.customer_id,
                old_tier=update.old_tier,
                new_tier=update.new_tier,
                balance=update.balance,
                reason=update.reason,
                occurred_at=update.occurred_at,
                recorded_at=now,
            )
        )
        return cursor

    async def page(self, after: int, limit: int, program_id: str | None) -> list[TierUpdate]:
        query = select(TierUpdateRow).where(col(TierUpdateRow.cursor) > after)
        if program_id is not None:
            query = query.where(col(TierUpdateRow.program_id) == program_id)
        query = query.order_by(col(TierUpdateRow.cursor)).limit(limit)
        return [
            TierUpdate(
                program_id=row.program_id,
                customer_id=row.customer_id,
                old_tier=row.old_tier,
                new_tier=row.new_tier,
                balance=row.balance,
                reason=row.reason,
                occurred_at=aware(row.occurred_at),
                cursor=row.cursor,
            )
            for row in (await self._session.exec(query)).all()
        ]


class SqlJobSchedule:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def claim(self, job: str, now: datetime, every_s: int) -> bool:
        return await claim_interval(self._session, _counter(job), int(now.timestamp()), every_s)

    async def release(self, job: str) -> None:
        await self._session.exec(
            update(CounterRow).where(col(CounterRow.name) == _counter(job)).values(value=0)
        )


def _counter(job: str) -> str:
    """Return the counter row of a job: its name, or a digest of a name too long to fit."""
    name = f"job:{job}"
    if len(name) <= 32:
        return name
    return "job:" + hashlib.sha256(job.encode()).hexdigest()[:28]
