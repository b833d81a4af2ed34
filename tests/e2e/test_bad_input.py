"""A client's mistake gets a clear 4xx problem+json and writes nothing."""

from __future__ import annotations

import pytest

from tests.helpers import count_rows

PROBLEM = "application/problem+json"


async def test_malformed_json_is_a_400_problem(client, admin, container):
    response = await client.post(
        "/api/v1/customers",
        data=b'{"external_id": "a",',
        headers={**admin, "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert response.content_type == PROBLEM
    body = await response.json()
    assert body["reason"] == "malformed_json"
    assert body["status"] == 400 and body["title"] and body["type"] and body["detail"]
    assert await count_rows(container, "customers") == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"external_id": "a", "favourite_colour": "red"}, "favourite_colour"),
        ({"external_id": 12}, "external_id"),
        ({"external_id": "a", "consents": {"location": "maybe"}}, "consents.location"),
        ({}, "external_id"),
        ({"external_id": "has spaces"}, "external_id"),
        ({"external_id": "a", "email": "not-an-address"}, "email"),
        ({"external_id": "a", "phone": "0151 1234"}, "phone"),
    ],
)
async def test_invalid_customer_fields_are_named(client, admin, container, payload, field):
    response = await client.post("/api/v1/customers", json=payload, headers=admin)
    assert response.status == 422, await response.text()
    assert response.content_type == PROBLEM
    assert (await response.json())["field"] == field
    assert await count_rows(container, "customers") == 0


async def test_a_json_array_body_is_refused(client, admin):
    response = await client.post("/api/v1/customers", json=[1, 2], headers=admin)
    assert response.status == 400


async def test_a_non_json_body_is_refused(client, admin):
    response = await client.post(
        "/api/v1/customers", data=b"external_id=a", headers={**admin, "Content-Type": "text/plain"}
    )
    assert response.status == 415
    assert response.content_type == PROBLEM


async def test_an_oversized_body_is_refused(client, admin, container):
    huge = {"external_id": "a", "email": "x" * (400 * 1024)}
    response = await client.post("/api/v1/customers", json=huge, headers=admin)
    assert response.status == 413
    assert response.content_type == PROBLEM
    assert await count_rows(container, "customers") == 0


async def test_unknown_route_and_wrong_method_are_problems(client, admin):
    missing = await client.get("/api/v1/nothing-here", headers=admin)
    assert missing.status == 404 and missing.content_type == PROBLEM
    wrong = await client.delete("/api/v1/programs", headers=admin)
    assert wrong.status == 405 and wrong.content_type == PROBLEM
    assert "GET" in wrong.headers["Allow"]


async def test_program_with_falling_tiers_is_refused(client, admin, container):
    response = await client.post(
        "/api/v1/programs",
        json={
            "id": "shop",
            "name": "Shop",
            "tiers": [{"name": "A", "min_points": 0}, {"name": "B", "min_points": 0}],
        },
        headers=admin,
    )
    assert response.status == 422
    assert (await response.json())["field"] == "tiers"
    assert await count_rows(container, "programs") == 1  # only the demo program


async def test_program_id_taken_is_a_conflict(client, admin):
    response = await client.post(
        "/api/v1/programs",
        json={"id": "demo", "name": "Again", "tiers": [{"name": "A", "min_points": 0}]},
        headers=admin,
    )
    assert response.status == 409
    assert (await response.json())["reason"] == "already_exists"


async def test_pass_for_unknown_customer_is_404(client, admin, container):
    response = await client.post(
        "/api/v1/passes", json={"kind": "loyalty", "customer_id": "cus_nobody"}, headers=admin
    )
    assert response.status == 404
    assert await count_rows(container, "passes") == 0


async def test_pass_needs_exactly_one_customer_reference(client, admin):
    both = await client.post(
        "/api/v1/passes",
        json={"kind": "loyalty", "customer_id": "cus_x", "customer_external_id": "y"},
        headers=admin,
    )
    neither = await client.post("/api/v1/passes", json={"kind": "loyalty"}, headers=admin)
    assert both.status == 422 and neither.status == 422


async def test_store_with_impossible_coordinates_is_refused(client, admin, container):
    response = await client.post(
        "/api/v1/stores",
        json={"id": "s1", "program": "demo", "name": "Mitte", "latitude": 91, "longitude": 13.4},
        headers=admin,
    )
    assert response.status == 422
    assert (await response.json())["field"] == "latitude"
    assert await count_rows(container, "stores") == 0


async def test_errors_never_carry_a_stack_trace(client, admin):
    response = await client.post(
        "/api/v1/passes", json={"kind": "loyalty", "customer_id": 5}, headers=admin
    )
    text_body = await response.text()
    assert response.status == 422
    assert "Traceback" not in text_body and 'File "' not in text_body
