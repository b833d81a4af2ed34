"""Erasing a customer: nothing that identifies them is left, their passes stop working."""

from __future__ import annotations

import json

from sqlalchemy import text

from tests.conformance.test_apple_web_service import Wallet
from tests.e2e.test_access import make_key
from tests.e2e.test_geofence import add_customer, add_store, report, store_events
from tests.e2e.test_identity import _link
from tests.e2e.test_pos_webhooks import CUSTOMER, _deliver, _order, _settle, _shopify_terminal
from tests.e2e.test_scans import _till
from tests.helpers import issue_loyalty, unpack
from walletsvc.services.pos_webhooks import process_pending_webhooks

EMAIL = "anna.schmidt@example.de"
PHONE = "+49 30 1234567"


async def _rows(container, sql, **params):
    async with container.engine.connect() as connection:
        return (await connection.execute(text(sql), params)).all()


async def test_erasure_removes_identity_and_voids_passes(client, admin, container):
    till = await _till(client, admin)
    wallet = Wallet(client, admin)
    document = await wallet.pass_json(await issue_loyalty(client, admin, "crm-anna"))
    barcode, serial = document["barcodes"][0]["message"], document["serialNumber"]
    assert await wallet.register(document) == 201
    _, scanned = await till.scan(barcode, "purchase", amount="42.00")
    customer_id = scanned["customer_id"]
    _, before = await wallet.changed(document)
    assert before is not None
    await client.post(
        "/api/v1/customers",
        json={
            "external_id": "crm-anna",
            "email": EMAIL,
            "phone": PHONE,
            "consents": {"location": True, "marketing": True},
        },
        headers=admin,
    )
    await _link(client, admin, customer_id, "pos_customer", "square:CUST-9")

    response = await client.delete(f"/api/v1/customers/{customer_id}", headers=admin)
    assert response.status == 202
    assert await response.json() == {"customer_id": customer_id, "passes_voided": 1}

    assert (await client.get(f"/api/v1/customers/{customer_id}", headers=admin)).status == 404
    assert (await client.delete(f"/api/v1/customers/{customer_id}", headers=admin)).status == 404
    wallet_pass = await (await client.get(f"/api/v1/passes/{serial}", headers=admin)).json()
    assert wallet_pass["state"] == "voided"
    assert (await till.scan(barcode))[0] == 409  # the card no longer scans
    identifiers = await _rows(
        container, "SELECT kind FROM identifiers WHERE customer_id = :c", c=customer_id
    )
    assert identifiers == []
    [row] = await _rows(
        container,
        "SELECT external_id, location_consent, marketing_consent FROM customers WHERE id = :c",
        c=customer_id,
    )
    assert row == (f"erased:{customer_id}", False, False)
    # The phone holding the card learns it changed, and fetches it voided.
    _, after = await wallet.changed(document, before["lastUpdated"])
    assert after is not None and after["serialNumbers"] == [serial]
    latest = await client.get(
        f"/apple/v1/passes/{document['passTypeIdentifier']}/{serial}", headers=wallet.auth(document)
    )
    assert latest.status == 200
    assert json.loads(unpack(await latest.read())["pass.json"])["voided"] is True
    events = await _rows(container, "SELECT data FROM outbox WHERE type LIKE '%customer_erased%'")
    assert len(events) == 1
    # Nothing anywhere in the database still reads like the person.
    dump = str(await _rows(container, "SELECT * FROM outbox")) + str(
        await _rows(container, "SELECT * FROM customers")
    )
    assert "crm-anna" not in dump and "example.de" not in dump and "1234567" not in dump
    # The same CRM id can come back as a new person.
    again = await client.post("/api/v1/customers", json={"external_id": "crm-anna"}, headers=admin)
    assert again.status == 201 and (await again.json())["id"] != customer_id


async def test_erasing_a_merged_profile_erases_the_person(client, admin, container):
    older = (
        await (
            await client.post("/api/v1/customers", json={"external_id": "crm-a"}, headers=admin)
        ).json()
    )["id"]
    younger = (
        await (
            await client.post("/api/v1/customers", json={"external_id": "crm-b"}, headers=admin)
        ).json()
    )["id"]
    await _link(client, admin, younger, "email", EMAIL)
    assert (await _link(client, admin, older, "email", EMAIL)).status == 200  # merged
    response = await client.delete(f"/api/v1/customers/{younger}", headers=admin)
    assert response.status == 202
    for customer_id in (older, younger):
        assert (await client.get(f"/api/v1/customers/{customer_id}", headers=admin)).status == 404
    left = await _rows(container, "SELECT external_id FROM customers ORDER BY external_id")
    assert [r[0] for r in left] == sorted([f"erased:{older}", f"erased:{younger}"])


