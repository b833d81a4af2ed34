"""The ports: how use cases reach storage, the wallets and the clock.

Implementations live in the adapter packages (storage, apple, ...) and are wired
together in walletsvc/bootstrap.py; tests of the use cases can use in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self

from walletsvc.domain.api_key import Scope
from walletsvc.domain.apple_device import ChangedPasses
from walletsvc.domain.customer import Customer
from walletsvc.domain.event import DomainEvent
from walletsvc.domain.geofence import AcceptedEvent
from walletsvc.domain.google_wallet import GoogleJob, GoogleStatus
from walletsvc.domain.identifier import Identifier, IdentifierKind
from walletsvc.domain.ledger import LedgerEntry
from walletsvc.domain.pass_content import PassContent
from walletsvc.domain.program import Program, RefreshPoint
from walletsvc.domain.push import PushJob, PushReply
from walletsvc.domain.store import Store, Terminal
from walletsvc.domain.tier import LedgerTotals, TierUpdate
from walletsvc.domain.wallet_pass import PassKind, WalletPass


@dataclass(frozen=True)
class StoredApiKey:
    """An API key as kept at rest: only a hash of its secret."""

    id: str
    name: str
    secret_hash: str
    scopes: frozenset[Scope]
    program_id: str | None
    created_at: datetime | None = None
    revoked_at: datetime | None = None


class ProgramRepository(Protocol):
    async def get(self, program_id: str) -> Program | None: ...
    async def list(self, program_id: str | None = None) -> list[Program]: ...
    async def add(self, program: Program) -> None: ...
    async def get_for_update(self, program_id: str) -> Program | None: ...
    async def update(self, program: Program) -> None: ...
    async def needing_refresh(self) -> tuple[tuple[str, RefreshPoint], ...]:
        """Return the programs whose passes are behind their design or stores, and where to."""
        ...

    async def mark_refreshed(self, program_id: str, point: RefreshPoint) -> None:
        """Record that every pass was re-rendered for `point` (never moving backwards)."""
        ...

    async def stores_changed(self, program_id: str) -> None:
        """Note that the program's stores changed: its passes' locations may have."""
        ...

    async def put_assets(self, program_id: str, assets: Mapping[str, bytes]) -> None: ...
    async def assets(self, program_id: str) -> dict[str, bytes]: ...


class CustomerRepository(Protocol):
    async def get(self, customer_id: str) -> Customer | None: ...
    async def get_for_update(self, customer_id: str) -> Customer | None: ...
    async def move_records(self, from_id: str, to_id: str) -> None: ...
    async def lock_merges(self, program_id: str) -> None: ...
    async def get_fresh(self, customer_id: str) -> Customer | None: ...
    async def aliases(self, customer_id: str) -> list[str]:
        """Return the ids of profiles merged into this one."""
        ...

    async def erase(self, customer_id: str, now: datetime) -> None:
        """Remove what identifies the person; the id stays as a tombstone nobody finds."""
        ...

    async def page_ids(self, program_id: str, after: str, limit: int) -> list[str]:
        """Return ids of the program's unmerged customers after `after`, in id order."""
        ...

    async def get_by_external_id(self, program_id: str, external_id: str) -> Customer | None: ...
    async def add(self, customer: Customer) -> None: ...
    async def update(self, customer: Customer) -> None: ...
    async def link(self, program_id: str, customer_id: str, identifier: Identifier) -> None: ...
    async def identifiers(self, customer_id: str) -> list[Identifier]: ...
    async def find(self, program_id: str, kind: IdentifierKind, value: str) -> str | None: ...


class PassRepository(Protocol):
    async def get(self, serial: str) -> WalletPass | None: ...
    async def get_for_update(self, serial: str) -> WalletPass | None: ...
    async def get_with_holder(self, serial: str) -> tuple[WalletPass, Program, Customer] | None: ...
    async def for_program(
        self, program_id: str, after: str | None, limit: int
    ) -> list[WalletPass]: ...
    async def add(self, wallet_pass: WalletPass) -> None: ...
    async def update(self, wallet_pass: WalletPass) -> None: ...
    async def for_customer(self, customer_id: str) -> list[WalletPass]: ...


