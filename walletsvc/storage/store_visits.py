"""The last accepted geofence event per customer and store, and counts of refused claims."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from walletsvc.domain.event import LOCATION_EVENT_TYPES
from walletsvc.domain.geofence import AcceptedEvent
from walletsvc.storage.mapping import aware
from walletsvc.storage.tables import (
    EventDeliveryRow,
    GeofenceRefusalRow,
    OutboxRow,
    StoreVisitRow,
)


class SqlStoreVisitRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._locked: set[tuple[str, str]] = set()

    async def forget(self, customer_ids: Sequence[str], *, delivered_too: bool) -> int:
        """Delete the customers' visit state and store events; return how many events went.

        The events are the store entered/dwelled/exited rows of the outbox and what is
        still owed of them to sinks. `delivered_too=False` drops only events not yet
        delivered to every sink (consent withdrawn: nothing more leaves); True drops the
        delivered history as well (erasure).
        """
        if not customer_ids:
            return 0
        await self._session.exec(
            delete(StoreVisitRow).where(col(StoreVisitRow.customer_id).in_(customer_ids))
        )
        chosen = select(OutboxRow.seq).where(
            col(OutboxRow.subject).in_(customer_ids),
            col(OutboxRow.type).in_(LOCATION_EVENT_TYPES),
        )
        if not delivered_too:
            owed = select(EventDeliveryRow.seq)
            chosen = chosen.where(
                or_(col(OutboxRow.distributed_at).is_(None), col(OutboxRow.seq).in_(owed))
            )
        seqs = [seq for seq in (await self._session.exec(chosen)).all() if seq is not None]
        if not seqs:
            return 0
        await self._session.exec(
            delete(EventDeliveryRow).where(col(EventDeliveryRow.seq).in_(seqs))
        )
        await self._session.exec(delete(OutboxRow).where(col(OutboxRow.seq).in_(seqs)))
        return len(seqs)

    async def get_for_update(self, customer_id: str, store_id: str) -> AcceptedEvent | None:
        # Row-locked on PostgreSQL, so two claims of one customer at one store are judged
        # one after the other. Before the first accepted event there is no row to lock:
        # then the primary key makes the second insert fail (DuplicateKey) and the caller
        # judges its claim again, against the first one's row.
        row = await self._session.get(
            StoreVisitRow, (customer_id, store_id), with_for_update=True, populate_existing=True
        )
        if row is None:
            return None
        self._locked.add((customer_id, store_id))
        return AcceptedEvent(
            type=row.type,
            occurred_at=aware(row.occurred_at),
            visit_started_at=aware(row.visit_started_at) if row.visit_started_at else None,
        )

    async def upsert(
        self,
        customer_id: str,
        store_id: str,
        event: AcceptedEvent,
        dwell_s: int | None,
        now: datetime,
    ) -> None:
        # Update only a row this transaction holds locked. Otherwise insert, even if a row
        # has appeared since: under READ COMMITTED a fresh read would see a concurrent
        # first visit's row and overwrite it, judged against nothing; the insert instead
        # fails on the primary key and the claim is judged again against that row.
        key = (customer_id, store_id)
        row = await self._session.get(StoreVisitRow, key) if key in self._locked else None
        if row is None:
            row = StoreVisitRow(
                customer_id=customer_id,
                store_id=store_id,
                type=event.type,
                occurred_at=event.occurred_at,
                updated_at=now,
            )
        row.type = event.type
        row.occurred_at = event.occurred_at
        row.visit_started_at = event.visit_started_at
        row.dwell_s = dwell_s
        row.updated_at = now
        self._session.add(row)
        # Flushed here, so a concurrent first insert fails inside the unit of work.
        await self._session.flush()


class SqlGeofenceRefusals:
    """Counters shared by every process, kept across restarts."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, program_id: str, reason: str) -> None:
        table = GeofenceRefusalRow.__table__  # type: ignore[attr-defined]
        dialect = postgresql if self._session.get_bind().dialect.name == "postgresql" else sqlite
        # One statement, so concurrent refusals add up instead of overwriting each other.
        bump = (
            dialect.insert(table)
            .values(program_id=program_id, reason=reason, total=1)
            .on_conflict_do_update(
                index_elements=["program_id", "reason"], set_={"total": table.c.total + 1}
            )
        )
        await self._session.exec(bump)

    async def total(self, program_id: str, reason: str) -> int:
        query = select(GeofenceRefusalRow.total).where(
            col(GeofenceRefusalRow.program_id) == program_id,
            col(GeofenceRefusalRow.reason) == reason,
        )
        return int((await self._session.exec(query)).first() or 0)
