"""Google Wallet objects: the durable sync queue, its outcome, notices and written classes.

Claims work like the Apple push queue (storage/apple_push_queue.py): a lease, and
FOR UPDATE SKIP LOCKED on PostgreSQL so several processes share the queue without
syncing one pass twice; settling compares generations, so a change that lands while
its sync is in flight is synced again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from walletsvc.domain.google_wallet import GoogleJob, GoogleStatus, GoogleSyncState
from walletsvc.storage.tables import GoogleClassRow, GoogleNoticeRow, GoogleObjectRow


class SqlGoogleQueue:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def queue(self, serial: str, issuer_id: str, due_at: datetime) -> None:
        """Owe a sync of the pass's object; a sync already owed absorbs this change."""
        dialect = postgresql if self._session.get_bind().dialect.name == "postgresql" else sqlite
        table = GoogleObjectRow.__table__  # type: ignore[attr-defined]
        insert = dialect.insert(table).values(
            serial=serial,
            issuer_id=issuer_id,
            generation=1,
            attempts=0,
            due_at=due_at,
            state=GoogleSyncState.PENDING.value,
            inserted=False,
            installs=0,
            updated_at=due_at,
        )
        # A due time already set stays: a stream of changes must not postpone the sync.
        statement = insert.on_conflict_do_update(
            index_elements=["serial"],
            set_={
                "generation": table.c.generation + 1,
                "issuer_id": issuer_id,
                "due_at": func.coalesce(table.c.due_at, insert.excluded.due_at),
                "state": GoogleSyncState.PENDING.value,
                "updated_at": insert.excluded.updated_at,
            },
        )
        await self._session.exec(statement)

    async def claim(self, now: datetime, lease: timedelta, limit: int) -> list[GoogleJob]:
        """Lease up to `limit` due syncs to this worker."""
        query = (
            select(GoogleObjectRow)
            .where(
                col(GoogleObjectRow.due_at) <= now,
                or_(
                    col(GoogleObjectRow.claimed_until).is_(None),
                    col(GoogleObjectRow.claimed_until) < now,
                ),
            )
            .order_by(col(GoogleObjectRow.due_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        jobs = []
        for row in (await self._session.exec(query)).all():
            row.claimed_until = now + lease
            self._session.add(row)
            jobs.append(
                GoogleJob(row.serial, row.generation, row.attempts, row.inserted, row.last_tier)
            )
        return jobs

    async def settle(self, job: GoogleJob, tier: str | None, now: datetime) -> bool:
        """Record a sync Google accepted; True unless a change arrived since the claim."""
        latest = col(GoogleObjectRow.generation) == job.generation
        values: dict[str, Any] = {
            "inserted": True,
            "last_tier": tier,
            "claimed_until": None,
            "attempts": 0,
            "last_error": None,
            "error_field": None,
            "synced_at": now,
            "updated_at": now,
            "state": case(
                (latest, GoogleSyncState.SYNCED.value), else_=GoogleSyncState.PENDING.value
            ),
            "due_at": case((latest, None), else_=col(GoogleObjectRow.due_at)),
        }
        await self._update(job.serial, values)
        status = await self.status(job.serial)
        return status is not None and status.state is GoogleSyncState.SYNCED

    async def postpone(self, job: GoogleJob, due_at: datetime, error: str) -> None:
        """Hand the sync back to be tried again at `due_at`."""
        await self._update(
            job.serial,
            {
                "claimed_until": None,
                "attempts": job.attempts + 1,
                "last_error": error[:500],
                "due_at": due_at,
            },
        )

    async def fail(self, job: GoogleJob, error: str, field: str | None, now: datetime) -> None:
        """Keep Google's refusal for the operator; only a later change is tried again."""
        latest = col(GoogleObjectRow.generation) == job.generation
        await self._update(
            job.serial,
            {
                "claimed_until": None,
                "attempts": 0,
                "state": GoogleSyncState.ERROR.value,
                "last_error": error[:500],
                "error_field": field[:200] if field else None,
                "updated_at": now,
                "due_at": case((latest, None), else_=col(GoogleObjectRow.due_at)),
            },
        )

    async def status(self, serial: str) -> GoogleStatus | None:
        row = await self._row(serial)
        if row is None:
            return None
        return GoogleStatus(
            GoogleSyncState(row.state), row.last_error, row.error_field, row.installs
        )

    async def count_install(self, serial: str, delta: int) -> None:
        """Add a save (+1) or a delete (-1) reported by Google; never below zero."""
        installs = col(GoogleObjectRow.installs)
        await self._update(
            serial, {"installs": case((installs + delta < 0, 0), else_=installs + delta)}
        )

    async def pending(self) -> int:
        """Return how many syncs are owed (for metrics and tests)."""
        query = select(func.count()).where(col(GoogleObjectRow.due_at).is_not(None))
        return int((await self._session.exec(query)).one())

    async def notices_since(self, serial: str, since: datetime) -> int:
        query = select(func.count()).where(
            col(GoogleNoticeRow.serial) == serial, col(GoogleNoticeRow.sent_at) > since
        )
        return int((await self._session.exec(query)).one())

    async def add_notice(self, serial: str, now: datetime) -> None:
        self._session.add(GoogleNoticeRow(serial=serial, sent_at=now))

    async def class_digest(self, class_id: str) -> str | None:
        row = await self._session.get(GoogleClassRow, class_id)
        return row.digest if row is not None else None

    async def set_class_digest(self, class_id: str, digest: str, now: datetime) -> None:
        row = await self._session.get(GoogleClassRow, class_id)
        if row is None:
            row = GoogleClassRow(class_id=class_id, digest=digest, updated_at=now)
        row.digest = digest
        row.updated_at = now
        self._session.add(row)

    async def _row(self, serial: str) -> GoogleObjectRow | None:
        query = select(GoogleObjectRow).where(col(GoogleObjectRow.serial) == serial)
        return (await self._session.exec(query)).first()

    async def _update(self, serial: str, values: dict[str, Any]) -> None:
        await self._session.exec(
            update(GoogleObjectRow).where(col(GoogleObjectRow.serial) == serial).values(**values)
        )
