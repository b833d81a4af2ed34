"""One database transaction holding state changes and their outbox rows."""

from __future__ import annotations

from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, cast

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from walletsvc.domain.errors import DuplicateKey
from walletsvc.domain.event import DomainEvent
from walletsvc.storage.apple_push_queue import SqlPushQueue
from walletsvc.storage.apple_registrations import SqlAppleDeviceRepository
from walletsvc.storage.google_objects import SqlGoogleQueue
from walletsvc.storage.inbox import SqlInbox
from walletsvc.storage.ledger import SqlLedger
from walletsvc.storage.pg_connection import PgLink
from walletsvc.storage.pg_repositories import (
    PgApiKeyRepository,
    PgAppleDeviceRepository,
    PgCustomerRepository,
    PgInbox,
    PgLedger,
    PgOutbox,
    PgPassRepository,
    PgProgramRepository,
    PgScanState,
    PgStoreRepository,
    PgTerminalRepository,
    ProgramCache,
)
from walletsvc.storage.rate_buckets import SqlCallbackRejections, SqlRateBuckets
from walletsvc.storage.repositories import (
    SqlApiKeyRepository,
    SqlCustomerRepository,
    SqlPassRepository,
    SqlProgramRepository,
    SqlStoreRepository,
    SqlTerminalRepository,
)
from walletsvc.storage.retention import SqlRetention
from walletsvc.storage.secret_box import SecretBox
from walletsvc.storage.store_visits import SqlGeofenceRefusals, SqlStoreVisitRepository
from walletsvc.storage.tables import OutboxRow
from walletsvc.storage.tier_feed import SqlJobSchedule, SqlTierFeed


def is_unique_violation(exc: BaseException) -> bool:
    """Tell a unique-key clash (retryable, or a 409) from other integrity errors (bugs).

    Takes SQLAlchemy's IntegrityError and asyncpg's own errors (storage/pg_repositories.py).
    """
    if not isinstance(exc, IntegrityError):
        return getattr(exc, "sqlstate", None) == "23505"
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
    outbox: SqlOutbox | PgOutbox
    retention: SqlRetention

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        programs: ProgramCache | None = None,
        engine: AsyncEngine | None = None,
    ) -> None:
        self._sessions = sessions
        self._box = box
        # Set on PostgreSQL: the hot paths' repositories go through asyncpg directly.
        self._programs = programs
        self._engine = engine
        self._link: PgLink | None = None

    async def __aenter__(self) -> Self:
        if self._programs is not None and self._engine is not None:
            link = self._link = PgLink(self._engine, self._sessions)
            # The ORM repositories get a session made when they first use it, on the
            # link's connection; a unit of work of raw statements never makes one.
            session = cast(AsyncSession, _SessionOnFirstUse(link))
            self._session = session
            pg = PgScanState(link)
            self.programs = PgProgramRepository(session, pg, self._programs)
            self.customers = PgCustomerRepository(session, pg)
            self.passes = PgPassRepository(session, self._box, pg, self.programs)
            self.stores = PgStoreRepository(session, pg, self._programs)
            self.terminals = PgTerminalRepository(session, self._box, pg)
            self.apple_devices = PgAppleDeviceRepository(session, pg)
            self.inbox = PgInbox(session, pg)
            self.ledger = PgLedger(session, pg)
            self.outbox = PgOutbox(pg, _utc_now)
            self.api_keys = PgApiKeyRepository(session, pg)
            self._pg: PgScanState | None = pg
        else:
            self._pg = None
            session = self._session = self._sessions()
            self.programs = SqlProgramRepository(session)
            self.customers = SqlCustomerRepository(session)
            self.passes = SqlPassRepository(session, self._box)
            self.stores = SqlStoreRepository(session)
            self.terminals = SqlTerminalRepository(session, self._box)
            self.apple_devices = SqlAppleDeviceRepository(session)
            self.inbox = SqlInbox(session)
            self.ledger = SqlLedger(session)
            self.outbox = SqlOutbox(session)
            self.api_keys = SqlApiKeyRepository(session)
        self.push_queue = SqlPushQueue(session)
        self.tier_feed = SqlTierFeed(session)
        self.schedule = SqlJobSchedule(session)
        self.store_visits = SqlStoreVisitRepository(session)
        self.geofence_refusals = SqlGeofenceRefusals(session)
        self.google_objects = SqlGoogleQueue(session)
        self.rate_buckets = SqlRateBuckets(session)
        self.callback_rejections = SqlCallbackRejections(session)
        self.retention = SqlRetention(session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._link is not None:
            await self._link.close()
        else:
            try:
                await self._session.rollback()
            finally:
                await self._session.close()
        # A flush inside the block may hit a unique key a concurrent writer just took.
        if exc is not None and is_unique_violation(exc):
            raise DuplicateKey("a row with the same key exists already") from exc

    async def commit(self) -> None:
        """Commit; a unique-key clash becomes DuplicateKey so use cases can retry or refuse."""
        try:
            if self._pg is not None and self._pg.pending:
                await self._pg.write_pending()
            if self._link is not None:
                await self._link.commit()
            else:
                await self._session.commit()
        except Exception as exc:
            if not (isinstance(exc, IntegrityError) or is_unique_violation(exc)):
                raise
            if self._link is None:
                await self._session.rollback()
            if is_unique_violation(exc):
                raise DuplicateKey("a row with the same key exists already") from exc
            raise


class SqlUnitOfWorkFactory:
    """Makes a fresh unit of work per use case."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], box: SecretBox) -> None:
        self._sessions = sessions
        self._box = box
        bind = sessions.kw.get("bind")
        postgresql = isinstance(bind, AsyncEngine) and bind.dialect.name == "postgresql"
        self._engine = bind if postgresql else None
        # One cache per engine, so per database (tests open several in one process).
        self._programs = ProgramCache() if postgresql else None

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._sessions, self._box, self._programs, self._engine)


class _SessionOnFirstUse:
    """Stands for the unit of work's ORM session and makes it when first touched."""

    def __init__(self, link: PgLink) -> None:
        self._link = link

    def __getattr__(self, name: str) -> Any:
        return getattr(self._link.orm(), name)


def _utc_now() -> datetime:
    return datetime.now(UTC)
