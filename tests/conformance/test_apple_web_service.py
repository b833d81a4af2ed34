"""Apple's PassKit web service, row by row of PROTOCOLS.md section 2.

Every call is made as Wallet makes it: the token comes out of the downloaded pass.json,
paths are relative to the pass's webServiceURL.
"""

from __future__ import annotations

import asyncio
import json
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from sqlalchemy import text

from tests.helpers import path_of, unpack

DEVICE = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
OTHER_DEVICE = "ffeeddccbbaa99887766554433221100"
TOKEN = "ab" * 32
NEW_TOKEN = "cd" * 32


class Wallet:
    """Plays Apple Wallet on one device against the service under test."""

    def __init__(self, client: Any, admin: dict[str, str]) -> None:
        self.client = client
        self.admin = admin

    async def pass_json(self, issued: dict[str, Any]) -> dict[str, Any]:
        download = await self.client.get(path_of(issued["apple"]["pkpass_url"]))
        assert download.status == 200
        document: dict[str, Any] = json.loads(unpack(await download.read())["pass.json"])
        return document

    async def coupon(self, external_id: str = "c-1", title: str = "10% off") -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/passes",
            json={
                "kind": "coupon",
                "customer_external_id": external_id,
                "coupon": {"title": title, "discount": "10%"},
            },
            headers=self.admin,
        )
        assert response.status == 201, await response.text()
        issued: dict[str, Any] = await response.json()
        return issued

    @staticmethod
    def auth(document: dict[str, Any], token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"ApplePass {token or document['authenticationToken']}"}

    @staticmethod
    def registration(document: dict[str, Any], device: str = DEVICE) -> str:
        return (
            f"/apple/v1/devices/{device}/registrations/"
            f"{document['passTypeIdentifier']}/{document['serialNumber']}"
        )

    async def register(
        self, document: dict[str, Any], device: str = DEVICE, push_token: str = TOKEN
    ) -> int:
        response = await self.client.post(
            self.registration(document, device),
            json={"pushToken": push_token},
            headers=self.auth(document),
        )
        return response.status

    async def changed(
        self, document: dict[str, Any], tag: str | None = None, device: str = DEVICE
    ) -> tuple[int, dict[str, Any] | None]:
        query = f"?passesUpdatedSince={tag}" if tag is not None else ""
        response = await self.client.get(
            f"/apple/v1/devices/{device}/registrations/{document['passTypeIdentifier']}{query}"
        )
        body = await response.json() if response.status == 200 else None
        return response.status, body

    async def change_coupon(self, serial: str, **coupon: Any) -> dict[str, Any]:
        response = await self.client.patch(
            f"/api/v1/passes/{serial}", json={"coupon": coupon}, headers=self.admin
        )
        assert response.status == 200, await response.text()
        changed: dict[str, Any] = await response.json()
        return changed


async def _wallet_with_pass(client: Any, admin: dict[str, str]) -> tuple[Wallet, dict[str, Any]]:
    wallet = Wallet(client, admin)
    return wallet, await wallet.pass_json(await wallet.coupon())


async def _outbox_types(container: Any) -> list[str]:
    async with container.engine.connect() as connection:
        rows = await connection.execute(text("SELECT type FROM outbox ORDER BY seq"))
        return [row[0] for row in rows]


# --- register -------------------------------------------------------------------------


async def test_first_registration_answers_201_and_a_repeat_answers_200(client, admin):
    wallet, document = await _wallet_with_pass(client, admin)
    assert await wallet.register(document) == 201
    assert await wallet.register(document) == 200


async def test_a_new_push_token_replaces_the_old_one(client, admin, container):
    wallet, document = await _wallet_with_pass(client, admin)
    assert await wallet.register(document, push_token=TOKEN) == 201
    assert await wallet.register(document, push_token=NEW_TOKEN) == 200
    async with container.engine.connect() as connection:
        tokens = (await connection.execute(text("SELECT push_token FROM apple_devices"))).all()
    assert [row[0] for row in tokens] == [NEW_TOKEN]


