"""Standard Webhooks carrying walletsvc's own normalized JSON: for tills we integrate.

Verification is Standard Webhooks (walletsvc/intake/standard_webhooks.py) with the
terminal's `whsec_` secret; `webhook-id` is the event id, the same on every retry,
while `webhook-timestamp` is per attempt, so the 5-minute window holds for retries too.

The body follows the spec's recommended shape, `{type, timestamp, data}`:

    {"type": "scan", "timestamp": "2025-03-01T10:15:00Z",
     "data": {"barcode": "W1.k1.<serial>.<mac>"}}
    {"type": "purchase", "timestamp": "2025-03-01T10:16:30Z",
     "data": {"order_id": "till-7-000123", "amount": {"value": "12.50", "currency": "EUR"},
              "barcode": "W1.k1.<serial>.<mac>", "customer_id": "optional POS customer id"}}

A purchase names the customer by a scanned `barcode`, a `customer_id`, or both.
Other types are answered 2xx and dropped, so tills may send more than we read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from walletsvc.domain.errors import MalformedWebhook
from walletsvc.intake import standard_webhooks
from walletsvc.intake.contract import NormalizedPurchase, NormalizedScan, ParsedWebhook
from walletsvc.intake.payload import (
    currency_code,
    decimal_amount,
    header,
    json_object,
    member,
    optional_text,
    text,
    timestamp,
)


class StandardAdapter:
    """Our normalized scans and purchases, signed Standard Webhooks style."""

    name = "standard"

    def __init__(self, *, tolerance: timedelta = standard_webhooks.TOLERANCE) -> None:
        self.tolerance = tolerance

    def decode_secret(self, secret: str) -> bytes:
        """Return the key of the terminal's `whsec_` secret."""
        return standard_webhooks.decode_secret(secret)

    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes,
        url: str,
        secrets: Sequence[bytes],
        now: datetime,
    ) -> None:
        """Accept a delivery signed with any key and timestamped within the tolerance."""
        standard_webhooks.verify(headers, body, secrets, now, self.tolerance)

    def parse(self, headers: Mapping[str, str], body: bytes) -> ParsedWebhook:
        """Return the one scan or purchase a delivery carries."""
        event_id = header(headers, "webhook-id")
        if not event_id or not event_id.strip():
            raise MalformedWebhook("webhook-id is missing", field="webhook-id")
        event = json_object(body)
        event_type = text(event, "type", field="type")
        occurred_at = timestamp(event.get("timestamp"), field="timestamp")
        if event_type not in ("scan", "purchase"):
            return ParsedWebhook.ignoring(event_id.strip(), event_type, occurred_at)
        data = member(event, "data", field="data")
        item: NormalizedScan | NormalizedPurchase
        if event_type == "scan":
            item = NormalizedScan(text(data, "barcode", field="data.barcode"), occurred_at)
        else:
            amount = member(data, "amount", field="data.amount")
            item = NormalizedPurchase(
                order_id=text(data, "order_id", field="data.order_id"),
                # A string, as in the scan API: a float would not say 12.50 exactly.
                amount=decimal_amount(
                    text(amount, "value", field="data.amount.value"), field="data.amount.value"
                ),
                currency=currency_code(amount.get("currency"), field="data.amount.currency"),
                customer_id=optional_text(data, "customer_id", field="data.customer_id"),
                loyalty_code=optional_text(data, "barcode", field="data.barcode"),
                occurred_at=occurred_at,
            )
        return ParsedWebhook.carrying(event_id.strip(), event_type, occurred_at, [item])
