"""Every POS adapter in the registry, through one suite (PROTOCOLS.md section 4).

Each adapter gets: valid deliveries that verify and read as the expected normalized
items, a tampered body, a wrong secret, a second secret during rotation, stale and
future deliveries (where the vendor dates them), a duplicate delivery, an unknown
type (ignored) and malformed payloads (InvalidInput), plus property tests that no
input makes an adapter raise anything but a domain error.

Payloads are written from the vendors' field lists and signed here, by hand, with
throwaway keys, the way each vendor documents its signing. A new adapter is tested
by adding a `Vendor` below.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pos_adapters import ADAPTERS, ShopifyAdapter, StandardAdapter, ToastAdapter, adapter_named
from walletsvc.domain.errors import (
    BadSignature,
    ConfigurationError,
    DomainError,
    InvalidInput,
    MalformedWebhook,
    NotFound,
    StaleTimestamp,
    Unauthorized,
)
from walletsvc.intake.contract import (
    NormalizedPurchase,
    NormalizedScan,
    ParsedWebhook,
    PosAdapter,
)

T0 = datetime(2025, 3, 1, 10, 15, tzinfo=UTC)
KEY = b"throwaway-key-one-0123456789abcd"
NEW_KEY = b"throwaway-key-two-0123456789abcd"
OTHER_KEY = b"somebody-elses-key-0123456789abc"
SKEW = timedelta(minutes=5)
BARCODE = "W1.k1.PX7D2M4Q9R.JBSWY3DPEHPK3PXP"

Document = dict[str, Any]


def url_of(adapter: str) -> str:
    return f"https://wallet.example.test/webhooks/pos/{adapter}/till-7"


def b64_hmac(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def encoded(document: Document) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class Vendor:
    """How one vendor builds and signs deliveries, and what they must read as."""

    name: str
    signature_header: str
    window: timedelta | None  # how old a dated delivery may be; None: not dated
    signs_url: bool
    secret_text: Callable[[bytes], str]  # the key as the vendor's dashboard shows it
    document: Callable[[str, datetime], bytes]  # kind, vendor time -> body
    sign: Callable[[str, bytes, bytes, datetime, int], dict[str, str]]  # -> headers
    expected: Mapping[str, ParsedWebhook]  # kinds that read successfully
    malformed: tuple[str, ...]  # kinds that must raise InvalidInput

    def deliver(
        self, kind: str, key: bytes = KEY, when: datetime = T0, attempt: int = 1
    ) -> tuple[dict[str, str], bytes]:
        body = self.document(kind, when)
        return self.sign(kind, body, key, when, attempt), body


# Square ---------------------------------------------------------------------------

SQUARE_EVENT_ID = "5f0c2b9e-7d41-4a8e-9c3b-2e6f1a0d7c55"
SQUARE_PAYMENT_ID = "bP9mAsEMYPUGjjGNaNO5ZDVyLhSZY"
SQUARE_CUSTOMER = "JDKYHBWT1D4F8MFH63DBMEN8Y4"


def square_payment(**changes: Any) -> Document:
    payment: Document = {
        "id": SQUARE_PAYMENT_ID,
        "created_at": "2025-03-01T10:14:58.120Z",
        "updated_at": "2025-03-01T10:15:01.902Z",
        "amount_money": {"amount": 4250, "currency": "EUR"},
        "total_money": {"amount": 4250, "currency": "EUR"},
        "approved_money": {"amount": 4250, "currency": "EUR"},
        "status": "COMPLETED",
        "source_type": "CARD",
        "card_details": {
            "status": "CAPTURED",
            "card": {"card_brand": "VISA", "last_4": "1111", "exp_month": 11, "exp_year": 2027},
            "entry_method": "EMV",
        },
        "location_id": "L1TILL7ZQ3K9P",
        "order_id": "oR7dQ2kX9mLw3VbN8cTz5YpHs4GZY",
        "customer_id": SQUARE_CUSTOMER,
        "receipt_number": "bP9m",
        "version": 3,
    }
    payment.update(changes)
    return {key: value for key, value in payment.items() if value is not None}


def square_event(event_type: str, data: Document, event_id: str = SQUARE_EVENT_ID) -> Document:
    return {
        "merchant_id": "MLQ2W7X0TR8B4",
        "type": event_type,
        "event_id": event_id,
        "created_at": "2025-03-01T10:15:02.371Z",
        "data": data,
    }


def square_payment_event(event_type: str = "payment.updated", **changes: Any) -> Document:
    payment = square_payment(**changes)
    return square_event(
        event_type, {"type": "payment", "id": payment["id"], "object": {"payment": payment}}
    )


def square_document(kind: str, when: datetime) -> bytes:
    if kind == "not_json":
        return b"event_id=5f0c2b9e&type=payment.updated"
    documents: dict[str, Callable[[], Document]] = {
        "valid": square_payment_event,
        "yen": lambda: square_payment_event(
            "payment.created", amount_money={"amount": 1200, "currency": "JPY"}
        ),
        "approved": lambda: square_payment_event("payment.created", status="APPROVED"),
        "anonymous": lambda: square_payment_event(customer_id=None),
        "order_event": lambda: square_event(
            "order.updated",
            {
                "type": "order_updated",
                "id": "oR7dQ2kX9mLw3VbN8cTz5YpHs4GZY",
                "object": {
                    "order_updated": {
                        "order_id": "oR7dQ2kX9mLw3VbN8cTz5YpHs4GZY",
                        "location_id": "L1TILL7ZQ3K9P",
                        "state": "COMPLETED",
                        "version": 4,
                        "created_at": "2025-03-01T10:14:40.000Z",
                        "updated_at": "2025-03-01T10:15:01.000Z",
                    }
                },
            },
        ),
        "unknown": lambda: square_event(
            "inventory.count.updated",
            {
                "type": "inventory",
                "id": "9a1e",
                "object": {"inventory_counts": [{"quantity": "11", "state": "IN_STOCK"}]},
            },
        ),
        "no_event_id": lambda: {
            key: value for key, value in square_payment_event().items() if key != "event_id"
        },
        "amount_as_text": lambda: square_payment_event(
            amount_money={"amount": "4250", "currency": "EUR"}
        ),
        "payment_not_object": lambda: square_event(
            "payment.updated", {"type": "payment", "object": {"payment": SQUARE_PAYMENT_ID}}
        ),
        "negative_amount": lambda: square_payment_event(
            amount_money={"amount": -4250, "currency": "EUR"}
        ),
        "bad_currency": lambda: square_payment_event(
            amount_money={"amount": 4250, "currency": "euro"}
        ),
    }
    return encoded(documents[kind]())


def square_sign(kind: str, body: bytes, key: bytes, when: datetime, attempt: int) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "user-agent": "Square Connect v2",
        "x-square-hmacsha256-signature": b64_hmac(key, url_of("square").encode() + body),
        "square-initial-delivery-timestamp": "2025-03-01T10:15:02.412Z",
    }
    if attempt > 1:
        headers["square-retry-number"] = str(attempt - 1)
        headers["square-retry-reason"] = "http_timeout"
    return headers


SQUARE_PURCHASE = NormalizedPurchase(
    order_id=SQUARE_PAYMENT_ID,
    amount=Decimal("42.50"),
    currency="EUR",
    customer_id=SQUARE_CUSTOMER,
    occurred_at=at("2025-03-01T10:14:58.120+00:00"),
)
SQUARE_SENT = at("2025-03-01T10:15:02.371+00:00")

SQUARE = Vendor(
    name="square",
    signature_header="x-square-hmacsha256-signature",
    window=None,
    signs_url=True,
    secret_text=lambda key: key.decode(),
    document=square_document,
    sign=square_sign,
    expected={
        "valid": ParsedWebhook(SQUARE_EVENT_ID, "payment.updated", SQUARE_SENT, (SQUARE_PURCHASE,)),
        "yen": ParsedWebhook(
            SQUARE_EVENT_ID,
            "payment.created",
            SQUARE_SENT,
            (
                NormalizedPurchase(
                    order_id=SQUARE_PAYMENT_ID,
                    amount=Decimal(1200),
                    currency="JPY",
                    customer_id=SQUARE_CUSTOMER,
                    occurred_at=SQUARE_PURCHASE.occurred_at,
                ),
            ),
        ),
        "approved": ParsedWebhook.ignoring(SQUARE_EVENT_ID, "payment.created", SQUARE_SENT),
        "anonymous": ParsedWebhook.ignoring(SQUARE_EVENT_ID, "payment.updated", SQUARE_SENT),
        "order_event": ParsedWebhook.ignoring(SQUARE_EVENT_ID, "order.updated", SQUARE_SENT),
        "unknown": ParsedWebhook.ignoring(SQUARE_EVENT_ID, "inventory.count.updated", SQUARE_SENT),
    },
    malformed=(
        "no_event_id",
        "amount_as_text",
        "payment_not_object",
        "negative_amount",
        "bad_currency",
        "not_json",
    ),
)


# Shopify --------------------------------------------------------------------------

SHOPIFY_WEBHOOK_ID = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
SHOPIFY_ORDER_ID = 5724110864553
SHOPIFY_CUSTOMER_ID = 7281234509871
PARIS = timezone(timedelta(hours=1))


def shopify_order(**changes: Any) -> Document:
    order: Document = {
        "id": SHOPIFY_ORDER_ID,
        "admin_graphql_api_id": f"gid://shopify/Order/{SHOPIFY_ORDER_ID}",
        "name": "#1042",
        "order_number": 1042,
        "source_name": "pos",
        "financial_status": "paid",
        "fulfillment_status": "fulfilled",
        "currency": "EUR",
        "presentment_currency": "EUR",
        "subtotal_price": "35.71",
        "total_tax": "6.79",
        "total_price": "42.50",
        "taxes_included": True,
        "created_at": "2025-03-01T11:14:40+01:00",
        "processed_at": "2025-03-01T11:14:40+01:00",
        "location_id": 71234560041,
        "test": False,
        "customer": {"id": SHOPIFY_CUSTOMER_ID, "state": "enabled", "currency": "EUR"},
        "note_attributes": [
            {"name": "till", "value": "front-1"},
            {"name": "loyalty_code", "value": BARCODE},
        ],
        "line_items": [
            {
                "id": 14012345678901,
                "title": "Espresso beans 1kg",
                "sku": "ESP-1KG",
                "quantity": 1,
                "price": "42.50",
            }
        ],
    }
    order.update(changes)
    return order


SHOPIFY_TOPICS = {
    "valid": "orders/paid",
    "created_code_only": "orders/create",
    "web_order": "orders/create",
    "pending": "orders/create",
    "nobody": "orders/paid",
    "unknown": "products/update",
}


def shopify_document(kind: str, when: datetime) -> bytes:
    if kind == "not_json":
        return b"<order><id>5724110864553</id></order>"
    documents: dict[str, Callable[[], Document]] = {
        "valid": shopify_order,
        "created_code_only": lambda: shopify_order(customer=None),
        "web_order": lambda: shopify_order(source_name="web"),
        "pending": lambda: shopify_order(financial_status="pending"),
        "nobody": lambda: shopify_order(customer=None, note_attributes=[]),
        "unknown": lambda: {
            "id": 8123456789012,
            "title": "Espresso beans 1kg",
            "status": "active",
            "updated_at": "2025-03-01T11:14:40+01:00",
        },
        "no_webhook_id": shopify_order,
        "no_topic": shopify_order,
        "price_not_decimal": lambda: shopify_order(total_price="forty-two"),
        "attributes_not_list": lambda: shopify_order(note_attributes={"loyalty_code": BARCODE}),
        "order_without_id": lambda: shopify_order(id=None),
        "customer_id_object": lambda: shopify_order(customer={"id": {"value": 1}}),
    }
    return encoded(documents[kind]())


def shopify_sign(
    kind: str, body: bytes, key: bytes, when: datetime, attempt: int
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": SHOPIFY_TOPICS.get(kind, "orders/paid"),
        "X-Shopify-Hmac-Sha256": b64_hmac(key, body),
        "X-Shopify-Shop-Domain": "espresso-corner.myshopify.com",
        "X-Shopify-API-Version": "2025-01",
        "X-Shopify-Webhook-Id": SHOPIFY_WEBHOOK_ID,
        "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "X-Shopify-Triggered-At": when.isoformat().replace("+00:00", "Z"),
    }
    if kind == "no_webhook_id":
        del headers["X-Shopify-Webhook-Id"]
    if kind == "no_topic":
        del headers["X-Shopify-Topic"]
    return headers


SHOPIFY_PURCHASE = NormalizedPurchase(
    order_id=str(SHOPIFY_ORDER_ID),
    amount=Decimal("42.50"),
    currency="EUR",
    customer_id=str(SHOPIFY_CUSTOMER_ID),
    loyalty_code=BARCODE,
    occurred_at=datetime(2025, 3, 1, 11, 14, 40, tzinfo=PARIS),
)

SHOPIFY = Vendor(
    name="shopify",
    signature_header="X-Shopify-Hmac-Sha256",
    window=timedelta(hours=4) + SKEW,  # retries keep the trigger time for 4 hours
    signs_url=False,
    secret_text=lambda key: key.decode(),
    document=shopify_document,
    sign=shopify_sign,
    expected={
        "valid": ParsedWebhook(SHOPIFY_WEBHOOK_ID, "orders/paid", T0, (SHOPIFY_PURCHASE,)),
        "created_code_only": ParsedWebhook(
            SHOPIFY_WEBHOOK_ID,
            "orders/create",
            T0,
            (
                NormalizedPurchase(
                    order_id=str(SHOPIFY_ORDER_ID),
                    amount=Decimal("42.50"),
                    currency="EUR",
                    loyalty_code=BARCODE,
                    occurred_at=SHOPIFY_PURCHASE.occurred_at,
                ),
            ),
        ),
        "web_order": ParsedWebhook.ignoring(SHOPIFY_WEBHOOK_ID, "orders/create", T0),
        "pending": ParsedWebhook.ignoring(SHOPIFY_WEBHOOK_ID, "orders/create", T0),
        "nobody": ParsedWebhook.ignoring(SHOPIFY_WEBHOOK_ID, "orders/paid", T0),
        "unknown": ParsedWebhook.ignoring(SHOPIFY_WEBHOOK_ID, "products/update", T0),
    },
    malformed=(
        "no_webhook_id",
        "no_topic",
        "price_not_decimal",
        "attributes_not_list",
        "order_without_id",
        "customer_id_object",
        "not_json",
    ),
)


# Toast ----------------------------------------------------------------------------

TOAST_EVENT_GUID = "b3d6c1f0-8a2e-4c57-9f14-6e0a2d9b7c31"
TOAST_CHECK = "0f6e2a41-91c3-4b7d-a2e5-5d8c3b1f9e07"
TOAST_SECOND_CHECK = "6c2b8e13-7a4f-4d90-b1c6-3e5f9a0d2b84"
TOAST_GUEST = "e41f7c2a-3b9d-4e65-8a10-c7d2f5b9a3e6"


def toast_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + "000+0000"


def toast_check(guid: str = TOAST_CHECK, **changes: Any) -> Document:
    check: Document = {
        "guid": guid,
        "entityType": "Check",
        "displayNumber": "17",
        "amount": 38.64,
        "taxAmount": 3.86,
        "totalAmount": 42.5,
        "paymentStatus": "CLOSED",
        "openedDate": "2025-03-01T10:02:11.000+0000",
        "closedDate": "2025-03-01T10:14:55.000+0000",
        "deleted": False,
        "voided": False,
        "customer": {"guid": TOAST_GUEST, "entityType": "Customer"},
        "appliedLoyaltyInfo": {
            "guid": "8d3a5e7c-2f14-4b6a-9c0e-1a7b3d5f9e24",
            "entityType": "AppliedLoyaltyInfo",
            "loyaltyIdentifier": BARCODE,
            "vendor": "INTEGRATION",
        },
        "payments": [{"guid": "p-1", "type": "CREDIT", "amount": 42.5, "tipAmount": 4.0}],
    }
    check.update(changes)
    return check


def toast_message(when: datetime, checks: list[Document], **order_changes: Any) -> Document:
    order: Document = {
        "guid": "4a7d9c2e-6b1f-4e83-a5d0-9c2e7f4b1a68",
        "entityType": "Order",
        "createdDate": "2025-03-01T10:02:11.000+0000",
        "businessDate": 20250301,
        "voided": False,
        "deleted": False,
        "checks": checks,
    }
    order.update(order_changes)
    return {
        "timestamp": toast_time(when),
        "eventCategory": "orders",
        "eventType": "order_updated",
        "guid": TOAST_EVENT_GUID,
        "details": {"restaurantGuid": "7f3c9a1e-5d2b-4c86-b0e4-2a9d6f1c8b35", "order": order},
    }


def toast_document(kind: str, when: datetime) -> bytes:
    if kind == "not_json":
        return b"guid=b3d6c1f0&eventType=order_updated"
    paid = toast_check()
    documents: dict[str, Callable[[], Document]] = {
        "valid": lambda: toast_message(
            when, [paid, toast_check(TOAST_SECOND_CHECK, paymentStatus="OPEN")]
        ),
        "split_checks": lambda: toast_message(
            when,
            [
                paid,
                toast_check(
                    TOAST_SECOND_CHECK,
                    totalAmount=9.8,
                    paymentStatus="PAID",
                    customer=None,
                    closedDate="2025-03-01T10:14:58.000+0000",
                ),
                toast_check("9b1d", paymentStatus="PAID", customer=None, appliedLoyaltyInfo=None),
            ],
        ),
        "open_order": lambda: toast_message(when, [toast_check(paymentStatus="OPEN")]),
        "voided_order": lambda: toast_message(when, [paid], voided=True),
        "unknown": lambda: {
            "timestamp": toast_time(when),
            "eventCategory": "stock",
            "eventType": "low_quantity",
            "guid": TOAST_EVENT_GUID,
            "details": {"guid": "1c9e", "quantity": 2.0, "status": "QUANTITY"},
        },
        "no_guid": lambda: {
            key: value for key, value in toast_message(when, [paid]).items() if key != "guid"
        },
        "checks_not_list": lambda: toast_message(when, {"0": paid}),
        "amount_text": lambda: toast_message(when, [toast_check(totalAmount="lots")]),
        "check_not_object": lambda: toast_message(when, [TOAST_CHECK]),
        "order_missing": lambda: {**toast_message(when, [paid]), "details": {}},
    }
    return encoded(documents[kind]())


def toast_sign(kind: str, body: bytes, key: bytes, when: datetime, attempt: int) -> dict[str, str]:
    # Toast signs the body followed by the message's own timestamp field.
    try:
        stamp = json.loads(body)["timestamp"].encode()
    except (ValueError, KeyError, TypeError, AttributeError):
        stamp = b""
    return {
        "Content-Type": "application/json",
        "Toast-Signature": b64_hmac(key, body + stamp),
        "Toast-Event-Type": "order_updated",
        "Toast-Event-Category": "orders",
        "Toast-Restaurant-External-ID": "7f3c9a1e-5d2b-4c86-b0e4-2a9d6f1c8b35",
        "Toast-Attempt-Number": str(attempt),
    }


TOAST_PURCHASE = NormalizedPurchase(
    order_id=TOAST_CHECK,
    amount=Decimal("42.5"),
    currency="USD",
    customer_id=TOAST_GUEST,
    loyalty_code=BARCODE,
    occurred_at=at("2025-03-01T10:14:55+00:00"),
)

TOAST = Vendor(
    name="toast",
    signature_header="Toast-Signature",
    window=timedelta(minutes=15) + SKEW,  # resent after 5 and 10 more minutes
    signs_url=False,
    secret_text=lambda key: key.decode(),
    document=toast_document,
    sign=toast_sign,
    expected={
        "valid": ParsedWebhook(TOAST_EVENT_GUID, "order_updated", T0, (TOAST_PURCHASE,)),
        "split_checks": ParsedWebhook(
            TOAST_EVENT_GUID,
            "order_updated",
            T0,
            (
                TOAST_PURCHASE,
                NormalizedPurchase(
                    order_id=TOAST_SECOND_CHECK,
                    amount=Decimal("9.8"),
                    currency="USD",
                    loyalty_code=BARCODE,
                    occurred_at=at("2025-03-01T10:14:58+00:00"),
                ),
            ),
        ),
        "open_order": ParsedWebhook.ignoring(TOAST_EVENT_GUID, "order_updated", T0),
        "voided_order": ParsedWebhook.ignoring(TOAST_EVENT_GUID, "order_updated", T0),
        "unknown": ParsedWebhook.ignoring(TOAST_EVENT_GUID, "low_quantity", T0),
    },
    malformed=(
        "no_guid",
        "checks_not_list",
        "amount_text",
        "check_not_object",
        "order_missing",
        "not_json",
    ),
)


# Standard Webhooks ------------------------------------------------------------------

STANDARD_ID = "evt_01HQ3Z8K4T6W2B9N5C7D1F0G3H"
STANDARD_TIME = "2025-03-01T10:14:58Z"


def standard_purchase(**changes: Any) -> Document:
    data: Document = {
        "order_id": "till-7-000123",
        "amount": {"value": "12.50", "currency": "EUR"},
        "barcode": BARCODE,
    }
    data.update(changes)
    data = {key: value for key, value in data.items() if value is not None}
    return {"type": "purchase", "timestamp": STANDARD_TIME, "data": data}


def standard_document(kind: str, when: datetime) -> bytes:
    if kind == "not_json":
        return b"type=scan&barcode=W1"
    documents: dict[str, Callable[[], Document]] = {
        "valid": standard_purchase,
        "scan": lambda: {
            "type": "scan",
            "timestamp": STANDARD_TIME,
            "data": {"barcode": BARCODE},
        },
        "customer_only": lambda: standard_purchase(barcode=None, customer_id="pos-cust-881"),
        "unknown": lambda: {"type": "till.opened", "timestamp": STANDARD_TIME, "data": {}},
        "scan_without_barcode": lambda: {"type": "scan", "timestamp": STANDARD_TIME, "data": {}},
        "amount_as_number": lambda: standard_purchase(amount={"value": 12.5, "currency": "EUR"}),
        "nobody": lambda: standard_purchase(barcode=None),
        "bad_currency": lambda: standard_purchase(amount={"value": "12.50", "currency": "euro"}),
        "no_timestamp": lambda: {"type": "scan", "data": {"barcode": BARCODE}},
        "naive_timestamp": lambda: {
            "type": "scan",
            "timestamp": "2025-03-01T10:14:58",
            "data": {"barcode": BARCODE},
        },
        "body_is_list": lambda: [standard_purchase()],
    }
    return encoded(documents[kind]())


def standard_sign(
    kind: str, body: bytes, key: bytes, when: datetime, attempt: int
) -> dict[str, str]:
    timestamp = str(int(when.timestamp()))
    signed = f"{STANDARD_ID}.{timestamp}.".encode() + body
    return {
        "content-type": "application/json",
        "webhook-id": STANDARD_ID,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + b64_hmac(key, signed),
    }


STANDARD_SENT = at("2025-03-01T10:14:58+00:00")

STANDARD = Vendor(
    name="standard",
    signature_header="webhook-signature",
    window=SKEW,  # each attempt is re-stamped, so 5 minutes holds for retries too
    signs_url=False,
    secret_text=lambda key: "whsec_" + base64.b64encode(key).decode(),
    document=standard_document,
    sign=standard_sign,
    expected={
        "valid": ParsedWebhook(
            STANDARD_ID,
            "purchase",
            STANDARD_SENT,
            (
                NormalizedPurchase(
                    order_id="till-7-000123",
                    amount=Decimal("12.50"),
                    currency="EUR",
                    loyalty_code=BARCODE,
                    occurred_at=STANDARD_SENT,
                ),
            ),
        ),
        "scan": ParsedWebhook(
            STANDARD_ID, "scan", STANDARD_SENT, (NormalizedScan(BARCODE, STANDARD_SENT),)
        ),
        "customer_only": ParsedWebhook(
            STANDARD_ID,
            "purchase",
            STANDARD_SENT,
            (
                NormalizedPurchase(
                    order_id="till-7-000123",
                    amount=Decimal("12.50"),
                    currency="EUR",
                    customer_id="pos-cust-881",
                    occurred_at=STANDARD_SENT,
                ),
            ),
        ),
        "unknown": ParsedWebhook.ignoring(STANDARD_ID, "till.opened", STANDARD_SENT),
    },
    malformed=(
        "scan_without_barcode",
        "amount_as_number",
        "nobody",
        "bad_currency",
        "no_timestamp",
        "naive_timestamp",
        "body_is_list",
        "not_json",
    ),
)


VENDORS = {vendor.name: vendor for vendor in (SQUARE, SHOPIFY, TOAST, STANDARD)}


def vendor_of(adapter: PosAdapter) -> Vendor:
    vendor = VENDORS.get(adapter.name)
    if vendor is None:
        pytest.fail(f"add conformance fixtures (a Vendor) for the {adapter.name!r} adapter")
    return vendor


def cases(select: Callable[[Vendor], Any]) -> list[Any]:
    return [
        pytest.param(adapter, kind, id=f"{adapter.name}-{kind}")
        for adapter in ADAPTERS
        if adapter.name in VENDORS
        for kind in select(VENDORS[adapter.name])
    ]


each_adapter = pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda adapter: adapter.name)
dated_adapters = pytest.mark.parametrize(
    "adapter",
    [adapter for adapter in ADAPTERS if VENDORS.get(adapter.name, SQUARE).window is not None],
    ids=lambda adapter: adapter.name,
)
undated_adapters = pytest.mark.parametrize(
    "adapter",
    [adapter for adapter in ADAPTERS if VENDORS.get(adapter.name, SHOPIFY).window is None],
    ids=lambda adapter: adapter.name,
)


def verify(
    adapter: PosAdapter,
    headers: Mapping[str, str],
    body: bytes,
    keys: list[bytes] | None = None,
    now: datetime = T0 + timedelta(seconds=2),
    url: str | None = None,
) -> None:
    adapter.verify(headers, body, url or url_of(adapter.name), keys or [KEY], now)


def tamper(body: bytes) -> bytes:
    digit = re.search(rb"[0-9]", body)
    assert digit is not None
    changed = str((int(digit.group()) + 1) % 10).encode()
    return body[: digit.start()] + changed + body[digit.end() :]


# The registry -----------------------------------------------------------------------


def test_every_registered_adapter_has_fixtures_and_a_unique_slug() -> None:
    names = [adapter.name for adapter in ADAPTERS]
    assert len(set(names)) == len(names)
    assert set(names) == set(VENDORS), "each adapter needs a Vendor here, and only those"
    for name in names:
        assert re.fullmatch(r"[a-z][a-z0-9_]{1,31}", name), "a slug fits URLs and metrics"


def test_adapters_are_found_by_slug_and_unknown_slugs_are_not_found() -> None:
    assert adapter_named("square").name == "square"
    with pytest.raises(NotFound):
        adapter_named("clover-typo")


@each_adapter
def test_secret_as_the_vendor_shows_it_decodes_to_the_signing_key(adapter: PosAdapter) -> None:
    assert adapter.decode_secret(vendor_of(adapter).secret_text(KEY)) == KEY


# Valid deliveries -------------------------------------------------------------------


@pytest.mark.parametrize(("adapter", "kind"), cases(lambda vendor: vendor.expected))
def test_signed_delivery_verifies_and_reads_as_expected(adapter: PosAdapter, kind: str) -> None:
    vendor = vendor_of(adapter)
    headers, body = vendor.deliver(kind)
    verify(adapter, headers, body)
    assert adapter.parse(headers, body) == vendor.expected[kind]


@each_adapter
def test_valid_delivery_carries_items(adapter: PosAdapter) -> None:
    parsed = vendor_of(adapter).expected["valid"]
    assert parsed.items
    assert not parsed.ignored


@each_adapter
def test_unknown_type_is_verified_then_ignored(adapter: PosAdapter) -> None:
    headers, body = vendor_of(adapter).deliver("unknown")
    verify(adapter, headers, body)
    parsed = adapter.parse(headers, body)
    assert parsed.ignored
    assert parsed.items == ()


@each_adapter
def test_header_names_are_matched_without_regard_to_case(adapter: PosAdapter) -> None:
    headers, body = vendor_of(adapter).deliver("valid")
    lowered = {name.lower(): value for name, value in headers.items()}
    upper = {name.upper(): value for name, value in headers.items()}
    for variant in (lowered, upper):
        verify(adapter, variant, body)
        assert adapter.parse(variant, body) == vendor_of(adapter).expected["valid"]


# Signatures -------------------------------------------------------------------------


@each_adapter
def test_tampered_body_is_refused(adapter: PosAdapter) -> None:
    headers, body = vendor_of(adapter).deliver("valid")
    for changed in (tamper(body), body + b" ", body[:-1]):
        with pytest.raises(BadSignature) as refused:
            verify(adapter, headers, changed)
        assert refused.value.reason == "bad_signature"


@each_adapter
def test_wrong_secret_is_refused(adapter: PosAdapter) -> None:
    headers, body = vendor_of(adapter).deliver("valid")
    with pytest.raises(BadSignature):
        verify(adapter, headers, body, keys=[OTHER_KEY])


@each_adapter
def test_no_secret_verifies_nothing(adapter: PosAdapter) -> None:
    headers, body = vendor_of(adapter).deliver("valid")
    with pytest.raises(BadSignature):
        adapter.verify(headers, body, url_of(adapter.name), [], T0)


@each_adapter
def test_missing_or_garbled_signature_header_is_refused(adapter: PosAdapter) -> None:
    vendor = vendor_of(adapter)
    headers, body = vendor.deliver("valid")
    wanted = vendor.signature_header.lower()
    without = {name: value for name, value in headers.items() if name.lower() != wanted}
    with pytest.raises(BadSignature):
        verify(adapter, without, body)
    for garbled in ("", "not base64 at all!", "dmFsaWQgYmFzZTY0", "é" * 44):
        with pytest.raises(BadSignature):
            verify(adapter, {**without, vendor.signature_header: garbled}, body)


@each_adapter
def test_second_secret_is_accepted_during_rotation(adapter: PosAdapter) -> None:
    new_headers, new_body = vendor_of(adapter).deliver("valid", key=NEW_KEY)
    old_headers, old_body = vendor_of(adapter).deliver("valid", key=KEY)
    for keys in ([KEY, NEW_KEY], [NEW_KEY, KEY]):
        verify(adapter, new_headers, new_body, keys=keys)
        verify(adapter, old_headers, old_body, keys=keys)
    with pytest.raises(BadSignature):
        verify(adapter, new_headers, new_body, keys=[KEY])


@each_adapter
def test_url_is_signed_only_where_the_vendor_signs_it(adapter: PosAdapter) -> None:
    vendor = vendor_of(adapter)
    headers, body = vendor.deliver("valid")
    for other in (
        url_of(adapter.name).replace("https://", "http://"),
        url_of(adapter.name) + "/",
        url_of(adapter.name).replace("till-7", "till-8"),
    ):
        if vendor.signs_url:
            with pytest.raises(BadSignature):
                verify(adapter, headers, body, url=other)
        else:
            verify(adapter, headers, body, url=other)


# Freshness --------------------------------------------------------------------------


@dated_adapters
def test_delivery_as_old_as_the_window_is_accepted(adapter: PosAdapter) -> None:
    window = vendor_of(adapter).window
    assert window is not None
    headers, body = vendor_of(adapter).deliver("valid")
    verify(adapter, headers, body, now=T0 + window)
    verify(adapter, headers, body, now=T0 - SKEW)


@dated_adapters
def test_stale_delivery_is_refused(adapter: PosAdapter) -> None:
    window = vendor_of(adapter).window
    assert window is not None
    headers, body = vendor_of(adapter).deliver("valid")
    with pytest.raises(StaleTimestamp) as refused:
        verify(adapter, headers, body, now=T0 + window + timedelta(seconds=1))
    assert refused.value.reason == "stale_timestamp"
    assert isinstance(refused.value, Unauthorized)


@dated_adapters
def test_delivery_dated_in_the_future_is_refused(adapter: PosAdapter) -> None:
    headers, body = vendor_of(adapter).deliver("valid")
    with pytest.raises(StaleTimestamp):
        verify(adapter, headers, body, now=T0 - SKEW - timedelta(seconds=1))


@undated_adapters
def test_undated_vendor_is_not_judged_by_age(adapter: PosAdapter) -> None:
    headers, body = vendor_of(adapter).deliver("valid")
    verify(adapter, headers, body, now=T0 + timedelta(days=3))


# Duplicates -------------------------------------------------------------------------


@each_adapter
def test_redelivery_of_one_event_gives_the_same_dedupe_key(adapter: PosAdapter) -> None:
    vendor = vendor_of(adapter)
    first_headers, first_body = vendor.deliver("valid", attempt=1)
    again_headers, again_body = vendor.deliver("valid", attempt=2)
    verify(adapter, first_headers, first_body)
    verify(adapter, again_headers, again_body)
    first = adapter.parse(first_headers, first_body)
    again = adapter.parse(again_headers, again_body)
    assert first.event_id == again.event_id
    assert first.items == again.items
    # Parsing is pure: the same bytes read the same way every time.
    assert adapter.parse(first_headers, first_body) == first


# Malformed payloads -----------------------------------------------------------------


@pytest.mark.parametrize(("adapter", "kind"), cases(lambda vendor: vendor.malformed))
def test_malformed_payload_is_invalid_input(adapter: PosAdapter, kind: str) -> None:
    headers, body = vendor_of(adapter).deliver(kind)
    with pytest.raises(InvalidInput) as refused:
        adapter.parse(headers, body)
    assert isinstance(refused.value, MalformedWebhook)
    assert refused.value.reason == "malformed_webhook"


@each_adapter
def test_every_adapter_has_a_non_json_malformed_fixture(adapter: PosAdapter) -> None:
    assert "not_json" in vendor_of(adapter).malformed


# Nothing but domain errors, whatever arrives ----------------------------------------

HEADER_NAMES = sorted(
    {vendor.signature_header for vendor in VENDORS.values()}
    | {
        "webhook-id",
        "webhook-timestamp",
        "X-Shopify-Topic",
        "X-Shopify-Webhook-Id",
        "X-Shopify-Triggered-At",
        "Toast-Attempt-Number",
    }
)
PROPERTY_SETTINGS = settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found += paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += paths(value, (*prefix, index))
    return found


def replaced(document: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    changed = copy.deepcopy(document)
    parent = changed
    for step in path[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return changed


def outcome(action: Callable[[], object]) -> object:
    try:
        return action()
    except DomainError as error:
        return error


@each_adapter
@PROPERTY_SETTINGS
@given(
    body=st.binary(max_size=300),
    headers=st.dictionaries(
        st.sampled_from(HEADER_NAMES) | st.text(max_size=20), st.text(max_size=80), max_size=6
    ),
)
def test_random_bytes_and_headers_raise_only_domain_errors(
    adapter: PosAdapter, body: bytes, headers: dict[str, str]
) -> None:
    verified = outcome(lambda: adapter.verify(headers, body, url_of(adapter.name), [KEY], T0))
    assert isinstance(verified, BadSignature | StaleTimestamp)
    parsed = outcome(lambda: adapter.parse(headers, body))
    assert isinstance(parsed, ParsedWebhook | MalformedWebhook)


@each_adapter
@PROPERTY_SETTINGS
@given(data=st.data(), value=json_values, delete=st.booleans())
def test_signed_but_mangled_payloads_raise_only_domain_errors(
    adapter: PosAdapter, data: st.DataObject, value: Any, delete: bool
) -> None:
    vendor = vendor_of(adapter)
    kind = data.draw(st.sampled_from(sorted(vendor.expected)))
    document = json.loads(vendor.document(kind, T0))
    path = data.draw(st.sampled_from(paths(document)))
    body = json.dumps(replaced(document, path, value, delete)).encode()
    headers = vendor.sign(kind, body, KEY, T0, 1)
    verified = outcome(lambda: verify(adapter, headers, body))
    assert verified is None or isinstance(verified, Unauthorized)
    parsed = outcome(lambda: adapter.parse(headers, body))
    assert isinstance(parsed, ParsedWebhook | MalformedWebhook)


# Vendor specifics -------------------------------------------------------------------


def test_toast_purchases_are_in_the_currency_the_adapter_is_built_with() -> None:
    adapter = ToastAdapter(currency="EUR")
    headers, body = TOAST.deliver("valid")
    adapter.verify(headers, body, url_of("toast"), [KEY], T0)
    (purchase,) = adapter.parse(headers, body).items
    assert isinstance(purchase, NormalizedPurchase)
    assert (purchase.amount, purchase.currency) == (Decimal("42.5"), "EUR")
    with pytest.raises(ConfigurationError):
        ToastAdapter(currency="euro")


def test_shopify_delivery_without_a_trigger_time_is_not_judged_by_age() -> None:
    headers, body = SHOPIFY.deliver("valid")
    del headers["X-Shopify-Triggered-At"]
    verify(adapter_named("shopify"), headers, body, now=T0 + timedelta(days=3))
    assert adapter_named("shopify").parse(headers, body).occurred_at is None


def test_shopify_unreadable_trigger_time_is_refused() -> None:
    headers, body = SHOPIFY.deliver("valid")
    headers["X-Shopify-Triggered-At"] = "yesterday"
    with pytest.raises(StaleTimestamp):
        verify(adapter_named("shopify"), headers, body)


def test_freshness_windows_are_configurable() -> None:
    headers, body = SHOPIFY.deliver("valid")
    strict = ShopifyAdapter(max_age=timedelta(minutes=5))
    with pytest.raises(StaleTimestamp):
        strict.verify(headers, body, url_of("shopify"), [KEY], T0 + timedelta(minutes=6))
    headers, body = STANDARD.deliver("valid")
    lenient = StandardAdapter(tolerance=timedelta(minutes=10))
    lenient.verify(headers, body, url_of("standard"), [KEY], T0 + timedelta(minutes=9))


def test_toast_message_without_a_readable_timestamp_cannot_be_verified() -> None:
    document = json.loads(TOAST.document("valid", T0))
    del document["timestamp"]
    body = encoded(document)
    headers = toast_sign("valid", body, KEY, T0, 1)
    with pytest.raises(BadSignature):
        verify(adapter_named("toast"), headers, body)