async def test_registration_with_a_wrong_token_is_refused(client, admin):
    wallet, document = await _wallet_with_pass(client, admin)
    response = await client.post(
        wallet.registration(document),
        json={"pushToken": TOKEN},
        headers=wallet.auth(document, token="x" * 43),
    )
    assert response.status == 401


async def test_a_valid_token_of_another_pass_opens_nothing(client, admin):
    wallet = Wallet(client, admin)
    mine = await wallet.pass_json(await wallet.coupon("c-1"))
    theirs = await wallet.pass_json(await wallet.coupon("c-2"))
    response = await client.post(
        wallet.registration(mine),
        json={"pushToken": TOKEN},
        headers=wallet.auth(theirs),
    )
    assert response.status == 401


async def test_the_token_is_bound_to_the_pass_type_too(client, admin):
    wallet, document = await _wallet_with_pass(client, admin)
    other_type = dict(document, passTypeIdentifier="pass.com.example.other")
    response = await client.post(
        wallet.registration(other_type), json={"pushToken": TOKEN}, headers=wallet.auth(document)
    )
    assert response.status == 401


async def test_an_unknown_serial_looks_like_a_wrong_token(client, admin):
    wallet, document = await _wallet_with_pass(client, admin)
    unknown = dict(document, serialNumber="0" * 26)
    for headers in (wallet.auth(document), {}):
        response = await client.post(
            wallet.registration(unknown), json={"pushToken": TOKEN}, headers=headers
        )
        assert response.status == 401


async def test_a_bad_push_token_is_refused_only_after_the_caller_is_known(client, admin):
    wallet, document = await _wallet_with_pass(client, admin)
    path = wallet.registration(document)
    anonymous = await client.post(path, json={"pushToken": "nope"})
    assert anonymous.status == 401
    response = await client.post(path, json={"pushToken": "nope"}, headers=wallet.auth(document))
    assert response.status == 422
    problem = await response.json()
    assert problem["field"] == "pushToken"
    garbage = await client.post(path, data=b"{not json", headers=wallet.auth(document))
    assert garbage.status == 422


async def test_registering_and_unregistering_emit_install_events_once(client, admin, container):
    wallet, document = await _wallet_with_pass(client, admin)
    await wallet.register(document)
    await wallet.register(document)
    path = wallet.registration(document)
    await client.delete(path, headers=wallet.auth(document))
    await client.delete(path, headers=wallet.auth(document))
    types = await _outbox_types(container)
    installed = [t for t in types if t.endswith("pass_installed.v1")]
    removed = [t for t in types if t.endswith("pass_removed.v1")]
    assert len(installed) == 1 and len(removed) == 1
    async with container.engine.connect() as connection:
        data = (
            await connection.execute(
                text("SELECT data FROM outbox WHERE type LIKE '%pass_installed%'")
            )
        ).scalar_one()
    data = json.loads(data) if isinstance(data, str) else data
    assert data["platform"] == "apple" and data["serial"] == document["serialNumber"]


# --- unregister -----------------------------------------------------------------------


async def test_unregistering_answers_200_also_when_already_gone(client, admin):
    wallet, document = await _wallet_with_pass(client, admin)
    await wallet.register(document)
    path = wallet.registration(document)
    assert (await client.delete(path, headers=wallet.auth(document))).status == 200
    assert (await client.delete(path, headers=wallet.auth(document))).status == 200
    assert (await wallet.changed(document))[0] == 204


async def test_unregistering_with_a_wrong_token_is_refused(client, admin):
    wallet, document = await _wallet_with_pass(client, admin)
    await wallet.register(document)
    response = await client.delete(
        wallet.registration(document), headers=wallet.auth(document, "y" * 43)
    )
    assert response.status == 401
    assert (await wallet.changed(document))[0] == 200


async def test_the_last_unregistration_forgets_the_push_token(client, admin, container):
    wallet, document = await _wallet_with_pass(client, admin)
    await wallet.register(document)
    await client.delete(wallet.registration(document), headers=wallet.auth(document))
    async with container.engine.connect() as connection:
        left = (await connection.execute(text("SELECT count(*) FROM apple_devices"))).scalar()
    assert left == 0


