"""In-store and wallet events, as facts that happened.

Each event becomes one outbox row in the same transaction as the change that caused
it; the relay (walletsvc/outbox/) turns rows into CloudEvents 1.0 for each sink.
Types are reverse-DNS and versioned: a consumer can rely on a type's data shape
until the version changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


class EventType:
    """The event types walletsvc emits."""

    CUSTOMER_CREATED = "com.walletsvc.identity.customer_created.v1"
    CUSTOMER_ERASED = "com.walletsvc.identity.customer_erased.v1"
    CONSENTS_CHANGED = "com.walletsvc.identity.consents_changed.v1"
    PASS_ISSUED = "com.walletsvc.wallet.pass_issued.v1"
    PASS_UPDATED = "com.walletsvc.wallet.pass_updated.v1"
    PASS_VOIDED = "com.walletsvc.wallet.pass_voided.v1"
    PASS_INSTALLED = "com.walletsvc.wallet.pass_installed.v1"
    PASS_REMOVED = "com.walletsvc.wallet.pass_removed.v1"
    PASS_SCANNED = "com.walletsvc.instore.pass_scanned.v1"
    PURCHASE_RECORDED = "com.walletsvc.instore.purchase_recorded.v1"
    COUPON_REDEEMED = "com.walletsvc.instore.coupon_redeemed.v1"
    POINTS_EARNED = "com.walletsvc.loyalty.points_earned.v1"
    POINTS_SPENT = "com.walletsvc.loyalty.points_spent.v1"
    POINTS_ADJUSTED = "com.walletsvc.loyalty.points_adjusted.v1"
    POINTS_EXPIRED = "com.walletsvc.loyalty.points_expired.v1"
    TIER_CHANGED = "com.walletsvc.loyalty.tier_changed.v1"
    IDENTITY_LINKED = "com.walletsvc.identity.identity_linked.v1"
    IDENTITY_MERGED = "com.walletsvc.identity.identity_merged.v1"
    # The same strings as geofence.StoreEventType (a unit test holds them equal).
    STORE_ENTERED = "com.walletsvc.instore.store_entered.v1"
    STORE_DWELLED = "com.walletsvc.instore.store_dwelled.v1"
    STORE_EXITED = "com.walletsvc.instore.store_exited.v1"


# Events that say where a person was: dropped when location consent is withdrawn, and
# with the rest of the visit history when the person is erased.
LOCATION_EVENT_TYPES = (EventType.STORE_ENTERED, EventType.STORE_DWELLED, EventType.STORE_EXITED)


@dataclass(frozen=True)
class DomainEvent:
    """Something that happened to a customer. `data` never holds personal data."""

    type: str
    subject: str  # the customer (profile) id: it orders events per customer
    data: Mapping[str, object]
    occurred_at: datetime
    # Made once, when the event is recorded; a retry of the delivery reuses it.
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