class StoreRepository(Protocol):
    async def get(self, store_id: str) -> Store | None: ...
    async def for_program(self, program_id: str) -> list[Store]: ...
    async def add(self, store: Store) -> None: ...


class TerminalRepository(Protocol):
    async def get(self, terminal_id: str) -> Terminal | None: ...
    async def add(self, terminal: Terminal) -> None: ...
    async def rotate(self, terminal: Terminal) -> None:
        """Store the terminal's new secret and the previous one with its deadline."""
        ...


class ApiKeyRepository(Protocol):
    async def get(self, key_id: str) -> StoredApiKey | None: ...
    async def add(self, key: StoredApiKey) -> None: ...
    async def list(self, program_id: str | None) -> list[StoredApiKey]:
        """Every key, oldest first; only those bound to `program_id` when it is given."""
        ...

    async def revoke(self, key_id: str, now: datetime) -> None:
        """Mark the key revoked (once: a second revocation keeps the first time)."""
        ...


class AppleDeviceRepository(Protocol):
    """Devices running Apple Wallet and the passes registered on them."""

    async def register(
        self, device_id: str, push_token: str, pass_type_id: str, serial: str, now: datetime
    ) -> bool: ...
    async def unregister(self, device_id: str, pass_type_id: str, serial: str) -> bool: ...
    async def changed(
        self, device_id: str, pass_type_id: str, since: int | None
    ) -> ChangedPasses: ...
    async def installs(self, serial: str) -> int: ...
    async def queue_pushes(self, serial: str, due_at: datetime) -> None: ...
    async def add_logs(self, messages: Sequence[str], now: datetime) -> None: ...
    async def prune_logs(self, keep: int) -> None: ...
    async def forget_push_token(
        self, pass_type_id: str, push_token: str
    ) -> list[tuple[str, str]]: ...


class PushQueue(Protocol):
    """Pushes owed to devices, durable and coalesced."""

    async def claim(self, now: datetime, lease: timedelta, limit: int) -> list[PushJob]: ...
    async def settle(self, job: PushJob) -> bool: ...
    async def drop(self, job: PushJob) -> None: ...
    async def postpone(self, job: PushJob, due_at: datetime, error: str) -> None: ...
    async def pending(self) -> int: ...


@dataclass(frozen=True)
class InboxRecord:
    """What the inbox kept of a request: its fingerprint and the answer it got."""

    fingerprint: str
    response: Mapping[str, Any] | None
    processed: bool


@dataclass(frozen=True)
class PendingInbox:
    """An accepted webhook not yet acted on."""

    source: str
    external_id: str
    body: bytes
    received_at: datetime


class Inbox(Protocol):
    """Inbound requests and webhooks, each once."""

    async def claim(
        self, source: str, external_id: str, fingerprint: str, now: datetime, body: bytes | None
    ) -> None: ...
    async def get(self, source: str, external_id: str) -> InboxRecord | None: ...
    async def respond(
        self, source: str, external_id: str, response: dict[str, Any], now: datetime
    ) -> None: ...
    async def next_pending(self, source_prefix: str) -> PendingInbox | None: ...
    async def scrub(
        self,
        source_prefix: str,
        mentions: Callable[[bytes, Mapping[str, Any] | None], bool],
        now: datetime,
    ) -> int:
        """Drop the bodies `mentions` picks (closing pending ones); return how many."""
        ...


