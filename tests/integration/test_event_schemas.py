"""Every event type has a JSON Schema in docs/events/, and real flows produce data that fits it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from sqlalchemy import select

from tests.conformance.test_apple_web_service import TOKEN, Wallet
from tests.e2e.test_geofence import add_customer, add_store, ago, report
from tests.e2e.test_identity import _customer_id, _link
from tests.e2e.test_scans import _barcode, _till
from tests.integration.test_push_queue import FakeApns, later
from walletsvc.domain.event import EventType
from walletsvc.domain.event_delivery import RecordedEvent
from walletsvc.domain.push import PushOutcome, PushReply
from walletsvc.outbox.envelope import cloudevent
from walletsvc.services.loyalty_review import review_program
from walletsvc.services.push_delivery import deliver_due_pushes
from walletsvc.storage.tables import OutboxRow

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "events"
EVERY_TYPE = {value for name, value in vars(EventType).items() if name.isupper()}


def schema_of(event_type: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{event_type}.json").read_text())
    return schema


def test_every_event_type_has_a_valid_schema_and_no_schema_is_left_over():
    files = {path.name.removesuffix(".json") for path in SCHEMAS.glob("*.json")}
    assert files == EVERY_TYPE
    for event_type in EVERY_TYPE:
        schema = schema_of(event_type)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["title"] == event_type
        assert schema["additionalProperties"] is False  # new data fields update the schema
        assert "customer_id" in schema["required"]
        # pass_removed from a dead APNs token carries no program yet (see its schema).
        assert "program" in schema["required"] or event_type == EventType.PASS_REMOVED
    assert (SCHEMAS / "README.md").is_file()


async def test_the_data_of_every_event_real_flows_write_fits_its_schema(client, admin, container):
    # Cards, scans, points and a tier change, a coupon installed, changed and redeemed.
    till = await _till(client, admin)
    card = await _barcode(client, admin, "crm-schema-1")
    assert (await till.scan(card, "purchase", amount="2000.00"))[0] == 200
    wallet = Wallet(client, admin)
    coupon = await wallet.coupon("crm-schema-1")
    document = await wallet.pass_json(coupon)
    assert await wallet.register(document) == 201
    await wallet.change_coupon(coupon["serial"], title="15% off")
    assert (await till.scan(document["barcodes"][0]["message"], "redeem"))[0] == 200
    # The device's token dies: the pass counts as removed.
    apns = FakeApns(
        answers={TOKEN: PushReply(TOKEN, PushOutcome.UNREGISTERED, 410, "Unregistered")}
    )
    await deliver_due_pushes(later(container), apns)
    second = await wallet.coupon("crm-schema-1", title="5% off")
    voided = await client.post(
        f"/api/v1/passes/{second['serial']}/void", json={"reason": "test"}, headers=admin
    )
    assert voided.status == 200, await voided.text()
    # Consents, identifiers and a merge.
    changed = await client.post(
        "/api/v1/customers",
        json={"external_id": "crm-schema-1", "consents": {"location": True, "marketing": True}},
        headers=admin,
    )
    assert changed.status == 200
    first = await _customer_id(client, admin, "crm-schema-1")
    other = await _customer_id(client, admin, "crm-schema-2")
    assert (await _link(client, admin, first, "email", "anna@example.de")).status == 201
    assert (await _link(client, admin, other, "pos_customer", "square:C-9")).status == 201
    assert (await _link(client, admin, first, "pos_customer", "square:C-9")).status == 200
    # A visit to a store.
    await add_store(client, admin)
    visitor = await add_customer(client, admin, "app-schema-1")
    for kind, minutes in (("enter", 4), ("dwell", 2.5), ("exit", 1)):
        status, answer = await report(client, admin, visitor, type=kind, occurred_at=ago(minutes))
        assert status == 202 and answer["accepted"], answer

    # The engine and the backend move points; the review expires some; a profile is erased.
    assert (
        await client.put(
            f"/api/v1/customers/{other}/loyalty",
            json={"points": 700, "tier": "Silver"},
            headers=admin,
        )
    ).status == 200
    spend = {"kind": "spend", "points": 100, "business_key": "reward-1"}
    assert (
        await client.post(f"/api/v1/customers/{first}/ledger-entries", json=spend, headers=admin)
    ).status == 201
    await client.post(
        "/api/v1/programs",
        json={
            "id": "expiring",
            "name": "Expiring",
            "tiers": [{"name": "A", "min_points": 0}],
            "loyalty": {"points_expiry_days": 30},
        },
        headers=admin,
    )
    expiring = (
        await (
            await client.post(
                "/api/v1/customers",
                json={"external_id": "crm-schema-3", "program": "expiring"},
                headers=admin,
            )
        ).json()
    )["id"]
    old = {
        "kind": "earn",
        "points": 40,
        "business_key": "old-1",
        "occurred_at": "2020-01-01T00:00:00+00:00",
    }
    assert (
        await client.post(f"/api/v1/customers/{expiring}/ledger-entries", json=old, headers=admin)
    ).status == 201
    assert (await review_program(container.ctx, "expiring")).points_expired == 40
    assert (await client.delete(f"/api/v1/customers/{expiring}", headers=admin)).status == 202

    async with container.engine.connect() as connection:
        o = OutboxRow.__table__
        columns = (o.c.seq, o.c.event_id, o.c.type, o.c.subject, o.c.partition_key)
        times = (o.c.occurred_at, o.c.recorded_at, o.c.data)
        rows = (await connection.execute(select(*columns, *times).order_by(o.c.seq))).all()
    seen = set()
    for row in rows:
        data = row.data if isinstance(row.data, dict) else json.loads(row.data)
        jsonschema.validate(data, schema_of(row.type), cls=jsonschema.Draft202012Validator)
        envelope = cloudevent(RecordedEvent(*row[:7], data=data), "https://walletsvc.test")
        # Context attributes hold ids and times only.
        assert "@" not in json.dumps({k: v for k, v in envelope.items() if k != "data"})
        assert "anna" not in json.dumps(data).lower()
        seen.add(row.type)
    assert EVERY_TYPE - seen == set(), "a flow for these types is missing from this test"
