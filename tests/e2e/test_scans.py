"""POST /api/v1/scans: what reaches the profile and the ledger from a till, exactly once."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from tests.conformance.test_apple_web_service import Wallet
from tests.helpers import issue_loyalty
from walletsvc.domain.barcode import encode_barcode
from walletsvc.intake.standard_webhooks import decode_secret, signature_headers


class Till:
    """A POS terminal speaking the signed scan API."""

    def __init__(self, client: Any, terminal_id: str, secret: str) -> None:
        self.client = client
        self.terminal_id = terminal_id
        self.key = decode_secret(secret)

    async def scan(
        self,
        barcode: str,
        action: str = "identify",
        *,
        scan_id: str | None = None,
        amount: str | None = None,
        sent_at: datetime | None = None,
        key: bytes | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, dict[str, Any]]:
        payload: dict[str, Any] = {
            "scan_id": scan_id or str(uuid.uuid4()),
            "barcode": barcode,
            "action": action,
            "occurred_at": "2026-11-22T10:00:00+01:00",
        }
        if amount is not None:
            payload["amount"] = {"value": amount, "currency": "EUR"}
        body = raw if raw is not None else json.dumps(payload).encode()
        headers = signature_headers(
            [key or self.key], f"msg_{uuid.uuid4().hex}", sent_at or datetime.now(UTC), body
        )
        headers["X-Terminal-Id"] = self.terminal_id
        headers["Content-Type"] = "application/json"
        response = await self.client.post("/api/v1/scans", data=body, headers=headers)
        return response.status, await response.json()


async def _till(client: Any, admin: dict[str, str], terminal_id: str = "till-1") -> Till:
    store = await client.post(
        "/api/v1/stores",
        json={
            "id": "berlin",
            "program": "demo",
            "name": "Berlin",
            "latitude": 52.52,
            "longitude": 13.405,
            "radius_m": 100,
        },
        headers=admin,
    )
    assert store.status in (201, 409), await store.text()
    response = await client.post(
        "/api/v1/stores/berlin/terminals",
        json={"id": terminal_id, "adapter": "walletsvc"},
        headers=admin,
    )
    assert response.status == 201, await response.text()
    terminal = await response.json()
    return Till(client, terminal_id, terminal["secret"])


async def _barcode(client: Any, admin: dict[str, str], external_id: str = "crm-1") -> str:
    issued = await issue_loyalty(client, admin, external_id)
    document = await Wallet(client, admin).pass_json(issued)
    barcode: str = document["barcodes"][0]["message"]
    return barcode


async def _count(container: Any, sql: str) -> int:
    async with container.engine.connect() as connection:
        return int((await connection.execute(text(sql))).scalar() or 0)


async def test_a_purchase_earns_points_and_shows_on_the_card(client, admin, container):
    till = await _till(client, admin)
    barcode = await _barcode(client, admin)
    status, body = await till.scan(barcode, "purchase", amount="12.50")
    assert status == 200, body
    assert (body["points_earned"], body["balance"], body["tier"]) == (12, 12, "Bronze")
    status, body = await till.scan(barcode, "purchase", amount="499.99")
    assert (body["balance"], body["tier"]) == (511, "Silver")
    async with container.engine.connect() as connection:
        rows = await connection.execute(text("SELECT type FROM outbox ORDER BY seq"))
        types = [row[0] for row in rows]
    for expected in ("pass_scanned", "purchase_recorded", "points_earned", "tier_changed"):
        assert any(expected in t for t in types), expected
    passes = await (
        await client.get(f"/api/v1/passes/{barcode.split('.')[2]}", headers=admin)
    ).json()
    assert passes["version"] == 3  # issued, then each purchase changed what the card shows


async def test_the_same_scan_twice_earns_once_and_answers_the_same(client, admin, container):
    till = await _till(client, admin)
    barcode = await _barcode(client, admin)
    first = await till.scan(barcode, "purchase", scan_id="scan-1", amount="20.00")
    again = await till.scan(barcode, "purchase", scan_id="scan-1", amount="20.00")
    assert first == again
    assert first[1]["balance"] == 20
    assert await _count(container, "SELECT count(*) FROM ledger_entries") == 1


async def test_twenty_copies_at_once_count_once(client, admin, container):
    till = await _till(client, admin)
    barcode = await _barcode(client, admin)
    answers = await asyncio.gather(
        *(till.scan(barcode, "purchase", scan_id="burst", amount="7.00") for _ in range(20))
    )
    assert {status for status, _ in answers} == {200}
    assert len({json.dumps(body, sort_keys=True) for _, body in answers}) == 1
    assert await _count(container, "SELECT count(*) FROM ledger_entries") == 1
    assert await _count(container, "SELECT sum(points_balance) FROM customers") == 7


async def test_a_reused_scan_id_with_another_body_is_refused(client, admin):
    till = await _till(client, admin)
    barcode = await _barcode(client, admin)
    await till.scan(barcode, "purchase", scan_id="dup", amount="5.00")
    status, problem = await till.scan(barcode, "purchase", scan_id="dup", amount="50.00")
    assert status == 409 and problem["reason"] == "scan_id_reused"


async def test_bad_signatures_stale_timestamps_and_unknown_terminals_get_401(client, admin):
    till = await _till(client, admin)
    barcode = await _barcode(client, admin)
    status, problem = await till.scan(barcode, key=b"wrong-key-wrong-key-wrong-key-00")
    assert status == 401 and problem["reason"] == "bad_signature"
    status, problem = await till.scan(barcode, sent_at=datetime.now(UTC) - timedelta(minutes=6))
    assert status == 401 and problem["reason"] == "stale_timestamp"
    stranger = Till(client, "no-such-till", "whsec_" + "A" * 43 + "=")
    status, problem = await stranger.scan(barcode)
    assert status == 401


async def test_forged_malformed_and_unknown_barcodes(client, admin, container):
    till = await _till(client, admin)
    barcode = await _barcode(client, admin)
    forged = barcode[:-4] + ("AAAA" if not barcode.endswith("AAAA") else "BBBB")
    assert (await till.scan(forged))[0] == 422
    assert (await till.scan("12345678"))[0] == 422
    unknown = encode_barcode(container.ctx.barcode_keys, "0" * 26)
    status, problem = await till.scan(unknown)
    assert status == 404 and problem["reason"] == "unknown_barcode"


async def test_a_coupon_is_redeemed_once_under_concurrent_redeems(client, admin, container):
    till = await _till(client, admin)
    wallet = Wallet(client, admin)
    coupon = await wallet.pass_json(await wallet.coupon("coupon-holder"))
    barcode = coupon["barcodes"][0]["message"]
    answers = await asyncio.gather(*(till.scan(barcode, "redeem") for _ in range(10)))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] + [409] * 9
    winner = next(body for status, body in answers if status == 200)
    assert winner["coupon"]["title"] == "10% off"
    state = await (
        await client.get(f"/api/v1/passes/{coupon['serialNumber']}", headers=admin)
    ).json()
    assert state["state"] == "redeemed"


async def test_a_voided_pass_is_refused_with_the_reason(client, admin):
    till = await _till(client, admin)
    barcode = await _barcode(client, admin)
    serial = barcode.split(".")[2]
    await client.post(f"/api/v1/passes/{serial}/void", json={}, headers=admin)
    status, problem = await till.scan(barcode)
    assert status == 409 and problem["reason"] == "pass_voided"


async def test_a_bad_body_is_refused_after_the_signature_and_changes_nothing(
    client, admin, container
):
    till = await _till(client, admin)
    status, problem = await till.scan("x", raw=b'{"scan_id": "a"}')
    assert status == 422 and problem["reason"] == "validation_failed"
    status, _ = await till.scan("x", raw=b"{not json")
    assert status == 400
    assert await _count(container, "SELECT count(*) FROM inbox") == 0


async def test_a_program_with_the_longest_id_records_scans(client, admin):
    long_id = "p" + "-x" * 31  # 63 characters, the most a program id may have
    created = await client.post(
        "/api/v1/programs",
        json={
            "id": long_id,
            "name": "Long",
            "tiers": [{"name": "Base", "min_points": 0}],
            "points_per_unit": "1",
        },
        headers=admin,
    )
    assert created.status == 201, await created.text()
    await client.post(
        "/api/v1/stores",
        json={
            "id": "long-store",
            "program": long_id,
            "name": "Long",
            "latitude": 52.0,
            "longitude": 13.0,
            "radius_m": 50,
        },
        headers=admin,
    )
    terminal = await (
        await client.post(
            "/api/v1/stores/long-store/terminals",
            json={"id": "t" * 64, "adapter": "walletsvc"},
            headers=admin,
        )
    ).json()
    till = Till(client, "t" * 64, terminal["secret"])
    issued = await client.post(
        "/api/v1/passes",
        json={"program": long_id, "kind": "loyalty", "customer_external_id": "x" * 128},
        headers=admin,
    )
    document = await Wallet(client, admin).pass_json(await issued.json())
    status, body = await till.scan(
        document["barcodes"][0]["message"], "purchase", scan_id="s" * 100, amount="3.00"
    )
    assert status == 200, body
