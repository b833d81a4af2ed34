"""One profile per person: linking identifiers, and merging two profiles found to be one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from tests.e2e.test_scans import _barcode, _till


async def _customer_id(client: Any, admin: dict[str, str], external_id: str) -> str:
    response = await client.post(
        "/api/v1/customers", json={"external_id": external_id}, headers=admin
    )
    customer: dict[str, Any] = await response.json()
    return str(customer["id"])


async def _link(client: Any, admin: dict[str, str], customer_id: str, kind: str, value: str) -> Any:
    return await client.post(
        f"/api/v1/customers/{customer_id}/identifiers",
        json={"kind": kind, "value": value},
        headers=admin,
    )


async def _profile(client: Any, admin: dict[str, str], customer_id: str) -> dict[str, Any]:
    profile: dict[str, Any] = await (
        await client.get(f"/api/v1/customers/{customer_id}", headers=admin)
    ).json()
    return profile


async def test_a_new_identifier_is_linked_and_an_email_kept_only_as_a_hash(client, admin):
    customer = await _customer_id(client, admin, "crm-1")
    response = await _link(client, admin, customer, "email", "Anna@Example.de")
    assert response.status == 201
    profile = await response.json()
    email = next(i for i in profile["identifiers"] if i["kind"] == "email_sha256")
    assert "example" not in email["value"].lower() and len(email["value"]) == 64
    again = await _link(client, admin, customer, "email", "anna@example.de")
    assert again.status == 201 and len((await again.json())["identifiers"]) == 2


async def test_an_identifier_of_another_profile_merges_them_into_the_older(
    client, admin, container
):
    till = await _till(client, admin)
    older_card = await _barcode(client, admin, "crm-old")
    younger_card = await _barcode(client, admin, "crm-young")
    await till.scan(older_card, "purchase", amount="300.00")
    await till.scan(younger_card, "purchase", amount="250.00")
    older = (await till.scan(older_card))[1]["customer_id"]
    younger = (await till.scan(younger_card))[1]["customer_id"]
    await _link(client, admin, younger, "pos_customer", "square:CUST-77")
    response = await _link(client, admin, older, "pos_customer", "square:CUST-77")
    assert response.status == 200
    merged = await response.json()
    assert merged["id"] == older
    assert (merged["balance"], merged["tier"]) == (550, "Silver")
    states = sorted(p["state"] for p in merged["passes"])
    assert states == ["active", "voided"]  # one loyalty card per person
    assert (await _profile(client, admin, younger))["id"] == older
    # The older card now carries the merged balance; the younger card's scans are refused.
    assert (await till.scan(older_card))[1]["balance"] == 550
    assert (await till.scan(younger_card))[0] == 409
    async with container.engine.connect() as connection:
        events = (
            await connection.execute(
                text("SELECT count(*) FROM outbox WHERE type LIKE '%identity_merged%'")
            )
        ).scalar()
        entries = (
            await connection.execute(
                text("SELECT count(*) FROM ledger_entries WHERE customer_id = :c"), {"c": older}
            )
        ).scalar()
    assert events == 1 and entries == 2


async def test_only_a_key_allowed_to_write_this_programs_customers_can_link(client, admin):
    customer = await _customer_id(client, admin, "crm-2")
    reader = await (
        await client.post(
            "/api/v1/api-keys",
            json={"name": "reader", "scopes": ["customers:read"]},
            headers=admin,
        )
    ).json()
    refused = await client.post(
        f"/api/v1/customers/{customer}/identifiers",
        json={"kind": "email", "value": "x@example.de"},
        headers={"Authorization": f"Bearer {reader['key']}"},
    )
    assert refused.status == 403
    anonymous = await client.post(
        f"/api/v1/customers/{customer}/identifiers", json={"kind": "email", "value": "x@y.de"}
    )
    assert anonymous.status == 401
    bad = await _link(client, admin, customer, "passport", "X123")
    assert bad.status == 422


@pytest.mark.postgres
async def test_concurrent_cross_links_merge_once_and_keep_every_point(client, admin, container):
    till = await _till(client, admin)
    cards = [await _barcode(client, admin, f"crm-{n}") for n in range(4)]
    ids = []
    for n, card in enumerate(cards):
        status, body = await till.scan(card, "purchase", amount=f"{10 * (n + 1)}.00")
        assert status == 200, body
        ids.append(body["customer_id"])
    for n, customer in enumerate(ids):
        await _link(client, admin, customer, "email", f"person{n}@example.de")
    # Everyone claims everyone's email at once: all four are one person.
    requests = [
        _link(client, admin, ids[a], "email", f"person{b}@example.de")
        for a in range(4)
        for b in range(4)
        if a != b
    ]
    answers = await asyncio.gather(*requests)
    assert {answer.status for answer in answers} <= {200, 201}
    async with container.engine.connect() as connection:
        survivors = (
            await connection.execute(
                text("SELECT id, points_balance FROM customers WHERE merged_into IS NULL")
            )
        ).all()
    assert len(survivors) == 1
    assert survivors[0][1] == 10 + 20 + 30 + 40
