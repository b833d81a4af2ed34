"""The database tables: the only place with `table=True`.

The schema changes only through alembic migrations (storage/migrations/versions);
these classes must match what the migrations create (a test checks that).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    text,
)
from sqlalchemy import UniqueConstraint as Unique
from sqlmodel import Field, SQLModel

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _utc() -> Any:
    return Column(DateTime(timezone=True), nullable=False)


def _utc_nullable() -> Any:
    return Column(DateTime(timezone=True), nullable=True)


class ProgramRow(SQLModel, table=True):
    __tablename__ = "programs"

    id: str = Field(primary_key=True, max_length=63)
    name: str = Field(max_length=200)
    points_per_unit: str = Field(max_length=32)  # a Decimal, kept exact as text
    tiers: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    apple: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    google: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # Tier review and expiry policy (domain LoyaltyPolicy); {} is the default policy.
    loyalty: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    design_version: int = 1
    # The design version every pass has been re-rendered for; behind design_version
    # while a refresh is owed (services/program_refresh.py).
    refreshed_version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    # Bumped by every store change (pass locations list the stores); the refreshed
    # one trails it while the passes are being re-rendered.
    stores_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    refreshed_stores_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = Field(sa_column=_utc())
    updated_at: datetime = Field(sa_column=_utc())
    # On PostgreSQL a new number from a sequence, set by triggers on every change of this
    # row or of the program's stores, whatever wrote it (migration 0014): what the
    # per-process ProgramCache checks. Whatever is written here is overwritten.
    revision: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )


class ProgramAssetRow(SQLModel, table=True):
    __tablename__ = "program_assets"

    program_id: str = Field(primary_key=True, foreign_key="programs.id", max_length=63)
    name: str = Field(primary_key=True, max_length=200)
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class StoreRow(SQLModel, table=True):
    __tablename__ = "stores"

    id: str = Field(primary_key=True, max_length=64)
    program_id: str = Field(foreign_key="programs.id", index=True, max_length=63)
    name: str = Field(max_length=200)
    latitude: float
    longitude: float
    radius_m: float
    created_at: datetime = Field(sa_column=_utc())


class TerminalRow(SQLModel, table=True):
    __tablename__ = "terminals"

    id: str = Field(primary_key=True, max_length=64)
    store_id: str = Field(foreign_key="stores.id", index=True, max_length=64)
    program_id: str = Field(foreign_key="programs.id", max_length=63)
    adapter: str = Field(max_length=32)
    secret_sealed: str  # encrypted with the data key: it must be read back to verify HMACs
    previous_secret_sealed: str | None = None  # still accepted while a rotation runs
    previous_valid_until: datetime | None = Field(default=None, sa_column=_utc_nullable())
    created_at: datetime = Field(sa_column=_utc())


class CustomerRow(SQLModel, table=True):
    __tablename__ = "customers"
    __table_args__ = (Unique("program_id", "external_id", name="uq_customers_program_external"),)

    id: str = Field(primary_key=True, max_length=40)
    program_id: str = Field(foreign_key="programs.id", max_length=63)
    external_id: str = Field(max_length=128)
    location_consent: bool = False
    marketing_consent: bool = False
    points_balance: int = Field(default=0, sa_type=BigInteger)
    tier: str = Field(max_length=100)
    merged_into: str | None = Field(default=None, max_length=40)
    tier_floor: str | None = Field(default=None, max_length=100)
    erased_at: datetime | None = Field(default=None, sa_column=_utc_nullable())
    created_at: datetime = Field(sa_column=_utc())
    updated_at: datetime = Field(sa_column=_utc())


class IdentifierRow(SQLModel, table=True):
    __tablename__ = "identifiers"
    __table_args__ = (
        Unique("program_id", "kind", "value", name="uq_identifiers_program_kind_value"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    program_id: str = Field(foreign_key="programs.id", max_length=63)
    customer_id: str = Field(foreign_key="customers.id", index=True, max_length=40)
    kind: str = Field(max_length=32)
    value: str = Field(max_length=200)
    source: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=_utc())


class PassRow(SQLModel, table=True):
    __tablename__ = "passes"
    # One active loyalty card per customer, held by the database so that two
    # concurrent issue requests cannot both create one.
    __table_args__ = (
        Index(
            "uq_passes_one_active_loyalty",
            "customer_id",
            unique=True,
            postgresql_where=text("kind = 'loyalty' AND state = 'active'"),
            sqlite_where=text("kind = 'loyalty' AND state = 'active'"),
        ),
    )

    serial: str = Field(primary_key=True, max_length=40)
    program_id: str = Field(foreign_key="programs.id", max_length=63)
    customer_id: str = Field(foreign_key="customers.id", index=True, max_length=40)
    kind: str = Field(max_length=16)
    state: str = Field(max_length=16)
    auth_token_sealed: str  # Apple's authenticationToken, encrypted: re-rendered into every update
    coupon: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    void_reason: str | None = Field(default=None, max_length=200)
    version: int = 1
    content_hash: str = Field(max_length=64)
    # Position in the commit-ordered change sequence (counters 'pass_update'): Apple's
    # "what changed?" tag. 0 until the pass first changes after issue.
    update_tag: int = Field(default=0, sa_type=BigInteger)
    last_changed_at: datetime = Field(sa_column=_utc())
    created_at: datetime = Field(sa_column=_utc())


class CounterRow(SQLModel, table=True):
    """Named sequences whose order is commit order.

    A writer increments its counter as the last step of its transaction; the row lock
    it takes is held until commit, so a reader never sees number n+1 committed while
    n is still in flight (which a database sequence allows, and which makes cursors skip).
    """

    __tablename__ = "counters"

    name: str = Field(primary_key=True, max_length=32)
    value: int = Field(default=0, sa_type=BigInteger)


class AppleDeviceRow(SQLModel, table=True):
    """A device running Apple Wallet, known by the library id it registered with."""

    __tablename__ = "apple_devices"

    device_library_id: str = Field(primary_key=True, max_length=128)
    push_token: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=_utc())
    updated_at: datetime = Field(sa_column=_utc())


class AppleRegistrationRow(SQLModel, table=True):
    """A pass installed on a device: the device wants pushes when the pass changes."""

    __tablename__ = "apple_registrations"

    device_library_id: str = Field(
        primary_key=True, foreign_key="apple_devices.device_library_id", max_length=128
    )
    pass_type_id: str = Field(primary_key=True, max_length=128)
    serial: str = Field(primary_key=True, foreign_key="passes.serial", index=True, max_length=40)
    created_at: datetime = Field(sa_column=_utc())


class ApplePushRow(SQLModel, table=True):
    """A push owed to one device for one pass type: the durable, coalescing push queue.

    Any number of changes before the push goes out bump `generation` on the same row, so
    they cost one push; the worker deletes the row only if the generation it sent is
    still the latest, so a change that lands mid-send is pushed again.
    """

    __tablename__ = "apple_push_queue"
    __table_args__ = (Index("ix_apple_push_queue_due", "due_at"),)

    pass_type_id: str = Field(primary_key=True, max_length=128)
    push_token: str = Field(primary_key=True, max_length=200)
    generation: int = 1
    attempts: int = 0
    due_at: datetime = Field(sa_column=_utc())
    claimed_until: datetime | None = Field(default=None, sa_column=_utc_nullable())
    last_error: str | None = Field(default=None, max_length=200)


class AppleLogRow(SQLModel, table=True):
    """A message Apple Wallet posted to /v1/log about a problem with our web service."""

    __tablename__ = "apple_logs"

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    received_at: datetime = Field(sa_column=_utc())
    message: str = Field(max_length=1000)


class InboxRow(SQLModel, table=True):
    """An inbound request or webhook, once: its unique key makes retries no-ops.

    Inserted in the same transaction as its effects (scans), or first and processed
    from here later (vendor webhooks), so a slow step never makes the sender retry.
    """

    __tablename__ = "inbox"
    __table_args__ = (Unique("source", "external_id", name="uq_inbox_source_external"),)

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    source: str = Field(max_length=128)  # "scan:<program>", "pos:<adapter>:<terminal>", ...
    external_id: str = Field(max_length=300)  # scan_id, the vendor's event id
    fingerprint: str = Field(max_length=64)  # digest of the request, to spot a reused key
    received_at: datetime = Field(sa_column=_utc())
    response: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    body: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    processed_at: datetime | None = Field(default=None, sa_column=_utc_nullable())


class LedgerEntryRow(SQLModel, table=True):
    """One append-only movement of points; the business key makes it happen once."""

    __tablename__ = "ledger_entries"
    __table_args__ = (Unique("program_id", "business_key", name="uq_ledger_program_key"),)

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    program_id: str = Field(foreign_key="programs.id", max_length=63)
    customer_id: str = Field(foreign_key="customers.id", index=True, max_length=40)
    kind: str = Field(max_length=16)
    points: int = Field(sa_type=BigInteger)
    business_key: str = Field(max_length=200)
    source: str = Field(max_length=64)
    occurred_at: datetime = Field(sa_column=_utc())
    recorded_at: datetime = Field(sa_column=_utc())


class TierUpdateRow(SQLModel, table=True):
    """One tier change, in the feed the loyalty engine reads.

    `cursor` comes from the commit-ordered `tier_update` counter, not a sequence: a
    reader that has seen cursor n never later finds a smaller one committed.
    """

    __tablename__ = "tier_updates"

    cursor: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    program_id: str = Field(foreign_key="programs.id", max_length=63, index=True)
    customer_id: str = Field(max_length=40)
    old_tier: str = Field(max_length=100)
    new_tier: str = Field(max_length=100)
    balance: int = Field(sa_type=BigInteger)
    reason: str = Field(max_length=32)  # earn, spend, adjust, expire, engine, review, merge
    occurred_at: datetime = Field(sa_column=_utc())
    recorded_at: datetime = Field(sa_column=_utc())


class ApiKeyRow(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=100)
    secret_hash: str = Field(max_length=64)
    scopes: list[str] = Field(sa_column=Column(JSON, nullable=False))
    program_id: str | None = Field(default=None, foreign_key="programs.id", max_length=63)
    created_at: datetime = Field(sa_column=_utc())
    revoked_at: datetime | None = Field(default=None, sa_column=_utc_nullable())


class OutboxRow(SQLModel, table=True):
    """An event waiting for the relay; written in the transaction that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_partition_seq", "partition_key", "seq"),
        # The relay's fan-out looks only at rows not yet handed to the sinks.
        Index(
            "ix_outbox_undistributed",
            "seq",
            postgresql_where=text("distributed_at IS NULL"),
            sqlite_where=text("distributed_at IS NULL"),
        ),
        # The operator dashboard's event counts: a few types within a time window.
        Index("ix_outbox_type_recorded", "type", "recorded_at"),
    )

    seq: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    event_id: str = Field(unique=True, max_length=36)
    type: str = Field(max_length=120)
    subject: str = Field(max_length=64)
    partition_key: str = Field(max_length=64)
    occurred_at: datetime = Field(sa_column=_utc())
    recorded_at: datetime = Field(sa_column=_utc())
    data: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # Set when the relay made this event's deliveries (one per sink that takes its type).
    distributed_at: datetime | None = Field(default=None, sa_column=_utc_nullable())