# --- what changed ---------------------------------------------------------------------


async def test_without_a_tag_every_registered_pass_is_listed(client, admin):
    wallet = Wallet(client, admin)
    first = await wallet.pass_json(await wallet.coupon("c-1"))
    second = await wallet.pass_json(await wallet.coupon("c-2"))
    await wallet.register(first)
    await wallet.register(second)
    status, body = await wallet.changed(first)
    assert status == 200 and body is not None
    assert sorted(body["serialNumbers"]) == sorted([first["serialNumber"], second["serialNumber"]])
    assert isinstance(body["lastUpdated"], str)


async def test_an_unknown_device_or_no_change_answers_204(client, admin):
    wallet, document = await _wallet_with_pass(client, admin)
    assert (await wallet.changed(document, device=OTHER_DEVICE))[0] == 204
    await wallet.register(document)
    _, body = await wallet.changed(document)
    assert body is not None
    assert (await wallet.changed(document, tag=body["lastUpdated"]))[0] == 204


async def test_every_pass_changed_after_the_tag_is_listed_and_the_tag_moves(client, admin):
    wallet = Wallet(client, admin)
    passes = [await wallet.coupon(f"c-{n}") for n in range(3)]
    documents = [await wallet.pass_json(issued) for issued in passes]
    for document in documents:
        await wallet.register(document)
    _, body = await wallet.changed(documents[0])
    assert body is not None
    tag = body["lastUpdated"]
    # Two passes change one after the other: both must come back, not only the newest.
    await wallet.change_coupon(passes[0]["serial"], title="20% off")
    await wallet.change_coupon(passes[2]["serial"], title="30% off")
    status, body = await wallet.changed(documents[0], tag=tag)
    assert status == 200 and body is not None
    assert sorted(body["serialNumbers"]) == sorted([passes[0]["serial"], passes[2]["serial"]])
    assert int(body["lastUpdated"]) > int(tag)
    assert (await wallet.changed(documents[0], tag=body["lastUpdated"]))[0] == 204


async def test_a_change_that_shows_nothing_new_is_not_reported(client, admin):
    wallet = Wallet(client, admin)
    issued = await wallet.coupon()
    document = await wallet.pass_json(issued)
    await wallet.register(document)
    _, body = await wallet.changed(document)
    assert body is not None
    same = await wallet.change_coupon(issued["serial"], title="10% off")
    assert same["version"] == 1
    assert (await wallet.changed(document, tag=body["lastUpdated"]))[0] == 204


async def test_a_tag_this_service_never_issued_lists_everything_instead_of_failing(client, admin):
    wallet, document = await _wallet_with_pass(client, admin)
    await wallet.register(document)
    status, body = await wallet.changed(document, tag="2024-05-01T10:00:00Z")
    assert status == 200 and body is not None
    assert body["serialNumbers"] == [document["serialNumber"]]


async def test_what_changed_never_answers_401(client, admin):
    wallet, document = await _wallet_with_pass(client, admin)
    await wallet.register(document)
    response = await client.get(
        f"/apple/v1/devices/{DEVICE}/registrations/{document['passTypeIdentifier']}",
        headers={"Authorization": "ApplePass wrong-token-wrong-token"},
    )
    assert response.status == 200


# --- latest pass ----------------------------------------------------------------------


def _latest(document: dict[str, Any]) -> str:
    return f"/apple/v1/passes/{document['passTypeIdentifier']}/{document['serialNumber']}"


async def test_the_latest_pass_carries_its_real_last_change_as_an_http_date(client, admin):
    wallet, document = await _wallet_with_pass(client, admin)
    response = await client.get(_latest(document), headers=wallet.auth(document))
    assert response.status == 200
    assert response.content_type == "application/vnd.apple.pkpass"
    last_modified = parsedate_to_datetime(response.headers["Last-Modified"])
    served = json.loads(unpack(await response.read())["pass.json"])
    assert served["serialNumber"] == document["serialNumber"]
    state = await (
        await client.get(f"/api/v1/passes/{document['serialNumber']}", headers=wallet.admin)
    ).json()
    assert last_modified.isoformat().startswith(state["last_updated"][:19])


