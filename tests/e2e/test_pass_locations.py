"""Passes list the program's stores as locations, so Wallet can show them near a store."""

from __future__ import annotations

import json

from tests.helpers import issue_loyalty, path_of, unpack

STORES = [
    ("berlin-mitte", "Berlin Mitte", 52.5200, 13.4050),
    ("hamburg", "Hamburg", 53.5511, 9.9937),
]


async def test_an_issued_pass_lists_the_programs_stores(client, admin):
    for store_id, name, latitude, longitude in STORES:
        response = await client.post(
            "/api/v1/stores",
            json={
                "id": store_id,
                "program": "demo",
                "name": name,
                "latitude": latitude,
                "longitude": longitude,
                "radius_m": 150,
            },
            headers=admin,
        )
        assert response.status == 201, await response.text()
    issued = await issue_loyalty(client, admin, "located-1")
    download = await client.get(path_of(issued["apple"]["pkpass_url"]))
    document = json.loads(unpack(await download.read())["pass.json"])
    listed = {
        (round(loc["latitude"], 4), round(loc["longitude"], 4)) for loc in document["locations"]
    }
    assert listed == {(lat, lon) for _, _, lat, lon in STORES}
    assert all(loc.get("relevantText") for loc in document["locations"])