class Ledger(Protocol):
    """The append-only loyalty ledger."""

    async def append(self, entry: LedgerEntry, now: datetime) -> None: ...
    async def has(self, program_id: str, business_key: str) -> bool: ...
    async def find(self, program_id: str, business_key: str) -> LedgerEntry | None: ...
    async def balance(self, customer_id: str) -> int: ...
    async def totals(self, customer_id: str, cutoff: datetime) -> LedgerTotals:
        """Return what was earned before `cutoff` and everything debited so far."""
        ...

    async def earned_since(self, customer_id: str, since: datetime) -> int:
        """Return the points earned (positive entries other than adjustments) since then."""
        ...


class JobSchedule(Protocol):
    """Shared among processes: which one runs a periodic job this time."""

    async def claim(self, job: str, now: datetime, every_s: int) -> bool:
        """Return True when this caller runs `job` now (at most once per `every_s`)."""
        ...

    async def release(self, job: str) -> None:
        """Let the next claim of `job` succeed at once (the run finished early)."""
        ...


class TierFeed(Protocol):
    """The tier-updates feed: cursors in commit order."""

    async def append(self, update: TierUpdate, now: datetime) -> int:
        """Record the change; its cursor row lock is held until the transaction ends."""
        ...

    async def page(self, after: int, limit: int, program_id: str | None) -> list[TierUpdate]: ...


class StoreVisitRepository(Protocol):
    """The last accepted geofence event per customer and store; never coordinates."""

    async def get_for_update(self, customer_id: str, store_id: str) -> AcceptedEvent | None:
        """Return the last accepted event, row-locked until the transaction ends."""
        ...

    async def upsert(
        self,
        customer_id: str,
        store_id: str,
        event: AcceptedEvent,
        dwell_s: int | None,
        now: datetime,
    ) -> None:
        """Make `event` the last accepted one; a concurrent first insert is a DuplicateKey."""
        ...

    async def forget(self, customer_ids: Sequence[str], *, delivered_too: bool) -> int:
        """Delete the visit state and store events (only undelivered ones unless told)."""
        ...


class GeofenceRefusals(Protocol):
    """How many claims each program had refused per reason; nothing else about them."""

    async def add(self, program_id: str, reason: str) -> None: ...
    async def total(self, program_id: str, reason: str) -> int: ...


class Outbox(Protocol):
    async def add(self, event: DomainEvent) -> None: ...


class GoogleQueue(Protocol):
    """Google objects owed a sync: durable, coalesced per pass, with what Google last said."""

    async def queue(self, serial: str, issuer_id: str, due_at: datetime) -> None: ...
    async def claim(self, now: datetime, lease: timedelta, limit: int) -> list[GoogleJob]: ...
    async def settle(self, job: GoogleJob, tier: str | None, now: datetime) -> bool: ...
    async def postpone(self, job: GoogleJob, due_at: datetime, error: str) -> None: ...
    async def fail(self, job: GoogleJob, error: str, field: str | None, now: datetime) -> None: ...
    async def status(self, serial: str) -> GoogleStatus | None: ...
    async def count_install(self, serial: str, delta: int) -> None: ...
    async def pending(self) -> int: ...
    async def notices_since(self, serial: str, since: datetime) -> int: ...
    async def add_notice(self, serial: str, now: datetime) -> None: ...
    async def class_digest(self, class_id: str) -> str | None: ...
    async def set_class_digest(self, class_id: str, digest: str, now: datetime) -> None: ...


class RateBuckets(Protocol):
    """Per-issuer token buckets shared by every walletsvc process."""

    async def take(
        self, key: str, want: int, now: datetime, rate: float, burst: int
    ) -> tuple[int, float]:
        """Take up to `want` tokens; return how many and, when none, seconds to wait."""
        ...


class CallbackRejections(Protocol):
    """How many inbound callbacks were refused, per source and reason; nothing else."""

    async def add(self, source: str, reason: str) -> None: ...
    async def total(self, source: str, reason: str) -> int: ...


