"""Every endpoint checks who is calling; a program's key never reaches another program."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

PROBLEM = "application/problem+json"


async def make_key(client, admin, scopes, program=None):
    response = await client.post(
        "/api/v1/api-keys",
        json={"name": "pos backend", "scopes": scopes, "program": program},
        headers=admin,
    )
    assert response.status == 201, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['key']}"}


async def make_program(client, admin, program_id):
    response = await client.post(
        "/api/v1/programs",
        json={
            "id": program_id,
            "name": program_id.title(),
            "tiers": [{"name": "A", "min_points": 0}],
        },
        headers=admin,
    )
    assert response.status == 201, await response.text()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/programs"),
        ("POST", "/api/v1/programs"),
        ("POST", "/api/v1/api-keys"),
        ("POST", "/api/v1/stores"),
        ("POST", "/api/v1/stores/s1/terminals"),
        ("POST", "/api/v1/customers"),
        ("GET", "/api/v1/customers/cus_x"),
        ("POST", "/api/v1/passes"),
        ("GET", "/api/v1/passes/x"),
        ("GET", "/api/v1/passes/x/pass.pkpass"),
    ],
)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", "Bearer wsk_abc.def", "Basic YWRtaW46YWRtaW4="]
)
async def test_admin_api_refuses_missing_or_wrong_credentials(client, method, path, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.request(method, path, json={}, headers=headers)
    assert response.status == 401
    assert response.content_type == PROBLEM
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_api_keys_are_stored_only_as_hashes(client, admin, container):
    response = await client.post(
        "/api/v1/api-keys", json={"name": "k", "scopes": ["customers:read"]}, headers=admin
    )
    secret = (await response.json())["key"]
    async with container.engine.connect() as connection:
        rows = (await connection.execute(text("SELECT * FROM api_keys"))).all()
    assert rows and all(secret.split(".")[1] not in str(row) for row in rows)


async def test_a_key_without_the_scope_is_forbidden(client, admin):
    reader = await make_key(client, admin, ["customers:read"])
    response = await client.post("/api/v1/customers", json={"external_id": "a"}, headers=reader)
    assert response.status == 403
    assert (await response.json())["reason"] == "missing_scope"


async def test_a_key_cannot_grant_what_it_does_not_hold(client, admin):
    granter = await make_key(client, admin, ["api-keys:write", "customers:read"])
    response = await client.post(
        "/api/v1/api-keys", json={"name": "x", "scopes": ["passes:write"]}, headers=granter
    )
    assert response.status == 403


async def test_unknown_scopes_are_refused(client, admin):
    response = await client.post(
        "/api/v1/api-keys", json={"name": "x", "scopes": ["everything"]}, headers=admin
    )
    assert response.status == 422


async def test_program_key_never_sees_another_programs_data(client, admin):
    await make_program(client, admin, "other")
    other_customer = await (
        await client.post(
            "/api/v1/customers", json={"external_id": "o1", "program": "other"}, headers=admin
        )
    ).json()
    other_pass = await (
        await client.post(
            "/api/v1/passes",
            json={"program": "other", "kind": "loyalty", "customer_id": other_customer["id"]},
            headers=admin,
        )
    ).json()
    demo_key = await make_key(
        client,
        admin,
        ["customers:read", "customers:write", "passes:read", "passes:write", "programs:read"],
        program="demo",
    )

    customer = await client.get(f"/api/v1/customers/{other_customer['id']}", headers=demo_key)
    assert customer.status == 404
    state = await client.get(f"/api/v1/passes/{other_pass['serial']}", headers=demo_key)
    assert state.status == 404
    bundle = await client.get(
        f"/api/v1/passes/{other_pass['serial']}/pass.pkpass", headers=demo_key
    )
    assert bundle.status == 404
    issue = await client.post(
        "/api/v1/passes",
        json={"program": "other", "kind": "loyalty", "customer_id": other_customer["id"]},
        headers=demo_key,
    )
    assert issue.status == 404
    cross = await client.post(
        "/api/v1/passes",
        json={"kind": "loyalty", "customer_id": other_customer["id"]},
        headers=demo_key,
    )
    assert cross.status == 404
    listed = await (await client.get("/api/v1/programs", headers=demo_key)).json()
    assert [p["id"] for p in listed["items"]] == ["demo"]


async def test_program_key_works_within_its_program(client, admin):
    demo_key = await make_key(client, admin, ["customers:write", "customers:read"], program="demo")
    created = await client.post("/api/v1/customers", json={"external_id": "d1"}, headers=demo_key)
    assert created.status == 201
    assert (await created.json())["program"] == "demo"


async def test_program_key_cannot_create_programs(client, admin):
    key = await make_key(client, admin, ["programs:write"], program="demo")
    response = await client.post(
        "/api/v1/programs",
        json={"id": "mine", "name": "Mine", "tiers": [{"name": "A", "min_points": 0}]},
        headers=key,
    )
    assert response.status == 403


async def test_health_and_openapi_need_no_key(client):
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"]["database"] == "ok"
    assert (await client.get("/api/v1/openapi.json")).status == 200


async def test_a_revoked_key_is_refused_at_once_and_listed_without_its_secret(client, admin):
    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "old till backend", "scopes": ["passes:read"], "program": "demo"},
        headers=admin,
    )
    key = await created.json()
    holder = {"Authorization": f"Bearer {key['key']}"}
    # Recognised (403: it lacks customers:read), not refused as unknown.
    assert (await client.get("/api/v1/customers/nobody", headers=holder)).status == 403
    listed = await (await client.get("/api/v1/api-keys", headers=admin)).json()
    mine = next(item for item in listed["items"] if item["id"] == key["id"])
    assert mine["revoked_at"] is None and "key" not in mine
    assert key["key"].split(".")[-1] not in json.dumps(listed)

    assert (await client.delete(f"/api/v1/api-keys/{key['id']}", headers=admin)).status == 204
    refused = await client.get("/api/v1/customers/nobody", headers=holder)
    assert refused.status == 401 and (await refused.json())["reason"] == "invalid_api_key"
    again = await client.delete(f"/api/v1/api-keys/{key['id']}", headers=admin)
    assert again.status == 204  # idempotent: still revoked, first time kept
    listed = await (await client.get("/api/v1/api-keys", headers=admin)).json()
    assert next(i for i in listed["items"] if i["id"] == key["id"])["revoked_at"] is not None


async def test_a_program_key_manages_only_its_programs_keys(client, admin):
    await make_program(client, admin, "other")
    other = await client.post(
        "/api/v1/api-keys",
        json={"name": "other's", "scopes": ["passes:read"], "program": "other"},
        headers=admin,
    )
    other_id = (await other.json())["id"]
    manager = await make_key(client, admin, ["api-keys:write", "passes:read"], program="demo")
    listed = await (await client.get("/api/v1/api-keys", headers=manager)).json()
    assert listed["items"] and {item["program"] for item in listed["items"]} == {"demo"}
    hidden = await client.delete(f"/api/v1/api-keys/{other_id}", headers=manager)
    assert hidden.status == 404
    still = await client.get("/api/v1/api-keys", headers=admin)
    assert (
        next(i for i in (await still.json())["items"] if i["id"] == other_id)["revoked_at"] is None
    )