class EventDeliveryRow(SQLModel, table=True):
    """One event owed to one sink: the relay's progress, per sink and per event.

    Per-event state rather than a "last delivered seq" cursor per sink: on PostgreSQL
    `outbox.seq` is taken at INSERT, not at commit, so a cursor would step over a row
    that commits after a higher one was delivered. A delivery row exists from the
    moment the fan-out saw its event committed, and goes away only when delivered.
    """

    __tablename__ = "outbox_deliveries"
    __table_args__ = (
        Index("ix_outbox_deliveries_due", "sink", "state", "next_attempt_at"),
        # "Is an earlier event of this customer still owed to this sink?"
        Index("ix_outbox_deliveries_partition", "sink", "partition_key", "seq"),
    )

    sink: str = Field(primary_key=True, max_length=64)
    seq: int = Field(
        sa_column=Column(BigId, ForeignKey("outbox.seq"), primary_key=True, autoincrement=False)
    )
    partition_key: str = Field(max_length=64)
    state: str = Field(max_length=16)  # pending or dead; delivered rows are deleted
    attempts: int = 0
    queued_at: datetime = Field(sa_column=_utc())
    next_attempt_at: datetime = Field(sa_column=_utc())
    lease_id: str | None = Field(default=None, max_length=32)
    leased_until: datetime | None = Field(default=None, sa_column=_utc_nullable())
    last_error: str | None = Field(default=None, max_length=200)
    dead_at: datetime | None = Field(default=None, sa_column=_utc_nullable())