class Retention(Protocol):
    """Deletes old rows in batches of at most `limit`, oldest first; returns how many."""

    async def prune_events(self, before: datetime, limit: int, *, undistributed: bool) -> int:
        """Events recorded before then and given to every sink (none owed, none dead).

        `undistributed`: also events never handed to the sinks (there are none).
        """
        ...

    async def prune_inbox(self, before: datetime, limit: int) -> int:
        """Processed inbox rows received before then."""
        ...

    async def prune_apple_logs(self, before: datetime, limit: int) -> int: ...

    async def prune_google_notices(self, before: datetime, limit: int) -> int: ...


class UnitOfWork(Protocol):
    """One transaction: state changes and their outbox rows commit together or not at all."""

    @property
    def programs(self) -> ProgramRepository: ...

    @property
    def customers(self) -> CustomerRepository: ...

    @property
    def passes(self) -> PassRepository: ...

    @property
    def stores(self) -> StoreRepository: ...

    @property
    def terminals(self) -> TerminalRepository: ...

    @property
    def api_keys(self) -> ApiKeyRepository: ...

    @property
    def apple_devices(self) -> AppleDeviceRepository: ...

    @property
    def push_queue(self) -> PushQueue: ...

    @property
    def inbox(self) -> Inbox: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def tier_feed(self) -> TierFeed: ...

    @property
    def schedule(self) -> JobSchedule: ...

    @property
    def store_visits(self) -> StoreVisitRepository: ...

    @property
    def geofence_refusals(self) -> GeofenceRefusals: ...

    @property
    def google_objects(self) -> GoogleQueue: ...

    @property
    def rate_buckets(self) -> RateBuckets: ...

    @property
    def callback_rejections(self) -> CallbackRejections: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def retention(self) -> Retention: ...

    async def commit(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


class ApplePasses(Protocol):
    """Renders what a pass shows into pass.json, and packs it into a signed .pkpass."""

    def render(self, content: PassContent) -> bytes: ...

    def default_assets(self, program: Program) -> dict[str, bytes]: ...

    def needs_assets(self, program: Program) -> bool:
        """Tell whether `package` needs the program's assets (False: prepared already)."""
        ...

    async def package(
        self, program: Program, pass_json: bytes, assets: Mapping[str, bytes]
    ) -> bytes: ...


class PushSender(Protocol):
    """Sends Apple Wallet's empty update push to devices (APNs, topic = pass type id)."""

    async def send(self, topic: str, push_tokens: Sequence[str]) -> list[PushReply]:
        """Push to every token, concurrently; one reply per token, in the same order."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class GoogleResource:
    """A rendered Google class or object: where it lives, its id, JSON body and digest."""

    collection: str  # the REST collection: loyaltyClass, loyaltyObject, offerClass, offerObject
    id: str
    body: Mapping[str, Any]
    digest: str


class WalletObjectStore(Protocol):
    """Google Wallet: renders classes and objects, writes them over REST, makes save links."""

    @property
    def issuer_id(self) -> str | None:
        """Return the configured issuer (the only recipient callbacks may name)."""
        ...

    def save_url(self, program: Program, wallet_pass: WalletPass) -> str | None: ...

    def render_class(self, program: Program, kind: PassKind) -> GoogleResource: ...

    def render_object(self, content: PassContent) -> GoogleResource: ...

    def tier_message(
        self, content: PassContent, now: datetime, *, notify: bool
    ) -> Mapping[str, Any]: ...

    async def put_class(self, issuer_id: str, resource: GoogleResource) -> None:
        """Insert the class, or patch it when it exists (409)."""
        ...

    async def put_object(
        self, issuer_id: str, resource: GoogleResource, *, exists: bool, notify: bool
    ) -> None:
        """Patch the object (insert on 404), or insert it (patch on 409) when new."""
        ...

    async def add_message(
        self, issuer_id: str, resource: GoogleResource, message: Mapping[str, Any]
    ) -> None: ...

    async def close(self) -> None: ...


class Clock(Protocol):
    def __call__(self) -> datetime: ...
