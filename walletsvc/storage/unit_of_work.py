"""One database transaction holding state changes and their outbox rows."""

from __future__ import annotations

from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from walletsvc.domain.errors import DuplicateKey
from walletsvc.domain.event import DomainEvent
from walletsvc.storage.apple_push_queue import SqlPushQueue
from walletsvc.storage.apple_registrations import SqlAppleDeviceRepository
from walletsvc.storage.google_objects import SqlGoogleQueue
from walletsvc.storage.inbox import SqlInbox
from walletsvc.storage.ledger import SqlLedger
from walletsvc.storage.rate_buckets import SqlCallbackRejections, SqlRateBuckets
from walletsvc.storage.repositories import (
    SqlApiKeyRepository,
    SqlCustomerRepository,
    SqlPassRepository,
    SqlProgramRepository,
    SqlStoreRepository,
    SqlTerminalRepository,
)
from walletsvc.storage.secret_box import SecretBox
from walletsvc.storage.store_visits import SqlGeofenceRefusals, SqlStoreVisitRepository
from walletsvc.storage.tables import OutboxRow
from walletsvc.storage.tier_feed import SqlJobSchedule, SqlTierFeed


def is_unique_violation(exc: IntegrityError) -> bool:
    """Tell a unique-key clash (retryable, or a 409) from other integrity errors (bugs)."""
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    return "UNIQUE constraint failed" in str(exc.orig)


class SqlOutbox:
    """Writes events into the outbox table inside the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, event: DomainEvent) -> None:
        self._session.add(
            OutboxRow(
                event_id=event.id,
                type=event.type,
                subject=event.subject,
                partition_key=event.subject,
                occurred_at=event.occurred_at,
                recorded_at=datetime.now(UTC),
                data=dict(event.data),
            )
        )


class SqlUnitOfWork:
    """A session opened on enter; commit is explicit, anything else rolls back."""

    programs: SqlProgramRepository
    customers: SqlCustomerRepository
    passes: SqlPassRepository
    stores: SqlStoreRepository
    terminals: SqlTerminalRepository
    api_keys: SqlApiKeyRepository
    apple_devices: SqlAppleDeviceRepository
    push_queue: SqlPushQueue
    inbox: SqlInbox
    ledger: SqlLedger
    tier_feed: SqlTierFeed
    schedule: SqlJobSchedule
    store_visits: SqlStoreVisitRepository
    geofence_refusals: SqlGeofenceRefusals
    google_objects: SqlGoogleQueue
    rate_buckets: SqlRateBuckets
    callback_rejections: SqlCallbackRejections
    outbox: SqlOutbox

    def __init__(self, sessions: async_sessionmaker[AsyncSession], box: SecretBox) -> None:
        self._sessions = sessions
        self._box = box

    async def __aenter__(self) -> Self:
        self._session = self._sessions()
        self.programs = SqlProgramRepository(self._session)
        self.customers = SqlCustomerRepository(self._session)
        self.passes = SqlPassRepository(self._session, self._box)
        self.stores = SqlStoreRepository(self._session)
        self.terminals = SqlTerminalRepository(self._session, self._box)
        self.api_keys = SqlApiKeyRepository(self._session)
        self.apple_devices = SqlAppleDeviceRepository(self._session)
        self.push_queue = SqlPushQueue(self._session)
        self.inbox = SqlInbox(self._session)
        self.ledger = SqlLedger(self._session)
        self.tier_feed = SqlTierFeed(self._session)
        self.schedule = SqlJobSchedule(self._session)
        self.store_visits = SqlStoreVisitRepository(self._session)
        self.geofence_refusals = SqlGeofenceRefusals(self._session)
        self.google_objects = SqlGoogleQueue(self._session)
        self.rate_buckets = SqlRateBuckets(self._session)
        self.callback_rejections = SqlCallbackRejections(self._session)
        self.outbox = SqlOutbox(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._session.rollback()
        finally:
            await self._session.close()
        # A flush inside the block may hit a unique key a concurrent writer just took.
        if isinstance(exc, IntegrityError) and is_unique_violation(exc):
            raise DuplicateKey("a row with the same key exists already") from exc

    async def commit(self) -> None:
        """Commit; a unique-key clash becomes DuplicateKey so use cases can retry or refuse."""
        try:
            await self._session.commit()
        except IntegrityError as exc:
            await self._session.rollback()
            if is_unique_violation(exc):
                raise DuplicateKey("a row with the same key exists already") from exc
            raise


class SqlUnitOfWorkFactory:
    """Makes a fresh unit of work per use case."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], box: SecretBox) -> None:
        self._sessions = sessions
        self._box = box

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._sessions, self._box)
