# ruff: noqa: S608  (the SQL is put together from this module's constants; values are bind parameters)
"""The repositories a scan goes through, on PostgreSQL: the same ports, in asyncpg.

Each class overrides the methods of its ORM parent (storage/repositories.py and
friends) that a scan, a loyalty change or a pass change calls; the others stay on the
ORM, in the same transaction (storage/pg_connection.py). SQLite keeps the ORM
classes. What these write, the ORM would have written: the test suite runs on both.

The raw writes drop the ORM's copy of the row they change (`PgLink.forget`), so
an ORM read later in the same unit of work sees the new values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from walletsvc.domain.api_key import parse_scopes
from walletsvc.domain.apple_device import ChangedPasses
from walletsvc.domain.customer import Consents, Customer
from walletsvc.domain.event import DomainEvent
from walletsvc.domain.identifier import Identifier
from walletsvc.domain.ledger import LedgerEntry
from walletsvc.domain.program import Program
from walletsvc.domain.store import Store, Terminal
from walletsvc.domain.wallet_pass import PassKind, PassState, WalletPass
from walletsvc.services.ports import InboxRecord, StoredApiKey
from walletsvc.storage import mapping
from walletsvc.storage.apple_registrations import SqlAppleDeviceRepository
from walletsvc.storage.counter import PASS_UPDATE
from walletsvc.storage.inbox import SqlInbox
from walletsvc.storage.ledger import SqlLedger
from walletsvc.storage.pg_connection import PgLink
from walletsvc.storage.repositories import (
    SqlApiKeyRepository,
    SqlCustomerRepository,
    SqlPassRepository,
    SqlProgramRepository,
    SqlStoreRepository,
    SqlTerminalRepository,
)
from walletsvc.storage.secret_box import SecretBox
from walletsvc.storage.tables import CustomerRow, PassRow, ProgramRow

_CUSTOMER = (
    "id, program_id, external_id, location_consent, marketing_consent, points_balance, tier,"
    " merged_into, tier_floor, erased_at, created_at, updated_at"
)
_PASS = (
    "serial, program_id, customer_id, kind, state, auth_token_sealed, coupon, void_reason,"
    " version, content_hash, last_changed_at, created_at"
)
# The revision of the pass's program (a primary-key read) rides along with the pass
# lock, so the cached Program and stores are checked without round trips of their own
# (ProgramCache). Triggers move it on any change of the program or its stores (0014).
_REVISION_OF = "(SELECT revision FROM programs g WHERE g.id = {})"
_PASS_LOCK = (
    f"SELECT {_PASS}, {_REVISION_OF.format('passes.program_id')} FROM passes"
    " WHERE serial = $1 FOR UPDATE"
)
_PASS_GET = f"SELECT {_PASS} FROM passes WHERE serial = $1"
# A pass with its holder and its program's revision: one round trip for the download
# and for "latest pass", the program and stores coming from ProgramCache.
_PASS_WITH_HOLDER = (
    f"SELECT {', '.join('p.' + c.strip() for c in _PASS.split(','))},"
    f" {', '.join('c.' + c.strip() for c in _CUSTOMER.split(','))},"
    f" {_REVISION_OF.format('p.program_id')}"
    " FROM passes p JOIN customers c ON c.id = p.customer_id WHERE p.serial = $1"
)
_PASSES_OF = f"SELECT {_PASS} FROM passes WHERE customer_id = $1 ORDER BY created_at"
_PASS_SET = (
    "state = $2, coupon = $3, void_reason = $4, version = $5, content_hash = $6,"
    " last_changed_at = $7"
)
_PASS_UPDATE = f"UPDATE passes SET {_PASS_SET} WHERE serial = $1"
# For a pass this unit of work did not read: the version it had, in the same round trip.
_PASS_UPDATE_OLD = (
    "WITH old AS (SELECT version FROM passes WHERE serial = $1)"
    f" UPDATE passes SET {_PASS_SET} WHERE serial = $1 RETURNING (SELECT version FROM old)"
)
# A new version takes the next commit-ordered update tag. The counter row stays locked
# from its bump to COMMIT and every scan bumps it, so the bump waits for the unit of
# work's commit (PgScanState.write_pending): the pass's own columns are written at once,
# its tag in the last statement before COMMIT, with the held-back outbox rows and inbox
# response. Passes changed in one transaction share its tag: they commit together.
_TAG = (
    f"tag AS (UPDATE counters SET value = value + 1 WHERE name = '{PASS_UPDATE}' RETURNING value)"
)
_TAG_PASSES = "UPDATE passes SET update_tag = tag.value FROM tag WHERE serial = ANY(${}::text[])"
_COUNTER_CREATE = (
    f"INSERT INTO counters (name, value) VALUES ('{PASS_UPDATE}', 0) ON CONFLICT DO NOTHING"
)
_CUSTOMER_GET = f"SELECT {_CUSTOMER} FROM customers WHERE id = $1"
_CUSTOMER_BY_EXTERNAL_ID = (
    f"SELECT {_CUSTOMER} FROM customers WHERE program_id = $1 AND external_id = $2"
)
_CUSTOMER_ADD = (
    f"INSERT INTO customers ({_CUSTOMER}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, NULL,"
    " $9, $10)"
)
_LINK = (
    "INSERT INTO identifiers (program_id, customer_id, kind, value, source, created_at)"
    " VALUES ($1, $2, $3, $4, $5, $6)"
)
_PASS_ADD = (
    f"INSERT INTO passes ({_PASS}, update_tag) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
    " $11, $12, 0)"
)
_CUSTOMER_LOCK = f"{_CUSTOMER_GET} FOR UPDATE"
_CUSTOMER_UPDATE = (
    "UPDATE customers SET location_consent = $2, marketing_consent = $3, points_balance = $4,"
    " tier = $5, updated_at = $6, merged_into = $7, tier_floor = $8 WHERE id = $1"
)
_PROGRAM_GET = (
    "SELECT id, name, points_per_unit, tiers, apple, google, loyalty, design_version,"
    " refreshed_version, created_at, updated_at, revision FROM programs WHERE id = $1"
)
# Which programs there are, with revisions: cached ones are used when the revision matches.
_PROGRAM_REVISIONS = "SELECT id, revision FROM programs ORDER BY id"
# The stores with the revision they belong to, read in one statement (one snapshot);
# a program without stores is one row of NULLs, so its revision is still read.
_STORES_OF = (
    "SELECT g.revision, s.id, s.program_id, s.name, s.latitude, s.longitude, s.radius_m,"
    " s.created_at FROM programs g LEFT JOIN stores s ON s.program_id = g.id"
    " WHERE g.id = $1 ORDER BY s.id"
)
_TERMINAL_GET = (
    "SELECT id, store_id, program_id, adapter, secret_sealed, previous_secret_sealed,"
    " previous_valid_until, created_at FROM terminals WHERE id = $1"
)
_INBOX_CLAIM = (
    "INSERT INTO inbox (source, external_id, fingerprint, received_at, response, body)"
    " VALUES ($1, $2, $3, $4, 'null', $5) RETURNING id"
)
_INBOX_GET = (
    "SELECT fingerprint, response, processed_at FROM inbox WHERE source = $1 AND external_id = $2"
)
# Once acted on, a delivery's body is not needed: it goes, with what it said about people.
_INBOX_RESPOND = "UPDATE inbox SET response = $2, processed_at = $3, body = NULL WHERE id = $1"
_INBOX_RESPOND_BY_KEY = (
    "UPDATE inbox SET response = $3, processed_at = $4, body = NULL"
    " WHERE source = $1 AND external_id = $2"
)
_LEDGER_APPEND = (
    "INSERT INTO ledger_entries (program_id, customer_id, kind, points, business_key, source,"
    " occurred_at, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)
_PUSHES = (
    "INSERT INTO apple_push_queue (pass_type_id, push_token, generation, attempts, due_at)"
    " SELECT r.pass_type_id, d.push_token, 1, 0, $2 FROM apple_registrations r"
    " JOIN apple_devices d ON d.device_library_id = r.device_library_id WHERE r.serial = $1"
    " ON CONFLICT (pass_type_id, push_token)"
    " DO UPDATE SET generation = apple_push_queue.generation + 1"
)
_CHANGED = (
    "SELECT p.serial, p.update_tag FROM apple_registrations r JOIN passes p"
    " ON p.serial = r.serial WHERE r.device_library_id = $1 AND r.pass_type_id = $2"
)
_API_KEY_GET = (
    "SELECT id, name, secret_hash, scopes::text, program_id, created_at, revoked_at"
    " FROM api_keys WHERE id = $1"
)
_OUTBOX_COLUMNS = 7
_OUTBOX_CHUNK = 8


def _outbox_insert(rows: int) -> str:
    values = ", ".join(
        "(" + ", ".join(f"${_OUTBOX_COLUMNS * r + c}" for c in range(1, _OUTBOX_COLUMNS + 1)) + ")"
        for r in range(rows)
    )
    return (
        "INSERT INTO outbox (event_id, type, subject, partition_key, occurred_at, recorded_at,"
        f" data) VALUES {values}"
    )


_OUTBOX_INSERTS = {rows: _outbox_insert(rows) for rows in range(1, _OUTBOX_CHUNK + 1)}


def _last_statement(outbox_rows: int, respond: bool, tag: bool) -> str:
    """Return the one statement for what a unit of work held back until its commit.

    Parameters: the outbox rows' values, then the inbox row's id, response and time,
    then the array of serials to tag. Data-modifying WITH parts run whether read or not.
    """
    parts = []
    n = _OUTBOX_COLUMNS * outbox_rows
    if outbox_rows:
        parts.append(f"o AS ({_OUTBOX_INSERTS[outbox_rows]})")
    if respond:
        parts.append(
            f"r AS (UPDATE inbox SET response = ${n + 2}, processed_at = ${n + 3}"
            f" WHERE id = ${n + 1})"
        )
        n += 3
    if tag:
        parts.append(_TAG)
        main = _TAG_PASSES.format(n + 1) + " RETURNING update_tag"
    else:
        main = "SELECT 0"
    return f"WITH {', '.join(parts)} {main}"


_LAST_STATEMENTS = {
    (rows, respond, tag): _last_statement(rows, respond, tag)
    for rows in range(_OUTBOX_CHUNK + 1)
    for respond in (False, True)
    for tag in (False, True)
    if rows or respond or tag
}


@dataclass
class ProgramCache:
    """Programs and their stores as last read, with the program's revision (one per engine,
    so per database).

    A unit of work uses a cached program or its stores only when a statement of its own
    saw the same revision in the database (the pass lock reads it). PostgreSQL triggers
    give the program a never-reused revision on any change of its row or its stores,
    whoever makes it (migration 0014), so a change made by any process is seen at once;
    nothing here outlives what PostgreSQL holds.
    """

    programs: dict[str, tuple[int, Program]] = field(default_factory=dict)
    stores: dict[str, tuple[int, tuple[Store, ...]]] = field(default_factory=dict)


@dataclass
class PgScanState:
    """What the repositories of one unit of work share: rows seen, writes held back."""

    connection: PgLink
    # The revision of each program as a statement of this unit of work saw it.
    revisions: dict[str, int] = field(default_factory=dict)
    pass_versions: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    outbox: list[Any] = field(default_factory=list)
    # Held back until the commit: an inbox response (row id, JSON, time) and the
    # serials of passes with a new version, to tag.
    response: tuple[int, str, datetime] | None = None
    untagged: set[str] = field(default_factory=set)

    @property
    def pending(self) -> bool:
        """Tell whether anything waits for write_pending."""
        return bool(self.outbox or self.response or self.untagged)

    async def write_pending(self) -> None:
        """Write what was held back, in one statement (plus one per eight outbox rows more).

        Called right before COMMIT, so the counter row is held for one round trip.
        """
        connection = await self.connection()
        rows, self.outbox = self.outbox, []
        while len(rows) > _OUTBOX_CHUNK:
            chunk, rows = rows[:_OUTBOX_CHUNK], rows[_OUTBOX_CHUNK:]
            await connection.execute(_OUTBOX_INSERTS[len(chunk)], *_flat(chunk))
        response, self.response = self.response, None
        serials, self.untagged = sorted(self.untagged), set()
        if not (rows or response or serials):
            return
        args = _flat(rows)
        if response is not None:
            args += response
        if serials:
            args.append(serials)
        sql = _LAST_STATEMENTS[(len(rows), response is not None, bool(serials))]
        tagged = await connection.fetch(sql, *args)
        if serials and not tagged:  # the counter's first use in this database
            await connection.execute(_COUNTER_CREATE)
            await connection.execute(f"WITH {_TAG} {_TAG_PASSES.format(1)}", serials)


class PgOutbox:
    """Holds the events of the unit of work and writes them in one INSERT (see commit)."""

    def __init__(self, state: PgScanState, now: Any) -> None:
        self._state = state
        self._now = now

    async def add(self, event: DomainEvent) -> None:
        self._state.outbox.append(
            (
                event.id,
                event.type,
                event.subject,
                event.subject,
                event.occurred_at,
                self._now(),
                json.dumps(dict(event.data)),
            )
        )


class PgProgramRepository(SqlProgramRepository):
    def __init__(self, session: AsyncSession, state: PgScanState, cache: ProgramCache) -> None:
        super().__init__(session)
        self._state = state
        self._cache = cache

    async def get(self, program_id: str) -> Program | None:
        revision = self._state.revisions.get(program_id)
        cached = self._cache.programs.get(program_id)
        if revision is not None and cached is not None and cached[0] == revision:
            return cached[1]
        connection = await self._state.connection(begin=False)
        record = await connection.fetchrow(_PROGRAM_GET, program_id)
        if record is None:
            return None
        row = ProgramRow(**dict(record.items()))
        program = mapping.program_from_row(row)
        self._cache.programs[program_id] = (row.revision, program)
        self._state.revisions[program_id] = row.revision
        return program

    async def list(self, program_id: str | None = None) -> list[Program]:
        if program_id is not None:
            program = await self.get(program_id)
            return [program] if program is not None else []
        # Issuing with a key bound to no program lists them all: revisions only, then
        # a row read for each program the cache does not hold as it is now.
        connection = await self._state.connection(begin=False)
        programs = []
        for program_id, revision in await connection.fetch(_PROGRAM_REVISIONS):
            self._state.revisions[program_id] = revision
            program = await self.get(program_id)
            if program is not None:
                programs.append(program)
        return programs

    async def update(self, program: Program) -> None:
        # Read afresh (after the flush) from now on in this unit of work.
        self._state.revisions.pop(program.id, None)
        await super().update(program)


class PgCustomerRepository(SqlCustomerRepository):
    def __init__(self, session: AsyncSession, state: PgScanState) -> None:
        super().__init__(session)
        self._state = state

    async def get(self, customer_id: str) -> Customer | None:
        return await self._read(_CUSTOMER_GET, customer_id, begin=False)

    async def get_for_update(self, customer_id: str) -> Customer | None:
        # Row-locked: two scans of one customer cannot lose a point.
        return await self._read(_CUSTOMER_LOCK, customer_id, begin=True)

    async def get_fresh(self, customer_id: str) -> Customer | None:
        return await self._read(_CUSTOMER_GET, customer_id, begin=False)

    async def get_by_external_id(self, program_id: str, external_id: str) -> Customer | None:
        connection = await self._state.connection(begin=False)
        r = await connection.fetchrow(_CUSTOMER_BY_EXTERNAL_ID, program_id, external_id)
        return self._customer(r) if r is not None else None

    async def add(self, customer: Customer) -> None:
        # A concurrent add of the same external id fails on the unique index: DuplicateKey.
        connection = await self._state.connection()
        await connection.execute(
            _CUSTOMER_ADD,
            customer.id,
            customer.program_id,
            customer.external_id,
            customer.consents.location,
            customer.consents.marketing,
            customer.points_balance,
            customer.tier,
            customer.tier_floor,
            customer.created_at,
            customer.updated_at,
        )

    async def link(self, program_id: str, customer_id: str, identifier: Identifier) -> None:
        connection = await self._state.connection()
        await connection.execute(
            _LINK,
            program_id,
            customer_id,
            identifier.kind.value,
            identifier.value,
            identifier.source,
            identifier.created_at,
        )

    async def update(self, customer: Customer) -> None:
        assert customer.updated_at is not None
        connection = await self._state.connection()
        done = await connection.execute(
            _CUSTOMER_UPDATE,
            customer.id,
            customer.consents.location,
            customer.consents.marketing,
            customer.points_balance,
            customer.tier,
            customer.updated_at,
            customer.merged_into,
            customer.tier_floor,
        )
        if done == "UPDATE 0":
            raise LookupError(f"customer {customer.id} vanished during the transaction")
        self._state.connection.forget(CustomerRow, customer.id)

    async def _read(self, sql: str, customer_id: str, *, begin: bool) -> Customer | None:
        connection = await self._state.connection(begin=begin)
        r = await connection.fetchrow(sql, customer_id)
        return self._customer(r) if r is not None else None

    @staticmethod
    def _customer(r: Any, *, living: bool = True) -> Customer | None:
        if living and r[9] is not None:  # erased: gone for all
            return None
        return Customer(
            id=r[0],
            program_id=r[1],
            external_id=r[2],
            consents=Consents(location=r[3], marketing=r[4]),
            points_balance=r[5],
            tier=r[6],
            merged_into=r[7],
            tier_floor=r[8],
            created_at=mapping.aware(r[10]),
            updated_at=mapping.aware(r[11]),
        )


class PgPassRepository(SqlPassRepository):
    def __init__(
        self,
        session: AsyncSession,
        box: SecretBox,
        state: PgScanState,
        programs: PgProgramRepository,
    ) -> None:
        super().__init__(session, box)
        self._state = state
        self._programs = programs

    async def get(self, serial: str) -> WalletPass | None:
        connection = await self._state.connection(begin=False)
        record = await connection.fetchrow(_PASS_GET, serial)
        return self._from_record(record) if record is not None else None

    async def get_with_holder(self, serial: str) -> tuple[WalletPass, Program, Customer] | None:
        state = self._state
        connection = await state.connection(begin=False)
        r = await connection.fetchrow(_PASS_WITH_HOLDER, serial)
        if r is None:
            return None
        # As the ORM's: the holder even when erased (a voided pass still reaches devices).
        customer = PgCustomerRepository._customer(r[12:24], living=False)
        wallet_pass = self._from_record(r)
        program_id = wallet_pass.program_id
        if r[24] is not None:
            state.revisions[program_id] = r[24]
        program = await self._programs.get(program_id)
        if customer is None or program is None:
            return None
        return wallet_pass, program, customer

    async def add(self, wallet_pass: WalletPass) -> None:
        connection = await self._state.connection()
        token = wallet_pass.authentication_token
        sealed = self._box.seal(token)
        await connection.execute(
            _PASS_ADD,
            wallet_pass.serial,
            wallet_pass.program_id,
            wallet_pass.customer_id,
            wallet_pass.kind.value,
            wallet_pass.state.value,
            sealed,
            _json(mapping.coupon_to_json(wallet_pass.coupon)),
            wallet_pass.void_reason,
            wallet_pass.version,
            wallet_pass.content_hash,
            wallet_pass.last_changed_at,
            wallet_pass.created_at,
        )
        self._state.tokens[sealed] = token
        self._state.pass_versions[wallet_pass.serial] = wallet_pass.version

    async def get_for_update(self, serial: str) -> WalletPass | None:
        # Row-locked, so two changes to one pass cannot overwrite each other.
        connection = await self._state.connection()
        record = await connection.fetchrow(_PASS_LOCK, serial)
        if record is None:
            return None
        if record[12] is not None:
            self._state.revisions[record[1]] = record[12]
        return self._from_record(record)

    async def for_customer(self, customer_id: str) -> list[WalletPass]:
        connection = await self._state.connection(begin=False)
        return [self._from_record(r) for r in await connection.fetch(_PASSES_OF, customer_id)]

    async def update(self, wallet_pass: WalletPass) -> None:
        assert wallet_pass.last_changed_at is not None
        state = self._state
        values = (
            wallet_pass.serial,
            wallet_pass.state.value,
            _json(mapping.coupon_to_json(wallet_pass.coupon)),
            wallet_pass.void_reason,
            wallet_pass.version,
            wallet_pass.content_hash,
            wallet_pass.last_changed_at,
        )
        stored = state.pass_versions.get(wallet_pass.serial)
        connection = await state.connection()
        if stored is None:
            stored = await connection.fetchval(_PASS_UPDATE_OLD, *values)
            vanished = stored is None
        else:
            vanished = await connection.execute(_PASS_UPDATE, *values) == "UPDATE 0"
        if vanished:
            raise LookupError(f"pass {wallet_pass.serial} vanished during the transaction")
        if stored != wallet_pass.version:
            # What devices see as "changed since": tagged at commit, in commit order.
            state.untagged.add(wallet_pass.serial)
        state.pass_versions[wallet_pass.serial] = wallet_pass.version
        state.connection.forget(PassRow, wallet_pass.serial)

    def _from_record(self, r: Any) -> WalletPass:
        tokens = self._state.tokens
        token = tokens.get(r[5])
        if token is None:
            token = tokens[r[5]] = self._box.open(r[5])
        self._state.pass_versions[r[0]] = r[8]
        return WalletPass(
            serial=r[0],
            program_id=r[1],
            customer_id=r[2],
            kind=PassKind(r[3]),
            authentication_token=token,
            state=PassState(r[4]),
            coupon=mapping.coupon_from_json(r[6]),
            void_reason=r[7],
            version=r[8],
            content_hash=r[9],
            last_changed_at=mapping.aware(r[10]),
            created_at=mapping.aware(r[11]),
        )


class PgStoreRepository(SqlStoreRepository):
    def __init__(self, session: AsyncSession, state: PgScanState, cache: ProgramCache) -> None:
        super().__init__(session)
        self._state = state
        self._cache = cache

    async def for_program(self, program_id: str) -> list[Store]:
        revision = self._state.revisions.get(program_id)
        cached = self._cache.stores.get(program_id)
        if revision is not None and cached is not None and cached[0] == revision:
            return list(cached[1])
        connection = await self._state.connection(begin=False)
        records = await connection.fetch(_STORES_OF, program_id)
        if not records:  # no such program
            return []
        stores = [
            Store(
                id=r[1],
                program_id=r[2],
                name=r[3],
                latitude=r[4],
                longitude=r[5],
                radius_m=r[6],
                created_at=mapping.aware(r[7]),
            )
            for r in records
            if r[1] is not None
        ]
        self._cache.stores[program_id] = (records[0][0], tuple(stores))
        return stores

    async def add(self, store: Store) -> None:
        self._state.revisions.pop(store.program_id, None)
        await super().add(store)


class PgTerminalRepository(SqlTerminalRepository):
    def __init__(self, session: AsyncSession, box: SecretBox, state: PgScanState) -> None:
        super().__init__(session, box)
        self._state = state

    async def get(self, terminal_id: str) -> Terminal | None:
        connection = await self._state.connection(begin=False)
        r = await connection.fetchrow(_TERMINAL_GET, terminal_id)
        if r is None:
            return None
        return Terminal(
            id=r[0],
            store_id=r[1],
            program_id=r[2],
            adapter=r[3],
            secret=self._box.open(r[4]),
            previous_secret=self._box.open(r[5]) if r[5] else None,
            previous_valid_until=mapping.aware(r[6]) if r[6] else None,
            created_at=mapping.aware(r[7]),
        )


class PgInbox(SqlInbox):
    def __init__(self, session: AsyncSession, state: PgScanState) -> None:
        super().__init__(session)
        self._state = state
        self._claimed: dict[tuple[str, str], int] = {}

    async def claim(
        self, source: str, external_id: str, fingerprint: str, now: datetime, body: bytes | None
    ) -> None:
        # A concurrent copy waits on the unique index until the first commits, then fails
        # as a duplicate; the unit of work raises DuplicateKey.
        connection = await self._state.connection()
        self._claimed[(source, external_id)] = await connection.fetchval(
            _INBOX_CLAIM, source, external_id, fingerprint, now, body
        )

    async def get(self, source: str, external_id: str) -> InboxRecord | None:
        connection = await self._state.connection(begin=False)
        r = await connection.fetchrow(_INBOX_GET, source, external_id)
        if r is None:
            return None
        return InboxRecord(r[0], r[1], r[2] is not None)

    async def respond(
        self, source: str, external_id: str, response: dict[str, Any], now: datetime
    ) -> None:
        claimed = self._claimed.get((source, external_id))
        if claimed is not None and self._state.response is None:
            # Written with the unit of work's last statement (PgScanState.write_pending).
            self._state.response = (claimed, json.dumps(response), now)
            return
        connection = await self._state.connection()
        if claimed is not None:
            await connection.execute(_INBOX_RESPOND, claimed, json.dumps(response), now)
        else:
            await connection.execute(
                _INBOX_RESPOND_BY_KEY, source, external_id, json.dumps(response), now
            )


class PgLedger(SqlLedger):
    def __init__(self, session: AsyncSession, state: PgScanState) -> None:
        super().__init__(session)
        self._state = state

    async def append(self, entry: LedgerEntry, now: datetime) -> None:
        # A business key seen before fails on the unique index: DuplicateKey, nothing twice.
        connection = await self._state.connection()
        await connection.execute(
            _LEDGER_APPEND,
            entry.program_id,
            entry.customer_id,
            entry.kind.value,
            entry.points,
            entry.business_key,
            entry.source,
            entry.occurred_at,
            now,
        )


class PgAppleDeviceRepository(SqlAppleDeviceRepository):
    def __init__(self, session: AsyncSession, state: PgScanState) -> None:
        super().__init__(session)
        self._state = state

    async def queue_pushes(self, serial: str, due_at: datetime) -> None:
        """Owe a push to every device the pass is on; pending pushes absorb this one."""
        connection = await self._state.connection()
        # The due time stays as first set: a stream of changes must not postpone the push.
        await connection.execute(_PUSHES, serial, due_at)

    async def changed(self, device_id: str, pass_type_id: str, since: int | None) -> ChangedPasses:
        """Return every serial on the device changed after `since`, and the newest tag."""
        connection = await self._state.connection(begin=False)
        rows = await connection.fetch(_CHANGED, device_id, pass_type_id)
        newest = max((tag for _, tag in rows), default=0)
        serials = sorted(serial for serial, tag in rows if since is None or tag > since)
        return ChangedPasses(tuple(serials), max(newest, since or 0))


class PgApiKeyRepository(SqlApiKeyRepository):
    """Every API call looks its key up: one statement, not an ORM load."""

    def __init__(self, session: AsyncSession, state: PgScanState) -> None:
        super().__init__(session)
        self._state = state

    async def get(self, key_id: str) -> StoredApiKey | None:
        connection = await self._state.connection(begin=False)
        r = await connection.fetchrow(_API_KEY_GET, key_id)
        if r is None:
            return None
        return StoredApiKey(
            id=r[0],
            name=r[1],
            secret_hash=r[2],
            scopes=parse_scopes(json.loads(r[3])),
            program_id=r[4],
            created_at=mapping.aware(r[5]),
            revoked_at=mapping.aware(r[6]) if r[6] else None,
        )


def _flat(rows: list[Any]) -> list[Any]:
    return [value for row in rows for value in row]


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)
