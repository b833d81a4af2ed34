"""The durable push queue: workers claim due rows, push, then settle them.

On PostgreSQL claims use FOR UPDATE SKIP LOCKED, so several walletsvc processes share
the queue without pushing one row twice; a claim is a lease, so a worker that dies
mid-push leaves rows that another picks up when the lease runs out. SQLite has one
writer at a time and needs no more than the lease.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from walletsvc.domain.push import PushJob
from walletsvc.storage.tables import ApplePushRow


class SqlPushQueue:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def claim(self, now: datetime, lease: timedelta, limit: int) -> list[PushJob]:
        """Lease up to `limit` due pushes to this worker."""
        query = (
            select(ApplePushRow)
            .where(
                col(ApplePushRow.due_at) <= now,
                or_(
                    col(ApplePushRow.claimed_until).is_(None),
                    col(ApplePushRow.claimed_until) < now,
                ),
            )
            .order_by(col(ApplePushRow.due_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = (await self._session.exec(query)).all()
        jobs = []
        for row in rows:
            row.claimed_until = now + lease
            self._session.add(row)
            jobs.append(PushJob(row.pass_type_id, row.push_token, row.generation, row.attempts))
        return jobs

    async def settle(self, job: PushJob) -> bool:
        """Remove a pushed row unless a change arrived since the claim; True when removed."""
        result = await self._session.exec(
            delete(ApplePushRow).where(
                col(ApplePushRow.pass_type_id) == job.pass_type_id,
                col(ApplePushRow.push_token) == job.push_token,
                col(ApplePushRow.generation) == job.generation,
            )
        )
        if result.rowcount:
            return True
        # Changed mid-push: the device may have fetched before the change committed.
        await self._release(job, due_at=None, attempts=0, error=None)
        return False

    async def drop(self, job: PushJob) -> None:
        """Forget a push entirely (its token is dead)."""
        await self._session.exec(
            delete(ApplePushRow).where(
                col(ApplePushRow.pass_type_id) == job.pass_type_id,
                col(ApplePushRow.push_token) == job.push_token,
            )
        )

    async def postpone(self, job: PushJob, due_at: datetime, error: str) -> None:
        """Hand the row back to be tried again at `due_at`."""
        await self._release(job, due_at=due_at, attempts=job.attempts + 1, error=error)

    async def pending(self) -> int:
        """Return how many pushes are owed (for metrics and tests)."""
        result = await self._session.exec(select(func.count()).select_from(ApplePushRow))
        return int(result.one())

    async def _release(
        self, job: PushJob, *, due_at: datetime | None, attempts: int, error: str | None
    ) -> None:
        values: dict[str, object] = {
            "claimed_until": None,
            "attempts": attempts,
            "last_error": error,
        }
        if due_at is not None:
            values["due_at"] = due_at
        await self._session.exec(
            update(ApplePushRow)
            .where(
                col(ApplePushRow.pass_type_id) == job.pass_type_id,
                col(ApplePushRow.push_token) == job.push_token,
            )
            .values(**values)
        )
