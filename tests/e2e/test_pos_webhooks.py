"""POS vendors' webhooks: verified, stored, answered at once, then counted exactly once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from tests.conformance.test_pos_adapters import shopify_order
from tests.e2e.test_scans import _barcode
from walletsvc.services.pos_webhooks import process_pending_webhooks

SHOPIFY_KEY = "shpss_throwaway_signing_key_0123456789"
CUSTOMER = 7281234509871


async def _shopify_terminal(client: Any, admin: dict[str, str]) -> None:
    await client.post(
        "/api/v1/stores",
        json={
            "id": "hamburg",
            "program": "demo",
            "name": "Hamburg",
            "latitude": 53.55,
            "longitude": 9.99,
            "radius_m": 100,
        },
        headers=admin,
    )
    response = await client.post(
        "/api/v1/stores/hamburg/terminals",
        json={"id": "shop-1", "adapter": "shopify", "secret": SHOPIFY_KEY},
        headers=admin,
    )
    assert response.status == 201, await response.text()
    assert (await response.json())["secret"] is None  # the vendor's key is not echoed


async def _deliver(
    client: Any,
    order: dict[str, Any],
    webhook_id: str,
    topic: str = "orders/paid",
    key: str = SHOPIFY_KEY,
) -> Any:
    body = json.dumps(order).encode()
    signature = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
    return await client.post(
        "/webhooks/pos/shopify/shop-1",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": signature,
            "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
        },
    )


async def _settle(container: Any) -> None:
    while await process_pending_webhooks(container.ctx):
        pass


async def _balance(container: Any) -> int:
    async with container.engine.connect() as connection:
        return int(
            (await connection.execute(text("SELECT max(points_balance) FROM customers"))).scalar()
            or 0
        )


def _order(order_id: int, barcode: str | None, total: str = "42.50") -> dict[str, Any]:
    attributes = [{"name": "loyalty_code", "value": barcode}] if barcode else []
    return shopify_order(id=order_id, total_price=total, note_attributes=attributes)


async def test_a_pos_sale_with_a_scanned_pass_earns_once_and_links_the_pos_customer(
    client, admin, container
):
    await _shopify_terminal(client, admin)
    barcode = await _barcode(client, admin)
    first = await _deliver(client, _order(1001, barcode), "wh-1")
    assert first.status == 202 and (await first.json())["status"] == "accepted"
    retry = await _deliver(client, _order(1001, barcode), "wh-1")
    assert (await retry.json())["status"] == "duplicate"
    await _settle(container)
    assert await _balance(container) == 42
    # The same sale again under another delivery (created, then paid) counts once.
    await _deliver(client, _order(1001, barcode), "wh-2", topic="orders/create")
    await _settle(container)
    assert await _balance(container) == 42
    # Seen together once, the POS customer id alone now finds the customer.
    await _deliver(client, _order(1002, None, total="10.00"), "wh-3")
    await _settle(container)
    assert await _balance(container) == 52


async def test_a_sale_nobody_can_be_found_for_earns_nothing_and_is_not_retried(
    client, admin, container
):
    await _shopify_terminal(client, admin)
    await _deliver(client, _order(2001, None), "wh-9")
    await _settle(container)
    async with container.engine.connect() as connection:
        response = (
            await connection.execute(text("SELECT response FROM inbox WHERE external_id = 'wh-9'"))
        ).scalar()
    response = json.loads(response) if isinstance(response, str) else response
    assert response["items"][0]["outcome"] == "unknown_customer"
    assert await process_pending_webhooks(container.ctx) == 0


async def test_forged_unknown_and_mismatched_deliveries_are_refused(client, admin):
    await _shopify_terminal(client, admin)
    forged = await _deliver(client, _order(3001, None), "wh-4", key="not-the-key-at-all")
    assert forged.status == 401
    assert (await forged.json())["reason"] == "bad_signature"
    unknown_terminal = await client.post("/webhooks/pos/shopify/nobody", data=b"{}")
    assert unknown_terminal.status == 401
    wrong_adapter = await client.post("/webhooks/pos/square/shop-1", data=b"{}")
    assert wrong_adapter.status == 401
    unknown_adapter = await client.post("/webhooks/pos/cashbox/shop-1", data=b"{}")
    assert unknown_adapter.status == 404


async def test_topics_walletsvc_does_not_act_on_are_acknowledged_and_dropped(
    client, admin, container
):
    await _shopify_terminal(client, admin)
    response = await _deliver(client, {"id": 1}, "wh-5", topic="products/update")
    assert response.status == 200 and (await response.json())["status"] == "ignored"
    async with container.engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM inbox"))).scalar() == 0


async def test_vendor_terminals_need_the_vendors_key_and_ours_refuse_one(client, admin):
    await _shopify_terminal(client, admin)
    missing = await client.post(
        "/api/v1/stores/hamburg/terminals", json={"id": "shop-2", "adapter": "toast"}, headers=admin
    )
    assert missing.status == 422 and (await missing.json())["field"] == "secret"
    refused = await client.post(
        "/api/v1/stores/hamburg/terminals",
        json={"id": "till-9", "adapter": "walletsvc", "secret": "my-own-secret"},
        headers=admin,
    )
    assert refused.status == 422
