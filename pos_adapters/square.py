"""Square: completed payments of a known Square customer.

Verification (https://developer.squareup.com/docs/webhooks/step3validate):
`x-square-hmacsha256-signature` is base64 HMAC-SHA256 keyed with the subscription's
signature key over the notification URL followed by the raw body, no separator. The
URL must be byte-exact as configured in Square, so the caller passes the URL it
published (`{PUBLIC_URL}/webhooks/pos/square/{terminal_id}`), never the one the
request reached us on behind a proxy. Square signs no delivery time and retries for
up to 72 hours under the same `event_id`: the inbox's dedupe on it is the replay guard.

Payload (https://developer.squareup.com/reference/square/webhooks/payment.updated):
`{merchant_id, type, event_id, created_at, data: {type: "payment", id, object:
{payment}}}`; a Payment has `id`, `status` (APPROVED, PENDING, COMPLETED, CANCELED,
FAILED), `amount_money: {amount, currency}` in the currency's smallest unit and
excluding tips, `customer_id`, `order_id`, `created_at`. `order.created` and
`order.updated` carry only the order's id, state and version (no amount, no
customer), so they are ignored: the payment events of the same sale say it all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from walletsvc.intake.contract import NormalizedPurchase, ParsedWebhook
from walletsvc.intake.payload import (
    currency_code,
    from_minor_units,
    header,
    json_object,
    member,
    optional_text,
    optional_timestamp,
    text,
)
from walletsvc.intake.signature import check_base64_hmac

SIGNATURE_HEADER = "x-square-hmacsha256-signature"
PAYMENT_EVENTS = frozenset({"payment.created", "payment.updated"})


class SquareAdapter:
    """Square webhooks signed over the notification URL and the body."""

    name = "square"

    def decode_secret(self, secret: str) -> bytes:
        """Return the key: the signature key's text, as Square shows it."""
        return secret.strip().encode()

    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes,
        url: str,
        secrets: Sequence[bytes],
        now: datetime,
    ) -> None:
        """Accept a delivery whose signature covers this URL and body."""
        message = url.encode() + body
        check_base64_hmac(
            header(headers, SIGNATURE_HEADER), message, secrets, header=SIGNATURE_HEADER
        )

    def parse(self, headers: Mapping[str, str], body: bytes) -> ParsedWebhook:
        """Return a purchase for a completed payment of a known customer; drop the rest."""
        event = json_object(body)
        event_id = text(event, "event_id", field="event_id")
        event_type = text(event, "type", field="type")
        created_at = optional_timestamp(event, "created_at", field="created_at")
        if event_type not in PAYMENT_EVENTS:
            return ParsedWebhook.ignoring(event_id, event_type, created_at)
        data = member(event, "data", field="data")
        payment = member(
            member(data, "object", field="data.object"), "payment", field="data.object.payment"
        )
        payment_id = text(payment, "id", field="payment.id")
        status = text(payment, "status", field="payment.status")
        customer_id = optional_text(payment, "customer_id", field="payment.customer_id")
        if status != "COMPLETED" or customer_id is None:
            return ParsedWebhook.ignoring(event_id, event_type, created_at)
        money = member(payment, "amount_money", field="payment.amount_money")
        currency = currency_code(money.get("currency"), field="payment.amount_money.currency")
        purchase = NormalizedPurchase(
            # payment.created and payment.updated report the same payment, and one
            # order may be paid by several payments: the payment is the sale.
            order_id=payment_id,
            amount=from_minor_units(
                money.get("amount"), currency, field="payment.amount_money.amount"
            ),
            currency=currency,
            customer_id=customer_id,
            occurred_at=optional_timestamp(payment, "created_at", field="payment.created_at"),
        )
        return ParsedWebhook.carrying(event_id, event_type, created_at, [purchase])