class EventSinkRow(SQLModel, table=True):
    """What all relay processes must agree on about a sink: paused by a 429, gone by a 410."""

    __tablename__ = "event_sinks"

    name: str = Field(primary_key=True, max_length=64)
    paused_until: datetime | None = Field(default=None, sa_column=_utc_nullable())
    gone_at: datetime | None = Field(default=None, sa_column=_utc_nullable())
    gone_reason: str | None = Field(default=None, max_length=200)
    updated_at: datetime = Field(sa_column=_utc())


class StoreVisitRow(SQLModel, table=True):
    """The last accepted geofence event of one customer at one store.

    What the next claim's debouncing and dwell time are judged against. Coordinates
    are never kept: a claim's point is checked against the store and then dropped.
    """

    __tablename__ = "store_visits"

    customer_id: str = Field(primary_key=True, foreign_key="customers.id", max_length=40)
    store_id: str = Field(primary_key=True, foreign_key="stores.id", max_length=64)
    type: str = Field(max_length=16)  # enter, dwell or exit
    occurred_at: datetime = Field(sa_column=_utc())
    visit_started_at: datetime | None = Field(default=None, sa_column=_utc_nullable())
    dwell_s: int | None = None
    updated_at: datetime = Field(sa_column=_utc())


class GeofenceRefusalRow(SQLModel, table=True):
    """How many geofence claims one program had refused for one reason.

    Refusals for lack of location consent may keep nothing else, so this is a bare
    count: no customer, store, time or place.
    """

    __tablename__ = "geofence_refusals"

    program_id: str = Field(primary_key=True, foreign_key="programs.id", max_length=63)
    reason: str = Field(primary_key=True, max_length=32)
    total: int = Field(default=0, sa_type=BigInteger)


