"""Passes list the program's stores as locations, so Wallet can show them near a store."""

from __future__ import annotations

import asyncio
import json

from tests.helpers import issue_loyalty, path_of, unpack

STORES = [
    ("berlin-mitte", "Berlin Mitte", 52.5200, 13.4050),
    ("hamburg", "Hamburg", 53.5511, 9.9937),
]


async def test_an_issued_pass_lists_the_programs_stores(client, admin):
    for store in STORES:
        await _add_store(client, admin, *store)
    issued = await issue_loyalty(client, admin, "located-1")
    download = await client.get(path_of(issued["apple"]["pkpass_url"]))
    document = json.loads(unpack(await download.read())["pass.json"])
    listed = {
        (round(loc["latitude"], 4), round(loc["longitude"], 4)) for loc in document["locations"]
    }
    assert listed == {(lat, lon) for _, _, lat, lon in STORES}
    assert all(loc.get("relevantText") for loc in document["locations"])


async def _add_store(client, admin, store_id, name, latitude, longitude):
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


async def test_a_new_store_reaches_passes_already_on_phones(client, admin):
    from tests.conformance.test_apple_web_service import Wallet

    await _add_store(client, admin, *STORES[0])
    wallet = Wallet(client, admin)
    document = await wallet.pass_json(await issue_loyalty(client, admin, "located-2"))
    assert len(document["locations"]) == 1
    assert await wallet.register(document) == 201
    _, before = await wallet.changed(document)
    assert before is not None

    await _add_store(client, admin, *STORES[1])
    for _ in range(100):  # the background refresh re-renders the program's passes
        _, after = await wallet.changed(document, before["lastUpdated"])
        if after is not None:
            break
        await asyncio.sleep(0.05)
    assert after is not None and after["serialNumbers"] == [document["serialNumber"]]
    latest = await client.get(
        f"/apple/v1/passes/{document['passTypeIdentifier']}/{document['serialNumber']}",
        headers=wallet.auth(document),
    )
    locations = json.loads(unpack(await latest.read())["pass.json"])["locations"]
    assert {round(loc["latitude"], 4) for loc in locations} == {lat for _, _, lat, _ in STORES}


async def test_a_store_change_does_not_push_passes_whose_locations_stay(container, client, admin):
    from walletsvc.services.program_refresh import refresh_pending_programs

    for index in range(10):  # a pass lists at most 10 stores
        await _add_store(
            client, admin, f"store-{index}", f"Store {index}", 52.5 + index / 100, 13.4
        )
    issued = await issue_loyalty(client, admin, "located-3")
    await refresh_pending_programs(container.ctx)
    async with container.ctx.uow() as uow:
        before = await uow.passes.get(issued["serial"])
    # Without a home store a pass lists the first 10 stores by id: this one is not among them.
    await _add_store(client, admin, "zz-far-away", "Far away", 48.1, 11.6)
    async with container.ctx.uow() as uow:
        assert [p for p, _ in await uow.programs.needing_refresh()] == ["demo"]
    await refresh_pending_programs(container.ctx)
    async with container.ctx.uow() as uow:
        after = await uow.passes.get(issued["serial"])
        assert await uow.programs.needing_refresh() == ()
    assert before is not None and after is not None
    assert after.version == before.version  # same content: no new version, no push
