"""The inbox: one row per inbound request or webhook, unique by (source, external id)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from walletsvc.services.ports import InboxRecord, PendingInbox
from walletsvc.storage.tables import InboxRow


class SqlInbox:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def claim(
        self, source: str, external_id: str, fingerprint: str, now: datetime, body: bytes | None
    ) -> None:
        # The flush makes a concurrent copy wait on the unique index (PostgreSQL) until
        # the first commits, then fail as a duplicate; the unit of work raises DuplicateKey.
        self._session.add(
            InboxRow(
                source=source,
                external_id=external_id,
                fingerprint=fingerprint,
                received_at=now,
                body=body,
            )
        )
        await self._session.flush()

    async def get(self, source: str, external_id: str) -> InboxRecord | None:
        row = await self._row(source, external_id)
        if row is None:
            return None
        return InboxRecord(row.fingerprint, row.response, row.processed_at is not None)

    async def respond(
        self, source: str, external_id: str, response: dict[str, Any], now: datetime
    ) -> None:
        row = await self._row(source, external_id)
        assert row is not None, "respond() follows claim() in the same transaction"
        row.response = response
        row.processed_at = now
        # Once acted on, the body is not needed: it goes, with what it said about people.
        row.body = None
        self._session.add(row)

    async def scrub(
        self,
        source_prefix: str,
        mentions: Callable[[bytes, Mapping[str, Any] | None], bool],
        now: datetime,
    ) -> int:
        """Drop the bodies `mentions` picks, closing pending ones unprocessed; return how many."""
        query = select(InboxRow).where(
            col(InboxRow.source).startswith(source_prefix), col(InboxRow.body).is_not(None)
        )
        scrubbed = 0
        for row in (await self._session.exec(query.with_for_update())).all():
            if row.body is None or not mentions(row.body, row.response):
                continue
            row.body = None
            if row.processed_at is None:
                row.response = {"outcome": "erased"}
                row.processed_at = now
            self._session.add(row)
            scrubbed += 1
        await self._session.flush()
        return scrubbed

    async def next_pending(self, source_prefix: str) -> PendingInbox | None:
        """Lock and return the oldest unprocessed row of these sources (skip ones others hold)."""
        query = (
            select(InboxRow)
            .where(
                col(InboxRow.source).startswith(source_prefix),
                col(InboxRow.processed_at).is_(None),
            )
            .order_by(col(InboxRow.id))
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        row = (await self._session.exec(query)).first()
        if row is None:
            return None
        return PendingInbox(row.source, row.external_id, row.body or b"", row.received_at)

    async def _row(self, source: str, external_id: str) -> InboxRow | None:
        query = select(InboxRow).where(
            col(InboxRow.source) == source, col(InboxRow.external_id) == external_id
        )
        return (await self._session.exec(query)).first()
