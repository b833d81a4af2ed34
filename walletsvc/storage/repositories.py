"""SQL implementations of the repository ports, all working inside one session."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import delete, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from walletsvc.domain.api_key import parse_scopes
from walletsvc.domain.customer import Customer
from walletsvc.domain.identifier import Identifier, IdentifierKind
from walletsvc.domain.program import Program, RefreshPoint
from walletsvc.domain.store import Store, Terminal
from walletsvc.domain.wallet_pass import WalletPass
from walletsvc.services.ports import StoredApiKey
from walletsvc.storage import mapping
from walletsvc.storage.counter import PASS_UPDATE, next_value
from walletsvc.storage.secret_box import SecretBox
from walletsvc.storage.tables import (
    ApiKeyRow,
    CustomerRow,
    IdentifierRow,
    LedgerEntryRow,
    PassRow,
    ProgramAssetRow,
    ProgramRow,
    StoreRow,
    StoreVisitRow,
    TerminalRow,
)


class SqlProgramRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, program_id: str) -> Program | None:
        row = await self._session.get(ProgramRow, program_id)
        return mapping.program_from_row(row) if row else None

    async def list(self, program_id: str | None = None) -> list[Program]:
        query = select(ProgramRow).order_by(col(ProgramRow.id))
        if program_id is not None:
            query = query.where(ProgramRow.id == program_id)
        rows = (await self._session.exec(query)).all()
        return [mapping.program_from_row(row) for row in rows]

    async def add(self, program: Program) -> None:
        self._session.add(mapping.program_to_row(program))

    async def get_for_update(self, program_id: str) -> Program | None:
        row = await self._session.get(
            ProgramRow, program_id, with_for_update=True, populate_existing=True
        )
        return mapping.program_from_row(row) if row else None

    async def update(self, program: Program) -> None:
        row = await self._session.get(ProgramRow, program.id)
        if row is None:
            raise LookupError(f"program {program.id} vanished during the transaction")
        fresh = mapping.program_to_row(program)
        for name in ("name", "points_per_unit", "tiers", "apple", "google", "loyalty"):
            setattr(row, name, getattr(fresh, name))
        row.design_version = program.design_version
        row.updated_at = fresh.updated_at
        self._session.add(row)

    async def needing_refresh(self) -> tuple[tuple[str, RefreshPoint], ...]:
        query = select(ProgramRow.id, ProgramRow.design_version, ProgramRow.stores_version).where(
            or_(
                col(ProgramRow.refreshed_version) < col(ProgramRow.design_version),
                col(ProgramRow.refreshed_stores_version) < col(ProgramRow.stores_version),
            )
        )
        rows = (await self._session.exec(query)).all()
        return tuple((row[0], RefreshPoint(row[1], row[2])) for row in rows)

    async def mark_refreshed(self, program_id: str, point: RefreshPoint) -> None:
        # Each mark only moves forwards: a refresh that started before a later change
        # leaves that change owed.
        for done, value in (
            (ProgramRow.refreshed_version, point.design_version),
            (ProgramRow.refreshed_stores_version, point.stores_version),
        ):
            await self._session.exec(
                update(ProgramRow)
                .where(col(ProgramRow.id) == program_id, col(done) < value)
                .values({done: value})
            )

    async def stores_changed(self, program_id: str) -> None:
        await self._session.exec(
            update(ProgramRow)
            .where(col(ProgramRow.id) == program_id)
            .values(stores_version=col(ProgramRow.stores_version) + 1)
        )

    async def put_assets(self, program_id: str, assets: Mapping[str, bytes]) -> None:
        await self._session.exec(
            delete(ProgramAssetRow).where(col(ProgramAssetRow.program_id) == program_id)
        )
        for name, content in sorted(assets.items()):
            self._session.add(ProgramAssetRow(program_id=program_id, name=name, content=content))

    async def assets(self, program_id: str) -> dict[str, bytes]:
        query = select(ProgramAssetRow).where(ProgramAssetRow.program_id == program_id)
        return {row.name: row.content for row in (await self._session.exec(query)).all()}


class SqlCustomerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, customer_id: str) -> Customer | None:
        row = await self._session.get(CustomerRow, customer_id)
        return _living(row)

    async def get_for_update(self, customer_id: str) -> Customer | None:
        # Row-locked on PostgreSQL: two scans of one customer cannot lose a point.
        row = await self._session.get(
            CustomerRow, customer_id, with_for_update=True, populate_existing=True
        )
        return _living(row)

    async def lock_merges(self, program_id: str) -> None:
        # Merges of one program take turns (a transaction-scoped advisory lock on
        # PostgreSQL; SQLite transactions already take turns). Merges are rare, and
        # following alias chains under row locks alone could deadlock or merge into an
        # alias that a racing merge had just retired.
        if self._session.get_bind().dialect.name == "postgresql":
            key = int.from_bytes(
                hashlib.sha256(f"merge:{program_id}".encode()).digest()[:8], "big", signed=True
            )
            await self._session.exec(select(func.pg_advisory_xact_lock(key)))

    async def get_fresh(self, customer_id: str) -> Customer | None:
        # A read that does not trust what this session loaded before (another
        # transaction may have merged the profile since).
        row = await self._session.get(CustomerRow, customer_id, populate_existing=True)
        return _living(row)

    async def aliases(self, customer_id: str) -> list[str]:
        query = select(CustomerRow.id).where(col(CustomerRow.merged_into) == customer_id)
        return list((await self._session.exec(query)).all())

    async def erase(self, customer_id: str, now: datetime) -> None:
        # What identifies the person goes: identifiers (hashes of emails and phones are
        # personal data too), the CRM id, consents and the visit history. The row stays
        # as a tombstone so ledger entries and passes keep a valid reference.
        await self._session.exec(
            delete(IdentifierRow).where(col(IdentifierRow.customer_id) == customer_id)
        )
        await self._session.exec(
            delete(StoreVisitRow).where(col(StoreVisitRow.customer_id) == customer_id)
        )
        await self._session.exec(
            update(CustomerRow)
            .where(col(CustomerRow.id) == customer_id)
            .values(
                external_id=f"erased:{customer_id}",
                location_consent=False,
                marketing_consent=False,
                tier_floor=None,
                erased_at=now,
                updated_at=now,
            )
        )

    async def move_records(self, from_id: str, to_id: str) -> None:
        # A merge: identifiers, passes and ledger entries follow the person. The younger
        # profile's geofence state is only debounce bookkeeping and is dropped.
        for table in (IdentifierRow, PassRow, LedgerEntryRow):
            await self._session.exec(
                update(table).where(col(table.customer_id) == from_id).values(customer_id=to_id)
            )
        await self._session.exec(
            delete(StoreVisitRow).where(col(StoreVisitRow.customer_id) == from_id)
        )

    async def page_ids(self, program_id: str, after: str, limit: int) -> list[str]:
        query = (
            select(CustomerRow.id)
            .where(
                col(CustomerRow.program_id) == program_id,
                col(CustomerRow.merged_into).is_(None),
                col(CustomerRow.erased_at).is_(None),
                col(CustomerRow.id) > after,
            )
            .order_by(col(CustomerRow.id))
            .limit(limit)
        )
        return list((await self._session.exec(query)).all())

    async def get_by_external_id(self, program_id: str, external_id: str) -> Customer | None:
        query = select(CustomerRow).where(
            CustomerRow.program_id == program_id, CustomerRow.external_id == external_id
        )
        row = (await self._session.exec(query)).first()
        return mapping.customer_from_row(row) if row else None

    async def add(self, customer: Customer) -> None:
        assert customer.created_at is not None and customer.updated_at is not None
        self._session.add(
            CustomerRow(
                id=customer.id,
                program_id=customer.program_id,
                external_id=customer.external_id,
                location_consent=customer.consents.location,
                marketing_consent=customer.consents.marketing,
                points_balance=customer.points_balance,
                tier=customer.tier,
                tier_floor=customer.tier_floor,
                created_at=customer.created_at,
                updated_at=customer.updated_at,
            )
        )

    async def update(self, customer: Customer) -> None:
        row = await self._session.get(CustomerRow, customer.id)
        if row is None:
            raise LookupError(f"customer {customer.id} vanished during the transaction")
        mapping.customer_into_row(customer, row)
        self._session.add(row)

    async def link(self, program_id: str, customer_id: str, identifier: Identifier) -> None:
        assert identifier.created_at is not None
        self._session.add(
            IdentifierRow(
                program_id=program_id,
                customer_id=customer_id,
                kind=identifier.kind.value,
                value=identifier.value,
                source=identifier.source,
                created_at=identifier.created_at,
            )
        )

    async def identifiers(self, customer_id: str) -> list[Identifier]:
        query = (
            select(IdentifierRow)
            .where(IdentifierRow.customer_id == customer_id)
            .order_by(col(IdentifierRow.id))
        )
        return [
            Identifier(
                kind=IdentifierKind(row.kind),
                value=row.value,
                source=row.source,
                created_at=mapping.aware(row.created_at),
            )
            for row in (await self._session.exec(query)).all()
        ]

    async def find(self, program_id: str, kind: IdentifierKind, value: str) -> str | None:
        query = select(IdentifierRow.customer_id).where(
            IdentifierRow.program_id == program_id,
            IdentifierRow.kind == kind.value,
            IdentifierRow.value == value,
        )
        return (await self._session.exec(query)).first()


def _living(row: CustomerRow | None) -> Customer | None:
    """Return the customer, or None for no row or an erased one: erased is gone for all."""
    if row is None or row.erased_at is not None:
        return None
    return mapping.customer_from_row(row)


class SqlPassRepository:
    def __init__(self, session: AsyncSession, box: SecretBox) -> None:
        self._session = session
        self._box = box

    async def get(self, serial: str) -> WalletPass | None:
        row = await self._session.get(PassRow, serial)
        return self._from_row(row) if row else None

    async def get_with_holder(self, serial: str) -> tuple[WalletPass, Program, Customer] | None:
        # One round trip for the call every device makes after every push.
        query = (
            select(PassRow, ProgramRow, CustomerRow)
            .join(ProgramRow, col(ProgramRow.id) == col(PassRow.program_id))
            .join(CustomerRow, col(CustomerRow.id) == col(PassRow.customer_id))
            .where(PassRow.serial == serial)
        )
        found = (await self._session.exec(query)).first()
        if found is None:
            return None
        pass_row, program_row, customer_row = found
        return (
            self._from_row(pass_row),
            mapping.program_from_row(program_row),
            mapping.customer_from_row(customer_row),
        )

    async def get_for_update(self, serial: str) -> WalletPass | None:
        # Row-locked on PostgreSQL, so two changes to one pass cannot overwrite each other.
        row = await self._session.get(PassRow, serial, with_for_update=True, populate_existing=True)
        return self._from_row(row) if row else None

    async def add(self, wallet_pass: WalletPass) -> None:
        assert wallet_pass.created_at is not None and wallet_pass.last_changed_at is not None
        self._session.add(
            PassRow(
                serial=wallet_pass.serial,
                program_id=wallet_pass.program_id,
                customer_id=wallet_pass.customer_id,
                kind=wallet_pass.kind.value,
                state=wallet_pass.state.value,
                auth_token_sealed=self._box.seal(wallet_pass.authentication_token),
                coupon=mapping.coupon_to_json(wallet_pass.coupon),
                void_reason=wallet_pass.void_reason,
                version=wallet_pass.version,
                content_hash=wallet_pass.content_hash,
                last_changed_at=wallet_pass.last_changed_at,
                created_at=wallet_pass.created_at,
            )
        )

    async def update(self, wallet_pass: WalletPass) -> None:
        row = await self._session.get(PassRow, wallet_pass.serial)
        if row is None:
            raise LookupError(f"pass {wallet_pass.serial} vanished during the transaction")
        assert wallet_pass.last_changed_at is not None
        row.state = wallet_pass.state.value
        row.coupon = mapping.coupon_to_json(wallet_pass.coupon)
        row.void_reason = wallet_pass.void_reason
        if row.version != wallet_pass.version:
            # What devices see as "changed since": taken last, in commit order.
            row.update_tag = await next_value(self._session, PASS_UPDATE)
        row.version = wallet_pass.version
        row.content_hash = wallet_pass.content_hash
        row.last_changed_at = wallet_pass.last_changed_at
        self._session.add(row)

    async def for_program(self, program_id: str, after: str | None, limit: int) -> list[WalletPass]:
        query = select(PassRow).where(PassRow.program_id == program_id)
        if after is not None:
            query = query.where(col(PassRow.serial) > after)
        query = query.order_by(col(PassRow.serial)).limit(limit)
        return [self._from_row(row) for row in (await self._session.exec(query)).all()]

    async def for_customer(self, customer_id: str) -> list[WalletPass]:
        query = (
            select(PassRow)
            .where(PassRow.customer_id == customer_id)
            .order_by(col(PassRow.created_at))
        )
        return [self._from_row(row) for row in (await self._session.exec(query)).all()]

    def _from_row(self, row: PassRow) -> WalletPass:
        return mapping.pass_from_row(row, self._box.open(row.auth_token_sealed))


class SqlStoreRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, store_id: str) -> Store | None:
        row = await self._session.get(StoreRow, store_id)
        return mapping.store_from_row(row) if row else None

    async def for_program(self, program_id: str) -> list[Store]:
        query = select(StoreRow).where(StoreRow.program_id == program_id).order_by(col(StoreRow.id))
        return [mapping.store_from_row(row) for row in (await self._session.exec(query)).all()]

    async def add(self, store: Store) -> None:
        assert store.created_at is not None
        self._session.add(
            StoreRow(
                id=store.id,
                program_id=store.program_id,
                name=store.name,
                latitude=store.latitude,
                longitude=store.longitude,
                radius_m=store.radius_m,
                created_at=store.created_at,
            )
        )


class SqlTerminalRepository:
    def __init__(self, session: AsyncSession, box: SecretBox) -> None:
        self._session = session
        self._box = box

    async def get(self, terminal_id: str) -> Terminal | None:
        row = await self._session.get(TerminalRow, terminal_id)
        if row is None:
            return None
        return Terminal(
            id=row.id,
            store_id=row.store_id,
            program_id=row.program_id,
            adapter=row.adapter,
            secret=self._box.open(row.secret_sealed),
            created_at=mapping.aware(row.created_at),
            previous_secret=(
                self._box.open(row.previous_secret_sealed) if row.previous_secret_sealed else None
            ),
            previous_valid_until=(
                mapping.aware(row.previous_valid_until) if row.previous_valid_until else None
            ),
        )

    async def rotate(self, terminal: Terminal) -> None:
        row = await self._session.get(TerminalRow, terminal.id, with_for_update=True)
        if row is None:
            raise LookupError(f"terminal {terminal.id} vanished during the transaction")
        row.secret_sealed = self._box.seal(terminal.secret)
        previous = terminal.previous_secret
        row.previous_secret_sealed = self._box.seal(previous) if previous else None
        row.previous_valid_until = terminal.previous_valid_until
        self._session.add(row)

    async def add(self, terminal: Terminal) -> None:
        assert terminal.created_at is not None
        self._session.add(
            TerminalRow(
                id=terminal.id,
                store_id=terminal.store_id,
                program_id=terminal.program_id,
                adapter=terminal.adapter,
                secret_sealed=self._box.seal(terminal.secret),
                created_at=terminal.created_at,
            )
        )


class SqlApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, key_id: str) -> StoredApiKey | None:
        row = await self._session.get(ApiKeyRow, key_id)
        return _api_key(row) if row is not None else None

    async def list(self, program_id: str | None) -> list[StoredApiKey]:
        query = select(ApiKeyRow).order_by(col(ApiKeyRow.created_at), col(ApiKeyRow.id))
        if program_id is not None:
            query = query.where(col(ApiKeyRow.program_id) == program_id)
        return [_api_key(row) for row in (await self._session.exec(query)).all()]

    async def revoke(self, key_id: str, now: datetime) -> None:
        await self._session.exec(
            update(ApiKeyRow)
            .where(col(ApiKeyRow.id) == key_id, col(ApiKeyRow.revoked_at).is_(None))
            .values(revoked_at=now)
        )

    async def add(self, key: StoredApiKey) -> None:
        assert key.created_at is not None
        self._session.add(
            ApiKeyRow(
                id=key.id,
                name=key.name,
                secret_hash=key.secret_hash,
                scopes=sorted(s.value for s in key.scopes),
                program_id=key.program_id,
                created_at=key.created_at,
            )
        )


def _api_key(row: ApiKeyRow) -> StoredApiKey:
    return StoredApiKey(
        id=row.id,
        name=row.name,
        secret_hash=row.secret_hash,
        scopes=parse_scopes(row.scopes),
        program_id=row.program_id,
        created_at=mapping.aware(row.created_at),
        revoked_at=mapping.aware(row.revoked_at) if row.revoked_at else None,
    )
