"""Storage behaviour the service relies on, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from tests.helpers import count_rows, issue_loyalty
from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.services.api_keys import bootstrap_principal
from walletsvc.services.customers import CustomerDraft, upsert_customer
from walletsvc.storage.tables import metadata


async def test_migrations_create_exactly_the_tables_the_code_uses(container):
    def diff(connection):
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata)

    async with container.engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert differences == []


async def test_unit_of_work_without_commit_writes_nothing(container):
    ctx = container.ctx
    async with ctx.uow() as uow:
        await uow.outbox.add(
            DomainEvent(EventType.PASS_ISSUED, "cus_x", {"n": 1}, datetime.now(UTC))
        )
    async with container.engine.connect() as connection:
        rows = (await connection.execute(text("SELECT count(*) FROM outbox"))).scalar_one()
    assert rows == 0


async def test_state_change_and_its_event_commit_together(container):
    customer, created = await upsert_customer(
        container.ctx, bootstrap_principal(), CustomerDraft(external_id="atomic-1")
    )
    assert created
    async with container.engine.connect() as connection:
        events = (
            await connection.execute(
                text("SELECT type, subject, event_id FROM outbox WHERE subject = :s"),
                {"s": customer.id},
            )
        ).all()
    assert [(e.type, e.subject) for e in events] == [(EventType.CUSTOMER_CREATED, customer.id)]
    assert len(events[0].event_id) == 36


async def test_a_failed_use_case_leaves_no_event_behind(container):
    with pytest.raises(Exception, match="email"):
        await upsert_customer(
            container.ctx,
            bootstrap_principal(),
            CustomerDraft(external_id="atomic-2", email="no-at-sign"),
        )
    async with container.engine.connect() as connection:
        customers = (await connection.execute(text("SELECT count(*) FROM customers"))).scalar_one()
        events = (await connection.execute(text("SELECT count(*) FROM outbox"))).scalar_one()
    assert (customers, events) == (0, 0)


async def test_concurrent_upserts_of_one_external_id_make_one_customer(container):
    async def upsert():
        return await upsert_customer(
            container.ctx, bootstrap_principal(), CustomerDraft(external_id="racer")
        )

    results = await asyncio.gather(*(upsert() for _ in range(10)))
    ids = {customer.id for customer, _ in results}
    assert len(ids) == 1
    assert sum(created for _, created in results) == 1
    async with container.engine.connect() as connection:
        customers = (await connection.execute(text("SELECT count(*) FROM customers"))).scalar_one()
        events = (
            await connection.execute(
                text("SELECT count(*) FROM outbox WHERE type = :t"),
                {"t": EventType.CUSTOMER_CREATED},
            )
        ).scalar_one()
    assert (customers, events) == (1, 1)


async def test_pass_tokens_and_terminal_secrets_are_sealed_at_rest(client, admin, container):
    store = await client.post(
        "/api/v1/stores",
        json={
            "id": "berlin-1",
            "program": "demo",
            "name": "Berlin",
            "latitude": 52.52,
            "longitude": 13.405,
            "radius_m": 80,
        },
        headers=admin,
    )
    assert store.status == 201
    terminal = await client.post(
        "/api/v1/stores/berlin-1/terminals", json={"id": "till-1"}, headers=admin
    )
    assert terminal.status == 201
    secret = (await terminal.json())["secret"]
    assert secret.startswith("whsec_")
    again = await client.post(
        "/api/v1/stores/berlin-1/terminals", json={"id": "till-1"}, headers=admin
    )
    assert again.status == 409

    issued = await issue_loyalty(client, admin, "s1")
    async with container.ctx.uow() as uow:
        token = (await uow.passes.get(issued["serial"])).authentication_token
        assert (await uow.terminals.get("till-1")).secret == secret
    async with container.engine.connect() as connection:
        terminal_rows = str((await connection.execute(text("SELECT * FROM terminals"))).all())
        pass_rows = str((await connection.execute(text("SELECT * FROM passes"))).all())
    assert secret not in terminal_rows and secret.removeprefix("whsec_") not in terminal_rows
    assert token not in pass_rows


async def test_emails_and_phones_are_kept_only_as_keyed_hashes(client, admin, container):
    response = await client.post(
        "/api/v1/customers",
        json={"external_id": "p1", "email": "Anna.Muster@Example.DE", "phone": "+49 151 1234567"},
        headers=admin,
    )
    assert response.status == 201
    body = await response.text()
    assert "anna" not in body.lower() and "1511234567" not in body
    async with container.engine.connect() as connection:
        dump = ""
        for table in metadata.sorted_tables:
            dump += str((await connection.execute(table.select())).all())
    assert "anna" not in dump.lower() and "1511234567" not in dump

    again = await client.post(
        "/api/v1/customers",
        json={"external_id": "p2", "email": "anna.muster@example.de"},
        headers=admin,
    )
    assert again.status == 409  # the same address, differently spelt, is the same identifier
    assert (await again.json())["field"] == "email"


async def test_updating_a_customer_keeps_its_id_and_records_consent_changes(client, admin):
    first = await client.post(
        "/api/v1/customers",
        json={"external_id": "u1", "consents": {"location": False, "marketing": False}},
        headers=admin,
    )
    second = await client.post(
        "/api/v1/customers",
        json={"external_id": "u1", "consents": {"location": True, "marketing": False}},
        headers=admin,
    )
    assert (first.status, second.status) == (201, 200)
    a, b = await first.json(), await second.json()
    assert a["id"] == b["id"]
    assert b["consents"] == {"location": True, "marketing": False}
    profile = await (await client.get(f"/api/v1/customers/{a['id']}", headers=admin)).json()
    assert profile["consents"]["location"] is True


async def test_concurrent_loyalty_issues_for_one_customer_make_one_card(client, admin, container):
    await client.post("/api/v1/customers", json={"external_id": "twin"}, headers=admin)

    async def issue():
        response = await client.post(
            "/api/v1/passes",
            json={"kind": "loyalty", "customer_external_id": "twin"},
            headers=admin,
        )
        assert response.status in (200, 201), await response.text()
        return (await response.json())["serial"]

    serials = await asyncio.gather(*(issue() for _ in range(8)))
    assert len(set(serials)) == 1
    assert await count_rows(container, "passes") == 1


async def test_a_pass_writer_may_issue_to_a_known_customer_but_not_create_one(client, admin):
    key = await client.post(
        "/api/v1/api-keys", json={"name": "issuer", "scopes": ["passes:write"]}, headers=admin
    )
    issuer = {"Authorization": f"Bearer {(await key.json())['key']}"}
    await client.post("/api/v1/customers", json={"external_id": "known"}, headers=admin)
    known = await client.post(
        "/api/v1/passes", json={"kind": "loyalty", "customer_external_id": "known"}, headers=issuer
    )
    assert known.status == 201
    unknown = await client.post(
        "/api/v1/passes", json={"kind": "loyalty", "customer_external_id": "new"}, headers=issuer
    )
    assert unknown.status == 403
