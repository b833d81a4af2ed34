"""The append-only loyalty ledger."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, case, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from walletsvc.domain.ledger import EntryKind, LedgerEntry
from walletsvc.domain.tier import LedgerTotals
from walletsvc.storage.mapping import aware
from walletsvc.storage.tables import LedgerEntryRow


class SqlLedger:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def append(self, entry: LedgerEntry, now: datetime) -> None:
        # A business key seen before fails on the unique index: DuplicateKey, nothing twice.
        self._session.add(
            LedgerEntryRow(
                program_id=entry.program_id,
                customer_id=entry.customer_id,
                kind=entry.kind.value,
                points=entry.points,
                business_key=entry.business_key,
                source=entry.source,
                occurred_at=entry.occurred_at,
                recorded_at=now,
            )
        )
        await self._session.flush()

    async def has(self, program_id: str, business_key: str) -> bool:
        query = select(LedgerEntryRow.id).where(
            col(LedgerEntryRow.program_id) == program_id,
            col(LedgerEntryRow.business_key) == business_key,
        )
        return (await self._session.exec(query)).first() is not None

    async def find(self, program_id: str, business_key: str) -> LedgerEntry | None:
        query = select(LedgerEntryRow).where(
            col(LedgerEntryRow.program_id) == program_id,
            col(LedgerEntryRow.business_key) == business_key,
        )
        row = (await self._session.exec(query)).first()
        if row is None:
            return None
        return LedgerEntry(
            program_id=row.program_id,
            customer_id=row.customer_id,
            kind=EntryKind(row.kind),
            points=row.points,
            business_key=row.business_key,
            occurred_at=aware(row.occurred_at),
            source=row.source,
        )

    async def balance(self, customer_id: str) -> int:
        query = select(func.coalesce(func.sum(LedgerEntryRow.points), 0)).where(
            col(LedgerEntryRow.customer_id) == customer_id
        )
        return int((await self._session.exec(query)).one())

    async def totals(self, customer_id: str, cutoff: datetime) -> LedgerTotals:
        points = col(LedgerEntryRow.points)
        earned_before = case(
            (and_(points > 0, col(LedgerEntryRow.occurred_at) < cutoff), points), else_=0
        )
        debit = case((points < 0, -points), else_=0)
        query = select(
            func.coalesce(func.sum(earned_before), 0), func.coalesce(func.sum(debit), 0)
        ).where(col(LedgerEntryRow.customer_id) == customer_id)
        earned, debited = (await self._session.exec(query)).one()
        return LedgerTotals(earned_before_cutoff=int(earned), debited=int(debited))

    async def earned_since(self, customer_id: str, since: datetime) -> int:
        query = select(func.coalesce(func.sum(LedgerEntryRow.points), 0)).where(
            col(LedgerEntryRow.customer_id) == customer_id,
            col(LedgerEntryRow.kind) == EntryKind.EARN.value,
            col(LedgerEntryRow.occurred_at) >= since,
        )
        return int((await self._session.exec(query)).one())
