"""The append-only loyalty ledger."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from walletsvc.domain.ledger import LedgerEntry
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

    async def balance(self, customer_id: str) -> int:
        query = select(func.coalesce(func.sum(LedgerEntryRow.points), 0)).where(
            col(LedgerEntryRow.customer_id) == customer_id
        )
        return int((await self._session.exec(query)).one())
