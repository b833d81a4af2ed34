"""Logs never carry secrets, tokens, emails, phone numbers or coordinates.

A day in the life of the service runs with every log line captured (debug included):
a customer with an email and a phone, a pass issued, downloaded and registered on a
device, scans signed with a terminal secret, a geofence visit, a failed signature and
an erasure. Then the captured output is searched for each secret and personal value.
"""

from __future__ import annotations

import base64

from tests.conformance.test_apple_web_service import DEVICE, TOKEN, Wallet
from tests.conftest import ADMIN_KEY
from tests.e2e.test_geofence import INSIDE, report
from tests.e2e.test_scans import _till
from tests.helpers import issue_loyalty

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
