"""Toast: paid checks of a known guest or with a loyalty identifier applied.

The pages cited are Toast's developer guide, https://doc.toasttab.com/doc/devguide/.

Verification (apiMessageSigning.html):
`Toast-Signature` is base64 HMAC-SHA256 keyed with the subscription's secret over the
message body followed by the message timestamp. Toast's header list
(apiHttpHeaders.html: Toast-Attempt-Number, Toast-Signature, Toast-Event-Type,
Toast-Restaurant-External-ID, Toast-Event-Category) has no timestamp header: the
timestamp is the `timestamp` field of the message itself
(apiMessageDataSchema.html: `{timestamp, eventCategory, eventType, guid, details}`),
so that one field is read before the signature is checked, and the signature still
covers every byte of the body.

Freshness: Toast resends a failed message after 5 and then 10 more minutes and then
gives up (apiRetrySupport.html), so a genuine message can be 15 minutes old. Dedupe
is on the event `guid`, the same on every attempt.

Orders (devOrdersWebhookRef.html): `eventType` "order_updated" carries the whole
Order in `details.order` on every change. Each Check has `guid`, `paymentStatus`
(OPEN, PAID, CLOSED), `totalAmount` (a decimal number in the restaurant's currency,
which the payload does not name), `customer.guid`, `appliedLoyaltyInfo.
loyaltyIdentifier`, `closedDate`, `deleted` and `voided`. A paid check is the sale:
its guid is the business key, since the same check appears in every later update.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from walletsvc.domain.errors import (
    BadSignature,
    ConfigurationError,
    MalformedWebhook,
    StaleTimestamp,
)
from walletsvc.intake.contract import NormalizedPurchase, ParsedWebhook
from walletsvc.intake.payload import (
    CURRENCY,
    decimal_amount,
    header,
    items_of,
    json_object,
    member,
    optional_member,
    optional_text,
    optional_timestamp,
    text,
    timestamp,
)
from walletsvc.intake.signature import CLOCK_SKEW, check_base64_hmac, check_fresh

SIGNATURE_HEADER = "Toast-Signature"
ORDER_EVENT = "order_updated"
PAID = frozenset({"PAID", "CLOSED"})
RETRY_HORIZON = timedelta(minutes=15)


def _message_timestamp(body: bytes) -> str | None:
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return None
    stamp = message.get("timestamp") if isinstance(message, dict) else None
    # An ISO time is short ASCII; anything else cannot be what Toast signed.
    if not isinstance(stamp, str) or not stamp or len(stamp) > 64 or not stamp.isascii():
        return None
    return stamp


def _purchase(
    check: Any, index: int, currency: str, fallback: datetime | None
) -> NormalizedPurchase | None:
    field = f"details.order.checks[{index}]"
    if not isinstance(check, dict):
        raise MalformedWebhook(f"{field} must be an object", field=field)
    if check.get("deleted") is True or check.get("voided") is True:
        return None
    if optional_text(check, "paymentStatus", field=f"{field}.paymentStatus") not in PAID:
        return None
    customer = optional_member(check, "customer", field=f"{field}.customer")
    loyalty = optional_member(check, "appliedLoyaltyInfo", field=f"{field}.appliedLoyaltyInfo")
    customer_id = (
        None
        if customer is None
        else optional_text(customer, "guid", field=f"{field}.customer.guid")
    )
    code = (
        None
        if loyalty is None
        else optional_text(
            loyalty, "loyaltyIdentifier", field=f"{field}.appliedLoyaltyInfo.loyaltyIdentifier"
        )
    )
    if customer_id is None and code is None:
        return None
    closed_at = optional_timestamp(check, "closedDate", field=f"{field}.closedDate")
    return NormalizedPurchase(
        order_id=text(check, "guid", field=f"{field}.guid"),
        amount=decimal_amount(check.get("totalAmount"), field=f"{field}.totalAmount"),
        currency=currency,
        customer_id=customer_id,
        loyalty_code=code,
        occurred_at=closed_at or fallback,
    )


class ToastAdapter:
    """Toast webhooks signed over the body and the message timestamp."""

    name = "toast"

    def __init__(
        self, *, currency: str = "USD", max_age: timedelta = RETRY_HORIZON + CLOCK_SKEW
    ) -> None:
        # Toast's orders carry no currency: it is the restaurant's, known only to us.
        if not CURRENCY.fullmatch(currency):
            raise ConfigurationError(f"the Toast currency must be an ISO 4217 code: {currency!r}")
        self.currency = currency
        self.max_age = max_age

    def decode_secret(self, secret: str) -> bytes:
        """Return the key: the subscription secret's text, as Toast hands it out."""
        return secret.strip().encode()

    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes,
        url: str,
        secrets: Sequence[bytes],
        now: datetime,
    ) -> None:
        """Accept a message whose signature covers body and timestamp, sent recently enough."""
        stamp = _message_timestamp(body)
        if stamp is None:
            raise BadSignature(
                "the message has no timestamp to check its signature with", field=SIGNATURE_HEADER
            )
        message = body + stamp.encode()
        check_base64_hmac(
            header(headers, SIGNATURE_HEADER), message, secrets, header=SIGNATURE_HEADER
        )
        try:
            sent_at = timestamp(stamp, field="timestamp")
        except MalformedWebhook:
            raise StaleTimestamp(
                "the message timestamp cannot be read", field="timestamp"
            ) from None
        check_fresh(sent_at, now, max_age=self.max_age)

    def parse(self, headers: Mapping[str, str], body: bytes) -> ParsedWebhook:
        """Return a purchase per paid check with a guest or a loyalty identifier."""
        message = json_object(body)
        event_id = text(message, "guid", field="guid")
        event_type = text(message, "eventType", field="eventType")
        sent_at = optional_timestamp(message, "timestamp", field="timestamp")
        if event_type != ORDER_EVENT:
            return ParsedWebhook.ignoring(event_id, event_type, sent_at)
        order = member(member(message, "details", field="details"), "order", field="details.order")
        if order.get("deleted") is True or order.get("voided") is True:
            return ParsedWebhook.ignoring(event_id, event_type, sent_at)
        checks = items_of(order, "checks", field="details.order.checks")
        purchases = [
            purchase
            for index, check in enumerate(checks)
            if (purchase := _purchase(check, index, self.currency, sent_at)) is not None
        ]
        return ParsedWebhook.carrying(event_id, event_type, sent_at, purchases)
