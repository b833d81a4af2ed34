"""The operator's first tour: a customer, a loyalty pass, a .pkpass that verifies offline."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from tests.conftest import CERTS, EXTERNAL_DATABASE, PUBLIC_URL, empty_all_tables
from tests.helpers import count_rows, issue_loyalty, path_of, unpack, verify_pkpass
from walletsvc.bootstrap import build_container, prepare_database
from walletsvc.domain.link_token import make_link_token
from walletsvc.web.app import create_app


async def test_issued_loyalty_pass_downloads_and_verifies_offline(client, admin, tmp_path):
    created = await client.post(
        "/api/v1/customers",
        json={"external_id": "crm-1", "consents": {"location": True, "marketing": False}},
        headers=admin,
    )
    assert created.status == 201
    customer = await created.json()

    issued = await client.post(
        "/api/v1/passes",
        json={"program": "demo", "kind": "loyalty", "customer_id": customer["id"]},
        headers=admin,
    )
    assert issued.status == 201
    body = await issued.json()
    assert body["kind"] == "loyalty" and body["state"] == "active"
    assert body["apple"]["pkpass_url"].startswith(f"{PUBLIC_URL}/add/")
    assert body["add_url"].startswith(f"{PUBLIC_URL}/add/")
    assert "google" in body

    download = await client.get(path_of(body["apple"]["pkpass_url"]))
    assert download.status == 200
    assert download.content_type == "application/vnd.apple.pkpass"
    assert download.headers["Last-Modified"].endswith("GMT")
    pass_json = verify_pkpass(await download.read(), CERTS / "wwdr-dev-ca.pem", tmp_path)

    assert pass_json["serialNumber"] == body["serial"]
    assert pass_json["passTypeIdentifier"] == "pass.com.example.walletsvc.demo"
    assert pass_json["teamIdentifier"] == "DEVTEAM123"
    assert pass_json["webServiceURL"] == f"{PUBLIC_URL}/apple"
    assert len(pass_json["authenticationToken"]) >= 32
    assert pass_json["storeCard"]["primaryFields"][0]["value"] == 0
    assert pass_json["storeCard"]["headerFields"][0]["value"] == "Bronze"
    # The barcode is an opaque, MACed token: never the customer's ids.
    message = pass_json["barcodes"][0]["message"]
    assert customer["id"] not in message and "crm-1" not in message


async def test_each_pass_gets_its_own_authentication_token(client, admin):
    tokens = set()
    for number in range(3):
        issued = await client.post(
            "/api/v1/passes",
            json={"kind": "loyalty", "customer_external_id": f"crm-token-{number}"},
            headers=admin,
        )
        body = await issued.json()
        files = unpack(await (await client.get(path_of(body["apple"]["pkpass_url"]))).read())
        tokens.add(json.loads(files["pass.json"])["authenticationToken"])
    assert len(tokens) == 3


async def test_a_customer_keeps_one_loyalty_card_per_program(client, admin):
    first = await client.post(
        "/api/v1/passes", json={"kind": "loyalty", "customer_external_id": "crm-2"}, headers=admin
    )
    again = await client.post(
        "/api/v1/passes", json={"kind": "loyalty", "customer_external_id": "crm-2"}, headers=admin
    )
    assert first.status == 201
    assert again.status == 200
    assert (await first.json())["serial"] == (await again.json())["serial"]


async def test_coupon_pass_carries_its_offer_and_expiry(client, admin, tmp_path):
    issued = await client.post(
        "/api/v1/passes",
        json={
            "kind": "coupon",
            "customer_external_id": "crm-3",
            "coupon": {
                "title": "Winter sale",
                "discount": "20 %",
                "expires_at": "2027-01-31T23:00:00Z",
            },
        },
        headers=admin,
    )
    assert issued.status == 201
    body = await issued.json()
    download = await client.get(path_of(body["apple"]["pkpass_url"]))
    pass_json = verify_pkpass(await download.read(), CERTS / "wwdr-dev-ca.pem", tmp_path)
    assert "storeCard" not in pass_json
    assert pass_json["coupon"]["primaryFields"][0]["value"] == "20 %"
    assert pass_json["expirationDate"] == "2027-01-31T23:00:00+00:00"


async def test_coupon_without_title_is_refused_and_nothing_is_written(client, admin, container):
    response = await client.post(
        "/api/v1/passes",
        json={"kind": "coupon", "customer_external_id": "crm-4"},
        headers=admin,
    )
    assert response.status == 422
    problem = await response.json()
    assert problem["field"] == "coupon.title"
    assert await count_rows(container, "passes") == 0


async def test_pass_state_is_readable_by_serial(client, admin):
    issued = await issue_loyalty(client, admin, "c5")
    response = await client.get(f"/api/v1/passes/{issued['serial']}", headers=admin)
    assert response.status == 200
    state = await response.json()
    assert state["serial"] == issued["serial"]
    assert state["installs"] == {"apple": 0, "google": 0}
    assert state["last_updated"] is not None
    missing = await client.get("/api/v1/passes/0000000000000000000000000a", headers=admin)
    assert missing.status == 404


async def test_pkpass_downloads_with_an_api_key_too(client, admin):
    issued = await issue_loyalty(client, admin, "c6")
    with_key = await client.get(f"/api/v1/passes/{issued['serial']}/pass.pkpass", headers=admin)
    assert with_key.status == 200
    without_key = await client.get(f"/api/v1/passes/{issued['serial']}/pass.pkpass")
    assert without_key.status == 401


async def test_a_tampered_download_link_is_refused(client, admin):
    issued = await issue_loyalty(client, admin, "c7")
    path = path_of(issued["apple"]["pkpass_url"])
    serial, expires, mac = path.split("/")[2].split(".")
    forged_expiry = f"/add/{serial}.{int(expires) + 86400}.{mac}/pass.pkpass"
    response = await client.get(forged_expiry)
    assert response.status == 404
    assert (await response.json())["reason"] == "link_invalid"


async def test_an_expired_download_link_says_so(make_settings, aiohttp_client, admin):
    container = build_container(make_settings(link_ttl_days=1))
    await prepare_database(container)
    try:
        client = await aiohttp_client(create_app(container))
        issued = await issue_loyalty(client, admin, "c8")
        # A link made for a moment already past, with the service's own key.
        past = datetime.fromtimestamp(time.time() - 60, UTC)
        token = make_link_token(container.ctx.link_keys[0], issued["serial"], past)
        response = await client.get(f"/add/{token}/pass.pkpass")
        assert response.status == 404
        assert (await response.json())["reason"] == "link_expired"
    finally:
        if EXTERNAL_DATABASE:
            await empty_all_tables(container)
        await container.close()
