"""Shopify: paid Shopify POS orders of a known customer or with a scanned loyalty code.

Verification (https://shopify.dev/docs/apps/build/webhooks/verify-deliveries):
`X-Shopify-Hmac-Sha256` is base64 HMAC-SHA256 of the raw body keyed with the app's
client secret (or, for a webhook made in the store admin, the signing key shown
there). The same page names `X-Shopify-Webhook-Id` as the id to ignore duplicate
deliveries by; it is the event id here.

Freshness: `X-Shopify-Triggered-At` is when the event fired, and a retry keeps it:
Shopify retries 8 times over 4 hours with the original payload and says to judge
staleness by this header (developer changelog, "Updates to webhook retry mechanism",
2024-09-10). So a delivery may be 4 hours old and still genuine; the header is not
signed either, so it bounds how long the inbox must remember ids rather than
proving anything.

Payload: the Order resource. `source_name` is "pos" for Shopify POS sales;
`financial_status` is "paid" once paid (orders/create of a till sale usually is,
orders/paid always is: both report the same order id, which the ledger dedupes);
`total_price` is a decimal string in `currency`; `customer.id` is a number;
`note_attributes` is `[{name, value}]`, where the POS puts the scanned code under
`loyalty_code` (docs/pos-webhooks.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from walletsvc.domain.errors import MalformedWebhook, StaleTimestamp
from walletsvc.intake.contract import NormalizedPurchase, ParsedWebhook
from walletsvc.intake.payload import (
    currency_code,
    decimal_amount,
    header,
    identifier,
    items_of,
    json_object,
    optional_member,
    optional_text,
    optional_timestamp,
    timestamp,
)
from walletsvc.intake.signature import CLOCK_SKEW, check_base64_hmac, check_fresh

SIGNATURE_HEADER = "X-Shopify-Hmac-Sha256"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
TOPIC_HEADER = "X-Shopify-Topic"
TRIGGERED_AT_HEADER = "X-Shopify-Triggered-At"
ORDER_TOPICS = frozenset({"orders/create", "orders/paid"})
LOYALTY_ATTRIBUTE = "loyalty_code"
RETRY_HORIZON = timedelta(hours=4)


def _triggered_at(headers: Mapping[str, str]) -> datetime | None:
    value = header(headers, TRIGGERED_AT_HEADER)
    return None if value is None else timestamp(value, field=TRIGGERED_AT_HEADER)


def _loyalty_code(attributes: list[Any]) -> str | None:
    for attribute in attributes:
        if not isinstance(attribute, dict):
            raise MalformedWebhook("note_attributes holds objects", field="note_attributes")
        name = optional_text(attribute, "name", field="note_attributes.name")
        if name is not None and name.strip().lower() == LOYALTY_ATTRIBUTE:
            value = optional_text(attribute, "value", field="note_attributes.value")
            return None if value is None else value.strip()
    return None


class ShopifyAdapter:
    """Shopify webhooks signed over the body, deduped by webhook id."""

    name = "shopify"

    def __init__(self, *, max_age: timedelta = RETRY_HORIZON + CLOCK_SKEW) -> None:
        self.max_age = max_age

    def decode_secret(self, secret: str) -> bytes:
        """Return the key: the client secret's text, as Shopify shows it."""
        return secret.strip().encode()

    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes,
        url: str,
        secrets: Sequence[bytes],
        now: datetime,
    ) -> None:
        """Accept a delivery whose body signature verifies and that fired recently enough."""
        check_base64_hmac(header(headers, SIGNATURE_HEADER), body, secrets, header=SIGNATURE_HEADER)
        try:
            fired_at = _triggered_at(headers)
        except MalformedWebhook:
            raise StaleTimestamp(
                f"{TRIGGERED_AT_HEADER} cannot be read", field=TRIGGERED_AT_HEADER
            ) from None
        if fired_at is not None:
            check_fresh(fired_at, now, max_age=self.max_age)

    def parse(self, headers: Mapping[str, str], body: bytes) -> ParsedWebhook:
        """Return a purchase for a paid POS order with a customer or a loyalty code."""
        event_id = header(headers, WEBHOOK_ID_HEADER)
        topic = header(headers, TOPIC_HEADER)
        if not event_id or not event_id.strip():
            raise MalformedWebhook(f"{WEBHOOK_ID_HEADER} is missing", field=WEBHOOK_ID_HEADER)
        if not topic or not topic.strip():
            raise MalformedWebhook(f"{TOPIC_HEADER} is missing", field=TOPIC_HEADER)
        event_id, topic = event_id.strip(), topic.strip()
        fired_at = _triggered_at(headers)
        if topic not in ORDER_TOPICS:
            return ParsedWebhook.ignoring(event_id, topic, fired_at)
        order = json_object(body)
        order_id = identifier(order, "id", field="id")
        if order_id is None:
            raise MalformedWebhook("the order has no id", field="id")
        if optional_text(order, "source_name", field="source_name") != "pos":
            return ParsedWebhook.ignoring(event_id, topic, fired_at)
        if optional_text(order, "financial_status", field="financial_status") != "paid":
            return ParsedWebhook.ignoring(event_id, topic, fired_at)
        customer = optional_member(order, "customer", field="customer")
        customer_id = None if customer is None else identifier(customer, "id", field="customer.id")
        code = _loyalty_code(items_of(order, "note_attributes", field="note_attributes"))
        if customer_id is None and code is None:
            return ParsedWebhook.ignoring(event_id, topic, fired_at)
        occurred_at = optional_timestamp(order, "processed_at", field="processed_at")
        purchase = NormalizedPurchase(
            order_id=order_id,
            amount=decimal_amount(order.get("total_price"), field="total_price"),
            currency=currency_code(order.get("currency"), field="currency"),
            customer_id=customer_id,
            loyalty_code=code,
            occurred_at=occurred_at or optional_timestamp(order, "created_at", field="created_at"),
        )
        return ParsedWebhook.carrying(event_id, topic, fired_at, [purchase])
