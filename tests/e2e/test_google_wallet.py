"""Google Wallet through the running service: save links, syncs, coalescing, refusals.

The service runs with its Google worker against the local stand-in (tests/fakes/google.py),
which checks the service account's OAuth2 assertion and behaves like the REST API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest

from tests.conftest import EXTERNAL_DATABASE, empty_all_tables
from tests.e2e.google_setup import (
    ISSUER,
    PROGRAM,
    create_program,
    google_settings,
    service_account_for,
    until,
)
from tests.e2e.test_scans import Till
from tests.fakes.google import FakeGoogleServer
from walletsvc.bootstrap import build_container, prepare_database
from walletsvc.domain.barcode import encode_barcode
from walletsvc.web.app import create_app


@pytest.fixture
async def google() -> AsyncIterator[FakeGoogleServer]:
    async with FakeGoogleServer(public_key_pem=b"", rate_per_s=50) as server:
        yield server


@pytest.fixture
async def stack(
    google: FakeGoogleServer,
    make_settings: Callable[..., Any],
    tmp_path: Path,
    aiohttp_client: Any,
    admin: dict[str, str],
) -> AsyncIterator[tuple[Any, Any]]:
    account = service_account_for(google, tmp_path)
    container = build_container(make_settings(google=google_settings(google, account)))
    await prepare_database(container)
    try:
        client = await aiohttp_client(create_app(container))
        await create_program(client, admin)
        yield client, container
    finally:
        if EXTERNAL_DATABASE is not None:
            await empty_all_tables(container)
        await container.close()


async def _issue(client: Any, admin: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/v1/passes", json={"program": PROGRAM, **body}, headers=admin)
    assert response.status == 201, await response.text()
    issued: dict[str, Any] = await response.json()
    return issued


async def _till(client: Any, admin: dict[str, str]) -> Till:
    store = {
        "id": "koeln",
        "program": PROGRAM,
        "name": "Köln Dom",
        "latitude": 50.94,
        "longitude": 6.96,
        "radius_m": 100,
    }
    assert (await client.post("/api/v1/stores", json=store, headers=admin)).status == 201
    response = await client.post(
        "/api/v1/stores/koeln/terminals",
        json={"id": "till-k", "adapter": "walletsvc"},
        headers=admin,
    )
    assert response.status == 201, await response.text()
    return Till(client, "till-k", (await response.json())["secret"])


async def test_an_issued_pass_has_a_skinny_save_link_to_an_object_google_holds(
    stack, admin, google
):
    client, _ = stack
    issued = await _issue(client, admin, {"kind": "loyalty", "customer_external_id": "crm-1"})
    url = issued["google"]["save_url"]
    assert url.startswith("https://pay.google.com/gp/v/save/")
    assert len(url) < 1800
    token = urlsplit(url).path.rsplit("/", 1)[1]
    claims = jwt.decode(token, google.public_key_pem, algorithms=["RS256"], audience="google")
    object_id = f"{ISSUER}.{issued['serial']}"
    assert claims["typ"] == "savetowallet"
    assert claims["iss"].endswith(".iam.gserviceaccount.com")
    assert claims["origins"] == ["http://walletsvc.test"]
    assert isinstance(claims["iat"], int)
    assert claims["payload"] == {
        "loyaltyObjects": [{"id": object_id, "classId": f"{ISSUER}.{PROGRAM}"}]
    }
    await until(lambda: object_id in google.resources["loyaltyObject"])
    stored = google.resources["loyaltyObject"][object_id]
    assert stored["loyaltyPoints"]["balance"] == {"int": 0}
    assert stored["secondaryLoyaltyPoints"]["balance"] == {"string": "Bronze"}
    assert stored["loyaltyPoints"]["localizedLabel"]["translatedValues"] == [
        {"language": "de", "value": "Punkte"}
    ]
    assert stored["barcode"]["type"] == "QR_CODE"
    assert stored["barcode"]["value"].startswith("W1.")
    klass = google.resources["loyaltyClass"][f"{ISSUER}.{PROGRAM}"]
    assert klass["reviewStatus"] == "UNDER_REVIEW"
    assert klass["callbackOptions"]["url"] == "http://walletsvc.test/google/callback"
    logo = await client.get(urlsplit(klass["programLogo"]["sourceUri"]["uri"]).path)
    assert logo.status == 200 and logo.content_type == "image/png"
    state = await (await client.get(f"/api/v1/passes/{issued['serial']}", headers=admin)).json()
    await until(lambda: True)
    assert state["installs"] == {"apple": 0, "google": 0}


async def test_a_coupon_becomes_an_offer_object_with_its_validity(stack, admin, google):
    client, _ = stack
    issued = await _issue(
        client,
        admin,
        {
            "kind": "coupon",
            "customer_external_id": "crm-2",
            "coupon": {"title": "10% off", "expires_at": "2031-01-31T23:00:00Z"},
        },
    )
    object_id = f"{ISSUER}.{issued['serial']}"
    assert (
        "offerObjects"
        in jwt.decode(
            urlsplit(issued["google"]["save_url"]).path.rsplit("/", 1)[1],
            google.public_key_pem,
            algorithms=["RS256"],
            audience="google",
        )["payload"]
    )
    await until(lambda: object_id in google.resources["offerObject"])
    offer = google.resources["offerObject"][object_id]
    assert offer["validTimeInterval"]["end"] == {"date": "2031-01-31T23:00:00Z"}
    assert offer["textModulesData"][0]["header"] == "10% off"
    response = await client.post(f"/api/v1/passes/{issued['serial']}/void", json={}, headers=admin)
    assert response.status == 200
    await until(lambda: google.resources["offerObject"][object_id]["state"] == "INACTIVE")


async def test_a_burst_of_balance_changes_reaches_google_as_one_patch(stack, admin, google):
    client, container = stack
    issued = await _issue(client, admin, {"kind": "loyalty", "customer_external_id": "crm-3"})
    object_id = f"{ISSUER}.{issued['serial']}"
    await until(lambda: object_id in google.resources["loyaltyObject"])
    till = await _till(client, admin)
    barcode = encode_barcode(container.ctx.barcode_keys, issued["serial"])
    for amount in ("10.00", "5.00", "7.00"):
        status, body = await till.scan(barcode, "purchase", amount=amount)
        assert status == 200, body
    await until(
        lambda: (
            google.resources["loyaltyObject"][object_id]["loyaltyPoints"]["balance"] == {"int": 22}
        )
    )
    patches = google.calls("PATCH", object_id)
    assert len(patches) == 1
    # Whole arrays are sent, never messages (a PATCH would wipe those Google keeps).
    assert "textModulesData" in patches[0].body and "messages" not in patches[0].body
    assert "notifyPreference" not in patches[0].body
    google_state = await _google_state_once_settled(client, admin, issued["serial"])
    assert google_state == {"state": "synced", "error": None, "field": None}


async def test_a_tier_change_notifies_the_holder_within_googles_limit(stack, admin, google):
    client, container = stack
    issued = await _issue(client, admin, {"kind": "loyalty", "customer_external_id": "crm-4"})
    object_id = f"{ISSUER}.{issued['serial']}"
    await until(lambda: object_id in google.resources["loyaltyObject"])
    till = await _till(client, admin)
    barcode = encode_barcode(container.ctx.barcode_keys, issued["serial"])
    status, body = await till.scan(barcode, "purchase", amount="150.00")
    assert status == 200 and body["tier"] == "Gold", body
    await until(lambda: google.notifications[object_id] == 1)
    stored = google.resources["loyaltyObject"][object_id]
    assert stored["secondaryLoyaltyPoints"]["balance"] == {"string": "Gold"}
    message = stored["messages"][0]
    assert message["messageType"] == "TEXT_AND_NOTIFY"
    assert message["localizedBody"]["translatedValues"][0]["value"] == "Ihre Stufe ist jetzt Gold"
    assert google.calls("PATCH", object_id)[0].body["notifyPreference"] == "notifyOnUpdate"


async def test_google_refusing_a_design_shows_its_message_and_apple_is_not_held_back(
    stack, admin, google
):
    client, _ = stack
    google.reject_next("Invalid hexBackgroundColor", "hexBackgroundColor")
    issued = await _issue(client, admin, {"kind": "loyalty", "customer_external_id": "crm-5"})
    serial = issued["serial"]

    async def state() -> dict[str, Any]:
        response = await client.get(f"/api/v1/passes/{serial}", headers=admin)
        return (await response.json())["google"]

    for _ in range(250):
        if (await state())["state"] == "error":
            break
        await until(lambda: True, 0.02)
    assert await state() == {
        "state": "error",
        "error": "Invalid hexBackgroundColor",
        "field": "hexBackgroundColor",
    }
    pkpass = await client.get(f"/api/v1/passes/{serial}/pass.pkpass", headers=admin)
    assert pkpass.status == 200


async def test_busy_google_is_retried_until_it_answers(stack, admin, google):
    client, _ = stack
    google.fail_next(2, 503)
    issued = await _issue(client, admin, {"kind": "loyalty", "customer_external_id": "crm-6"})
    object_id = f"{ISSUER}.{issued['serial']}"
    await until(lambda: object_id in google.resources["loyaltyObject"])
    assert [s.status for s in google.requests[:2]] == [503, 503]


async def test_an_object_google_lost_is_inserted_again_on_the_next_change(stack, admin, google):
    client, container = stack
    issued = await _issue(client, admin, {"kind": "loyalty", "customer_external_id": "crm-lost"})
    object_id = f"{ISSUER}.{issued['serial']}"
    await until(lambda: object_id in google.resources["loyaltyObject"])
    # Google no longer has it (deleted by support, a test issuer wiped): a PATCH finds 404.
    del google.resources["loyaltyObject"][object_id]
    till = await _till(client, admin)
    barcode = encode_barcode(container.ctx.barcode_keys, issued["serial"])
    assert (await till.scan(barcode, "purchase", amount="12.00"))[0] == 200
    await until(lambda: object_id in google.resources["loyaltyObject"])
    assert google.resources["loyaltyObject"][object_id]["loyaltyPoints"]["balance"] == {"int": 12}
    assert [s.status for s in google.calls("PATCH", object_id)] == [404]
    assert (await _google_state_once_settled(client, admin, issued["serial"]))["state"] == "synced"


async def _google_state_once_settled(client: Any, admin: dict[str, str], serial: str) -> Any:
    """Return the pass's Google state once the worker has settled its last sync.

    The fake holds the change as soon as it answers; the worker records the outcome a
    moment later, so a read right after the fake changed may still say pending.
    """
    for _ in range(100):
        state = await (await client.get(f"/api/v1/passes/{serial}", headers=admin)).json()
        if state["google"]["state"] != "pending":
            break
        await asyncio.sleep(0.05)
    return state["google"]