class GoogleObjectRow(SQLModel, table=True):
    """A pass's Google Wallet object: the durable, coalescing sync queue and its outcome.

    Like the Apple push queue, every change before the sync goes out bumps `generation`
    on the one row, so a burst of changes costs one PATCH; the worker marks it synced
    only if the generation it sent is still the latest. `due_at` is None when nothing
    is owed. Google's refusal of a design is kept here for the operator.
    """

    __tablename__ = "google_objects"
    __table_args__ = (Index("ix_google_objects_due", "due_at"),)

    serial: str = Field(primary_key=True, foreign_key="passes.serial", max_length=40)
    issuer_id: str = Field(max_length=40)
    generation: int = 1
    attempts: int = 0
    due_at: datetime | None = Field(default=None, sa_column=_utc_nullable())
    claimed_until: datetime | None = Field(default=None, sa_column=_utc_nullable())
    state: str = Field(default="pending", max_length=16)  # pending, synced, error
    inserted: bool = False  # Google holds the object (patch first)
    last_tier: str | None = Field(default=None, max_length=100)  # the tier Google shows
    last_error: str | None = Field(default=None, max_length=500)
    error_field: str | None = Field(default=None, max_length=200)
    installs: int = 0  # saves minus deletes reported by Google's callbacks
    synced_at: datetime | None = Field(default=None, sa_column=_utc_nullable())
    updated_at: datetime = Field(sa_column=_utc())


class GoogleClassRow(SQLModel, table=True):
    """A Google Wallet class as last written, by digest: written again only when it changed."""

    __tablename__ = "google_classes"

    class_id: str = Field(primary_key=True, max_length=250)
    digest: str = Field(max_length=64)
    updated_at: datetime = Field(sa_column=_utc())


class GoogleNoticeRow(SQLModel, table=True):
    """A notifying message sent to a pass's holder: Google allows 3 per 24 hours."""

    __tablename__ = "google_notices"
    __table_args__ = (Index("ix_google_notices_serial_sent", "serial", "sent_at"),)

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    serial: str = Field(max_length=40)
    sent_at: datetime = Field(sa_column=_utc())


class RateBucketRow(SQLModel, table=True):
    """A token bucket shared by every process, e.g. Google's requests per issuer."""

    __tablename__ = "rate_buckets"

    key: str = Field(primary_key=True, max_length=100)
    tokens: float
    updated_at: datetime = Field(sa_column=_utc())


class RequestBucketRow(SQLModel, table=True):
    """A token bucket of incoming requests (per API key, terminal or client address).

    Times are seconds since the epoch, so one statement can refill, take and say when
    the bucket is full again (`full_at`: after that the row may be deleted, as a
    missing row is a full bucket).
    """

    __tablename__ = "request_buckets"

    key: str = Field(primary_key=True, max_length=200)
    tokens: float = Field(sa_column=Column(Double, nullable=False))
    taken: int = Field(sa_column=Column(Integer, nullable=False))
    updated_s: float = Field(sa_column=Column(Double, nullable=False))
    full_at: float = Field(sa_column=Column(Double, nullable=False, index=True))


class CallbackRejectionRow(SQLModel, table=True):
    """How many inbound callbacks were refused per source and reason; nothing about them."""

    __tablename__ = "callback_rejections"

    source: str = Field(primary_key=True, max_length=64)
    reason: str = Field(primary_key=True, max_length=64)
    total: int = Field(default=0, sa_type=BigInteger)


metadata = SQLModel.metadata