async def test_erasure_needs_the_scope_and_the_program(client, admin):
    customer_id = (
        await (
            await client.post("/api/v1/customers", json={"external_id": "crm-c"}, headers=admin)
        ).json()
    )["id"]
    reader = await make_key(client, admin, ["customers:read"])
    assert (await client.delete(f"/api/v1/customers/{customer_id}", headers=reader)).status == 403
    await client.post(
        "/api/v1/programs",
        json={"id": "other", "name": "Other", "tiers": [{"name": "A", "min_points": 0}]},
        headers=admin,
    )
    outsider = await make_key(client, admin, ["customers:write"], program="other")
    assert (await client.delete(f"/api/v1/customers/{customer_id}", headers=outsider)).status == 404
    assert (await client.delete(f"/api/v1/customers/{customer_id}")).status == 401
    assert (await client.get(f"/api/v1/customers/{customer_id}", headers=admin)).status == 200


async def test_erasure_scrubs_visits_and_pos_deliveries_that_name_the_person(
    client, admin, container
):
    await add_store(client, admin)
    visitor = await add_customer(client, admin, "crm-visits")
    assert (await report(client, admin, visitor, event_id="evt-1"))[1]["accepted"] is True
    issued = await issue_loyalty(client, admin, "crm-visits")
    barcode = (await Wallet(client, admin).pass_json(issued))["barcodes"][0]["message"]
    await _shopify_terminal(client, admin)
    # One sale acted on (it links the POS customer id), one still waiting in the inbox.
    assert (await _deliver(client, _order(2001, barcode), "wh-done")).status == 202
    await _settle(container)
    assert (await _deliver(client, _order(2002, barcode), "wh-pending")).status == 202
    assert await store_events(container) != []

    response = await client.delete(f"/api/v1/customers/{visitor}", headers=admin)
    assert response.status == 202

    # The visit history is gone from the outbox, whether delivered or still owed.
    assert await store_events(container) == []
    assert await _rows(container, "SELECT * FROM store_visits") == []
    # No POS delivery keeps the barcode, the loyalty number or the vendor's customer id.
    inbox = await _rows(
        container, "SELECT external_id, body, response FROM inbox WHERE source LIKE 'pos:%'"
    )
    assert {row[0] for row in inbox} == {"wh-done", "wh-pending"}
    assert all(row[1] is None for row in inbox)
    dump = str(inbox)
    assert barcode not in dump and str(CUSTOMER) not in dump and "crm-visits" not in dump
    # The pending one is closed without being acted on: no points for an erased person.
    pending = next(row for row in inbox if row[0] == "wh-pending")
    response_of = pending[2] if isinstance(pending[2], dict) else json.loads(pending[2])
    assert response_of == {"outcome": "erased"}
    assert await process_pending_webhooks(container.ctx) == 0


async def test_withdrawing_location_consent_stops_location_processing_at_once(
    client, admin, container
):
    await add_store(client, admin)
    visitor = await add_customer(client, admin, "crm-consent")
    assert (await report(client, admin, visitor, event_id="evt-in"))[1]["accepted"] is True
    # Not yet delivered to the sinks: still in the outbox, owed.
    assert len(await store_events(container)) == 1

    withdrawn = await add_customer(client, admin, "crm-consent", location=False)
    assert withdrawn == visitor

    # What was owed leaves no more, and the next event is refused at once.
    assert await store_events(container) == []
    assert await _rows(container, "SELECT * FROM store_visits") == []
    status, verdict = await report(client, admin, visitor, event_id="evt-after", type="exit")
    assert (status, verdict["accepted"], verdict["reason"]) == (202, False, "no_location_consent")
    assert await store_events(container) == []
    # Other events of the customer are untouched: only location processing stops.
    kinds = await _rows(container, "SELECT type FROM outbox WHERE subject = :c", c=visitor)
    assert [row[0] for row in kinds if "customer" in row[0] or "consent" in row[0]] != []