async def test_if_modified_since_not_older_than_the_pass_answers_304(client, admin):
    wallet, document = await _wallet_with_pass(client, admin)
    first = await client.get(_latest(document), headers=wallet.auth(document))
    stamp = first.headers["Last-Modified"]
    unchanged = await client.get(
        _latest(document), headers={**wallet.auth(document), "If-Modified-Since": stamp}
    )
    assert unchanged.status == 304
    assert await unchanged.read() == b""
    older = format_datetime(parsedate_to_datetime(stamp).replace(year=2020), usegmt=True)
    stale = await client.get(
        _latest(document), headers={**wallet.auth(document), "If-Modified-Since": older}
    )
    assert stale.status == 200


async def test_a_change_within_the_same_second_still_gets_a_newer_date(client, admin):
    wallet = Wallet(client, admin)
    issued = await wallet.coupon()
    document = await wallet.pass_json(issued)
    first = await client.get(_latest(document), headers=wallet.auth(document))
    stamp = first.headers["Last-Modified"]
    await wallet.change_coupon(issued["serial"], title="15% off")
    after = await client.get(
        _latest(document), headers={**wallet.auth(document), "If-Modified-Since": stamp}
    )
    assert after.status == 200
    assert parsedate_to_datetime(after.headers["Last-Modified"]) > parsedate_to_datetime(stamp)
    assert b"15% off" in unpack(await after.read())["pass.json"]


async def test_head_answers_like_get_without_a_body(client, admin):
    wallet, document = await _wallet_with_pass(client, admin)
    response = await client.head(_latest(document), headers=wallet.auth(document))
    assert response.status == 200
    assert "Last-Modified" in response.headers
    assert await response.read() == b""


async def test_the_latest_pass_needs_its_own_token(client, admin):
    wallet = Wallet(client, admin)
    mine = await wallet.pass_json(await wallet.coupon("c-1"))
    theirs = await wallet.pass_json(await wallet.coupon("c-2"))
    assert (await client.get(_latest(mine), headers=wallet.auth(theirs))).status == 401
    assert (await client.get(_latest(mine))).status == 401
    unknown = dict(mine, serialNumber="0" * 26)
    assert (await client.get(_latest(unknown), headers=wallet.auth(mine))).status == 401


async def test_many_devices_fetching_one_update_cost_one_signature(client, admin, container):
    wallet, document = await _wallet_with_pass(client, admin)
    cache = container.ctx.pass_cache
    misses_before = cache.misses
    responses = await asyncio.gather(
        *(client.get(_latest(document), headers=wallet.auth(document)) for _ in range(20))
    )
    bodies = {await response.read() for response in responses}
    assert all(response.status == 200 for response in responses)
    assert len(bodies) == 1
    # The bundle behind the download link was signed already; the devices add no signing.
    assert cache.misses == misses_before


# --- log ------------------------------------------------------------------------------


async def test_wallet_logs_are_kept_as_bounded_records(client, container):
    long = "x" * 5000
    response = await client.post(
        "/apple/v1/log", json={"logs": ["Web service error for pass: 401", long, "a\x00b"]}
    )
    assert response.status == 200
    async with container.engine.connect() as connection:
        messages = [
            row[0]
            for row in await connection.execute(text("SELECT message FROM apple_logs ORDER BY id"))
        ]
    assert messages[0] == "Web service error for pass: 401"
    assert len(messages[1]) == 1000
    assert "\x00" not in messages[2]


async def test_a_malformed_log_body_is_refused_and_nothing_is_kept(client, container):
    for body in (b"{oops", b'{"logs": "one string"}', b'{"logs": [1, 2]}'):
        response = await client.post(
            "/apple/v1/log", data=body, headers={"Content-Type": "application/json"}
        )
        assert response.status == 422
        assert response.content_type == "application/problem+json"
    async with container.engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM apple_logs"))).scalar() == 0
