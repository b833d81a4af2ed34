"""Rotating a terminal's secret: both verify for the overlap, then only the new one."""

from __future__ import annotations

from tests.e2e.test_access import make_key
from tests.e2e.test_scans import _barcode, _till
from walletsvc.intake.standard_webhooks import decode_secret

PROBLEM = "application/problem+json"


async def _rotate(client, headers, terminal="till-1", **body):
    response = await client.post(
        f"/api/v1/stores/berlin/terminals/{terminal}/secret", json=body, headers=headers
    )
    return response.status, await response.json()


async def test_the_old_secret_works_during_the_overlap_and_the_new_one_at_once(client, admin):
    till = await _till(client, admin)
    barcode = await _barcode(client, admin)
    old_key = till.key
    status, body = await _rotate(client, admin, previous_valid_for_s=3600)
    assert status == 200, body
    assert body["secret"].startswith("whsec_") and "previous_valid_until" in body
    new_key = decode_secret(body["secret"])
    assert new_key != old_key
    assert (await till.scan(barcode, key=old_key))[0] == 200
    assert (await till.scan(barcode, key=new_key))[0] == 200


async def test_the_old_secret_stops_when_the_overlap_ends(client, admin):
    till = await _till(client, admin)
    barcode = await _barcode(client, admin)
    old_key = till.key
    status, body = await _rotate(client, admin, previous_valid_for_s=0)
    assert status == 200
    status, problem = await till.scan(barcode, key=old_key)
    assert (status, problem["reason"]) == (401, "bad_signature")
    assert (await till.scan(barcode, key=decode_secret(body["secret"])))[0] == 200


async def test_a_vendor_terminal_is_rotated_to_the_vendors_new_key(client, admin):
    await _till(client, admin)
    created = await client.post(
        "/api/v1/stores/berlin/terminals",
        json={"id": "shop-1", "adapter": "shopify", "secret": "shpss_old_key_123"},
        headers=admin,
    )
    assert created.status == 201
    status, problem = await _rotate(client, admin, "shop-1")
    assert (status, problem["field"]) == (422, "secret")
    status, body = await _rotate(client, admin, "shop-1", secret="shpss_new_key_456")
    assert status == 200 and body["secret"] is None  # the vendor's key is never echoed
    status, problem = await _rotate(client, admin, secret="whsec_AAAAAAAAAAAAAAAAAAAAAAAA")
    assert (status, problem["field"]) == (422, "secret")


async def test_rotation_needs_the_scope_and_the_program(client, admin):
    await _till(client, admin)
    reader = await make_key(client, admin, ["loyalty:read"])
    assert (await _rotate(client, reader))[0] == 403
    await client.post(
        "/api/v1/programs",
        json={"id": "other", "name": "Other", "tiers": [{"name": "A", "min_points": 0}]},
        headers=admin,
    )
    outsider = await make_key(client, admin, ["stores:write"], program="other")
    assert (await _rotate(client, outsider))[0] == 404
    assert (await _rotate(client, admin, "no-such-till"))[0] == 404
    status, problem = await _rotate(client, admin, previous_valid_for_s=10**9)
    assert status == 422 and "previous_valid_for_s" in str(problem)
    assert (
        await client.post("/api/v1/stores/berlin/terminals/till-1/secret", json={})
    ).status == 401
