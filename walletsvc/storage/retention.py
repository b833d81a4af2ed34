"""Deleting what has served its purpose: delivered events, old inbox rows, Apple's logs.

(An inbox row's raw body goes earlier, as soon as it has been acted on: storage/inbox.py.)

Every statement removes at most `limit` rows, oldest first, picked through the primary
key (ids grow with time), so one call is a short transaction whatever the backlog, and
the caller repeats until a call removes fewer than `limit`. Nothing still owed is
touched: an outbox row with a delivery row (pending or dead) or not yet distributed
stays, and so does an inbox row a webhook worker has not processed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Delete, delete, exists, select
from sqlmodel.ext.asyncio.session import AsyncSession

from walletsvc.storage.tables import (
    AppleLogRow,
    EventDeliveryRow,
    GoogleNoticeRow,
    InboxRow,
    OutboxRow,
)

_outbox = OutboxRow.__table__  # type: ignore[attr-defined]
_deliveries = EventDeliveryRow.__table__  # type: ignore[attr-defined]
_inbox = InboxRow.__table__  # type: ignore[attr-defined]
_logs = AppleLogRow.__table__  # type: ignore[attr-defined]
_notices = GoogleNoticeRow.__table__  # type: ignore[attr-defined]


class SqlRetention:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def prune_events(self, before: datetime, limit: int, *, undistributed: bool) -> int:
        """Delete events recorded before `before` that every sink has been given.

        `undistributed`: also those never handed to the sinks, for a deployment that
        has none (a sink added later would otherwise receive them all).
        """
        owed = exists().where(_deliveries.c.seq == _outbox.c.seq)
        handed = _outbox.c.distributed_at.is_not(None)
        oldest = (
            select(_outbox.c.seq)
            .where(_outbox.c.recorded_at < before, ~owed, *([] if undistributed else [handed]))
            .order_by(_outbox.c.seq)
            .limit(limit)
        )
        return await self._delete(delete(_outbox).where(_outbox.c.seq.in_(oldest)))

    async def prune_inbox(self, before: datetime, limit: int) -> int:
        """Delete processed inbox rows received before `before`: their retries are long over."""
        oldest = (
            select(_inbox.c.id)
            .where(_inbox.c.received_at < before, _inbox.c.processed_at.is_not(None))
            .order_by(_inbox.c.id)
            .limit(limit)
        )
        return await self._delete(delete(_inbox).where(_inbox.c.id.in_(oldest)))

    async def prune_apple_logs(self, before: datetime, limit: int) -> int:
        """Delete Apple Wallet's log messages received before `before`."""
        oldest = (
            select(_logs.c.id).where(_logs.c.received_at < before).order_by(_logs.c.id).limit(limit)
        )
        return await self._delete(delete(_logs).where(_logs.c.id.in_(oldest)))

    async def prune_google_notices(self, before: datetime, limit: int) -> int:
        """Delete notices older than Google's 24-hour counting window needs."""
        oldest = (
            select(_notices.c.id)
            .where(_notices.c.sent_at < before)
            .order_by(_notices.c.id)
            .limit(limit)
        )
        return await self._delete(delete(_notices).where(_notices.c.id.in_(oldest)))

    async def _delete(self, statement: Delete) -> int:
        result = cast(CursorResult[Any], await self._session.exec(statement))
        return int(result.rowcount or 0)
