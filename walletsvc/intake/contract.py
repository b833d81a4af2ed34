"""The contract every inbound POS webhook adapter implements, and what it yields.

An adapter knows one vendor: how its deliveries are signed (`verify`, on the raw
bytes, before anything is parsed) and how its payloads map onto the two things the
store side acts on: a pass scanned at a till (`NormalizedScan`) and a purchase made
by a known customer (`NormalizedPurchase`). Everything else a vendor sends is
answered 2xx and dropped (`ParsedWebhook.ignored`).

Both methods raise only domain errors: `BadSignature` (401: no signature made with
any of the terminal's keys) or `StaleTimestamp` (401: signed, but older than the
vendor's retries can explain, or dated in the future) from `verify`, and
`MalformedWebhook` (422) from `parse`. Anything else escaping is a bug; the
conformance suite feeds every adapter random bytes and mangled payloads to show it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from walletsvc.domain.errors import MalformedWebhook

EVENT_ID = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII: it becomes an inbox key
REFERENCE = re.compile(r"[\x20-\x7e]{1,200}")  # order ids, customer ids, scanned codes
CURRENCY = re.compile(r"[A-Z]{3}")
MAX_AMOUNT = Decimal("1e12")  # a till amount, not arbitrary precision


class PosAdapter(Protocol):
    """One POS vendor's webhooks: verify a delivery, then read it."""

    name: str  # the slug in the URL, inbox source, metrics and config ("square")

    def decode_secret(self, secret: str) -> bytes:
        """Return the signing key for a terminal secret as the vendor's dashboard shows it."""
        ...

    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes,
        url: str,
        secrets: Sequence[bytes],
        now: datetime,
    ) -> None:
        """Accept a delivery signed with any of `secrets` and fresh at `now`, else raise."""
        ...

    def parse(self, headers: Mapping[str, str], body: bytes) -> ParsedWebhook:
        """Return what a verified delivery says, or raise MalformedWebhook."""
        ...


def _reference(value: str | None, field: str) -> None:
    if value is not None and not REFERENCE.fullmatch(value):
        raise MalformedWebhook(f"{field} must be 1-200 printable characters", field=field)


def _aware(value: datetime | None, field: str) -> None:
    if value is not None and value.utcoffset() is None:
        raise MalformedWebhook(f"{field} needs a time zone", field=field)


@dataclass(frozen=True)
class NormalizedScan:
    """A pass barcode read at a till, with nothing bought (yet)."""

    barcode: str
    occurred_at: datetime | None = None

    def __post_init__(self) -> None:
        _reference(self.barcode, "barcode")
        _aware(self.occurred_at, "occurred_at")


@dataclass(frozen=True)
class NormalizedPurchase:
    """A completed sale and who made it.

    `order_id` is the vendor's id of the sale and the ledger's business key: the same
    sale reported twice (created, then paid) carries the same id. The customer is a
    POS customer id of this vendor, a code scanned at the till (a pass barcode or a
    loyalty number), or both; a sale with neither is never reported.
    """

    order_id: str
    amount: Decimal
    currency: str
    customer_id: str | None = None
    loyalty_code: str | None = None
    occurred_at: datetime | None = None

    def __post_init__(self) -> None:
        _reference(self.order_id, "order_id")
        _reference(self.customer_id, "customer_id")
        _reference(self.loyalty_code, "loyalty_code")
        _aware(self.occurred_at, "occurred_at")
        if self.customer_id is None and self.loyalty_code is None:
            raise MalformedWebhook("a purchase needs a customer id or a loyalty code")
        if not self.amount.is_finite() or not Decimal(0) <= self.amount < MAX_AMOUNT:
            raise MalformedWebhook("amount must be a non-negative till amount", field="amount")
        if not CURRENCY.fullmatch(self.currency):
            raise MalformedWebhook("currency must be an ISO 4217 code", field="currency")


NormalizedItem = NormalizedScan | NormalizedPurchase


@dataclass(frozen=True)
class ParsedWebhook:
    """One verified delivery, read.

    `event_id` is the vendor's id of the event, the same on every retry: with the
    adapter's name (and the terminal) it is the inbox's dedupe key. `ignored` marks a
    delivery that carries nothing to act on (a type we do not handle, or a handled one
    in a state that earns nothing, such as an unpaid order): answer 2xx and drop it.
    """

    event_id: str
    event_type: str
    occurred_at: datetime | None
    items: tuple[NormalizedItem, ...] = ()
    ignored: bool = False

    def __post_init__(self) -> None:
        if not EVENT_ID.fullmatch(self.event_id):
            raise MalformedWebhook(
                "the event id must be 1-200 printable ASCII characters", field="event_id"
            )
        if len(self.event_type) > 200:
            raise MalformedWebhook("the event type is too long", field="event_type")
        _aware(self.occurred_at, "occurred_at")
        if self.ignored and self.items:
            raise MalformedWebhook("an ignored delivery carries no items")
        if not self.ignored and not self.items:
            raise MalformedWebhook("a delivery acted on carries at least one item")

    @classmethod
    def ignoring(
        cls, event_id: str, event_type: str, occurred_at: datetime | None = None
    ) -> ParsedWebhook:
        """Return a delivery to answer 2xx and drop."""
        return cls(event_id, event_type, occurred_at, (), ignored=True)

    @classmethod
    def carrying(
        cls,
        event_id: str,
        event_type: str,
        occurred_at: datetime | None,
        items: Sequence[NormalizedItem],
    ) -> ParsedWebhook:
        """Return a delivery with its items, or one to drop when there are none."""
        if not items:
            return cls.ignoring(event_id, event_type, occurred_at)
        return cls(event_id, event_type, occurred_at, tuple(items))
