"""Logs never carry secrets, tokens, emails, phone numbers or coordinates.

A day in the life of the service runs with every log line captured (debug included):
a customer with an email and a phone, a pass issued, downloaded and registered on a
device, scans signed with a terminal secret, a geofence visit, a failed signature and
an erasure. Then the captured output is searched for each secret and personal value.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

from tests.conformance.test_apple_web_service import DEVICE, TOKEN, Wallet
from tests.conformance.test_pos_adapters import SHOPIFY_CUSTOMER_ID
from tests.conftest import ADMIN_KEY
from tests.e2e.test_access import make_key
from tests.e2e.test_geofence import INSIDE, RADAR_TOKEN, report
from tests.e2e.test_pos_webhooks import SHOPIFY_KEY, _order
from tests.e2e.test_refusals import ATTACKS, _shopify, _shopify_post, world  # noqa: F401
from tests.e2e.test_scans import _till
from tests.helpers import issue_loyalty
from walletsvc.services.pos_webhooks import process_pending_webhooks
from walletsvc.web.keys import CONTAINER

EMAIL = "lena.mueller@example.org"
PHONE = "+49 151 23456789"


async def test_a_busy_day_leaves_no_secret_or_personal_value_in_the_logs(client, admin, capfd):
    till = await _till(client, admin)  # also adds the store "berlin"
    response = await client.post(
        "/api/v1/customers",
        json={
            "external_id": "crm-lena",
            "email": EMAIL,
            "phone": PHONE,
            "consents": {"location": True, "marketing": True},
        },
        headers=admin,
    )
    customer_id = (await response.json())["id"]
    issued = await issue_loyalty(client, admin, "crm-lena")
    wallet = Wallet(client, admin)
    document = await wallet.pass_json(issued)
    assert await wallet.register(document) == 201
    barcode = document["barcodes"][0]["message"]
    assert (await till.scan(barcode, "purchase", amount="25.00"))[0] == 200
    assert (await till.scan(barcode, key=b"not the terminal's secret"))[0] == 401
    status, answer = await report(client, admin, customer_id, store_id="berlin")
    assert status == 202 and answer["accepted"], answer
    assert (await client.get(f"/apple/v1/passes/{document['passTypeIdentifier']}/x")).status
    assert (await client.delete(f"/api/v1/customers/{customer_id}", headers=admin)).status == 202

    captured = capfd.readouterr()
    logs = captured.out + captured.err
    assert "http.request" in logs  # the capture did see the service's logs
    link_token = issued["add_url"].rsplit("/", 1)[-1]
    secrets = {
        "admin key": ADMIN_KEY,
        "terminal secret": base64.b64encode(till.key).decode(),
        "terminal key, hex": till.key.hex(),
        "pass authentication token": document["authenticationToken"],
        "push token": TOKEN,
        "device library id": DEVICE,
        "link token": link_token,
        "barcode": barcode,
        "email": EMAIL,
        "email's local part": "lena.mueller",
        "phone": PHONE,
        "phone digits": "23456789",
        "latitude": f"{INSIDE[0]}",
        "longitude": f"{INSIDE[1]}",
    }
    leaked = [name for name, value in secrets.items() if value in logs]
    assert leaked == [], f"found in the logs: {leaked}"


async def test_vendor_traffic_and_every_attack_leave_no_secret_in_the_logs(world, capfd):  # noqa: F811
    """Shopify, Radar and Google traffic, good and forged, with personal data in the bodies."""
    w = world
    key_headers = await make_key(w.client, w.admin, ["passes:read"])
    api_key = key_headers["Authorization"].removeprefix("Bearer ")
    # A sale whose body carries the buyer's email, phone and address, as Shopify sends it.
    order = _order(3001, w.barcode)
    order |= {
        "email": EMAIL,
        "phone": PHONE,
        "customer": {"id": SHOPIFY_CUSTOMER_ID, "email": EMAIL, "phone": PHONE},
        "shipping_address": {"address1": "Invalidenstrasse 117", "phone": PHONE},
    }
    body = json.dumps(order).encode()
    headers = _shopify(body, **{"X-Shopify-Webhook-Id": "wh-privacy"})
    assert (await _shopify_post(w, body, headers))[0] == 202
    await process_pending_webhooks(w.client.server.app[CONTAINER].ctx)
    for attack in ATTACKS:
        status, _ = await attack.run(w)
        assert status == attack.status, attack.run.__name__

    captured = capfd.readouterr()
    logs = captured.out + captured.err
    assert "pos.webhook.rejected" in logs  # the capture saw the refusals being logged
    account_file = w.client.server.app[CONTAINER].settings.google.service_account_file
    service_account = json.loads(await asyncio.to_thread(Path(account_file).read_text))
    private_key_body = "".join(service_account["private_key"].splitlines()[1:3])
    secrets = {
        "API key": api_key,
        "API key secret": api_key.rsplit(".", 1)[-1],
        "Shopify signing key": SHOPIFY_KEY,
        "Radar token": RADAR_TOKEN,
        "Google private key": private_key_body,
        "terminal secret": base64.b64encode(w.till.key).decode(),
        "pass authentication token": w.documents[0]["authenticationToken"],
        "other pass's token": w.documents[1]["authenticationToken"],
        "push token": "f" * 64,
        "barcode": w.barcode,
        "email": EMAIL,
        "phone digits": "23456789",
        "street": "Invalidenstrasse",
        "vendor customer id": str(SHOPIFY_CUSTOMER_ID),
    }
    leaked = [name for name, value in secrets.items() if value in logs]
    assert leaked == [], f"found in the logs: {leaked}"
