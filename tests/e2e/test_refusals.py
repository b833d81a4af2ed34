"""Replays and forgeries: each is refused with its status and reason, and counted on /metrics.

One table: an attack on a surface, the answer it must get, and the series of
`walletsvc_refusals_total{surface, reason}` (or, for a repeat the service answers as
the first time, `walletsvc_replays_answered_total{surface}`) that must move by one.
The metrics are read the way an operator's Prometheus reads them: GET /metrics with a
metrics:read key bound to no program.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client.parser import text_string_to_metric_families

from tests.conformance.test_apple_web_service import Wallet
from tests.conftest import EXTERNAL_DATABASE, empty_all_tables
from tests.e2e.google_setup import ISSUER, PROGRAM, create_program, service_account_for
from tests.e2e.test_access import make_key
from tests.e2e.test_geofence import RADAR_TOKEN, add_customer, add_store, radar_event
from tests.e2e.test_pos_webhooks import SHOPIFY_KEY, _order, _shopify_terminal
from tests.e2e.test_scans import Till, _till
from tests.fakes.google import FakeGoogleServer
from tests.fakes.google_callbacks import CallbackSigner
from tests.helpers import issue_loyalty
from walletsvc.bootstrap import build_container, prepare_database
from walletsvc.intake.standard_webhooks import signature_headers
from walletsvc.web.app import create_app

REFUSALS = "walletsvc_refusals_total"
REPLAYS = "walletsvc_replays_answered_total"


@dataclass
class World:
    client: Any
    admin: dict[str, str]
    till: Till
    barcode: str
    signer: CallbackSigner
    google_serial: str
    wallet: Wallet
    documents: list[dict[str, Any]]
    visitor: str


@pytest.fixture
async def world(
    make_settings: Callable[..., Any], tmp_path: Path, aiohttp_client: Any, admin: dict[str, str]
) -> AsyncIterator[World]:
    """A service with every surface live: a till, a Shopify terminal, Radar, Google callbacks."""
    signer = CallbackSigner()
    roots = signer.write_root_keys(tmp_path / "google-root-keys.json")
    async with FakeGoogleServer(public_key_pem=b"") as google:
        settings = make_settings(
            google={
                "service_account_file": service_account_for(google, tmp_path),
                "issuer_id": ISSUER,
                "api_base_url": google.api_url,
                "root_keys_file": roots,
            },
            geofence={"radar_token": RADAR_TOKEN},
        )
        container = build_container(settings)
        await prepare_database(container)
        try:
            client = await aiohttp_client(create_app(container))
            till = await _till(client, admin)
            await _shopify_terminal(client, admin)
            wallet = Wallet(client, admin)
            documents = [
                await wallet.pass_json(await issue_loyalty(client, admin, external_id))
                for external_id in ("crm-1", "crm-2")
            ]
            await add_store(client, admin)
            visitor = await add_customer(client, admin)
            await create_program(client, admin)
            response = await client.post(
                "/api/v1/passes",
                json={"program": PROGRAM, "kind": "loyalty", "customer_external_id": "crm-9"},
                headers=admin,
            )
            yield World(
                client=client,
                admin=admin,
                till=till,
                barcode=documents[0]["barcodes"][0]["message"],
                signer=signer,
                google_serial=(await response.json())["serial"],
                wallet=wallet,
                documents=documents,
                visitor=visitor,
            )
        finally:
            if EXTERNAL_DATABASE is not None:
                await empty_all_tables(container)
            await container.close()


# The attacks. Each returns the HTTP status and JSON body of the last answer it got.

Answer = tuple[int, dict[str, Any]]


async def _json(response: Any) -> Answer:
    return response.status, await response.json()


async def scan_bad_signature(w: World) -> Answer:
    return await w.till.scan(w.barcode, key=b"k" * 32)


async def scan_stale_timestamp(w: World) -> Answer:
    return await w.till.scan(w.barcode, sent_at=datetime.now(UTC) - timedelta(hours=1))


async def scan_tampered_body(w: World) -> Answer:
    signed = json.dumps(
        {
            "scan_id": "s-tamper",
            "barcode": w.barcode,
            "action": "purchase",
            "occurred_at": "2026-11-22T10:00:00Z",
            "amount": {"value": "1.00", "currency": "EUR"},
        }
    ).encode()
    headers = signature_headers([w.till.key], "msg_tamper", datetime.now(UTC), signed)
    headers |= {"X-Terminal-Id": w.till.terminal_id, "Content-Type": "application/json"}
    sent = signed.replace(b'"1.00"', b'"9999.00"')
    return await _json(await w.client.post("/api/v1/scans", data=sent, headers=headers))


async def scan_unknown_terminal(w: World) -> Answer:
    stranger = Till(w.client, "till-nobody", "whsec_" + base64.b64encode(b"s" * 32).decode())
    return await stranger.scan(w.barcode)


async def scan_forged_barcode(w: World) -> Answer:
    prefix, key_id, serial, mac = w.barcode.split(".")
    forged_mac = ("A" if mac[0] != "A" else "B") + mac[1:]
    return await w.till.scan(".".join([prefix, key_id, serial, forged_mac]))


async def scan_barcode_of_a_made_up_serial(w: World) -> Answer:
    prefix, key_id, _, mac = w.barcode.split(".")
    return await w.till.scan(".".join([prefix, key_id, "a" * 26, mac]))


async def scan_replayed(w: World) -> Answer:
    first = await w.till.scan(w.barcode, scan_id="s-replay")
    again = await w.till.scan(w.barcode, scan_id="s-replay")
    assert first == again
    return again


async def scan_id_reused_for_another_scan(w: World) -> Answer:
    await w.till.scan(w.barcode, scan_id="s-reuse")
    return await w.till.scan(w.barcode, "purchase", scan_id="s-reuse", amount="5.00")


def _shopify(body: bytes, key: str = SHOPIFY_KEY, **changes: str) -> dict[str, str]:
    signature = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/paid",
        "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Webhook-Id": "wh-1",
        "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
        **changes,
    }


async def _shopify_post(w: World, body: bytes, headers: dict[str, str]) -> Answer:
    url = "/webhooks/pos/shopify/shop-1"
    return await _json(await w.client.post(url, data=body, headers=headers))


async def pos_bad_signature(w: World) -> Answer:
    body = json.dumps(_order(1001, w.barcode)).encode()
    return await _shopify_post(w, body, _shopify(body, key="shpss_not_the_key"))


async def pos_tampered_body(w: World) -> Answer:
    body = json.dumps(_order(1002, w.barcode)).encode()
    headers = _shopify(body)
    return await _shopify_post(w, body.replace(b"42.50", b"4250.00"), headers)


async def pos_stale_timestamp(w: World) -> Answer:
    body = json.dumps(_order(1003, w.barcode)).encode()
    old = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    return await _shopify_post(w, body, _shopify(body, **{"X-Shopify-Triggered-At": old}))


async def pos_redelivered(w: World) -> Answer:
    body = json.dumps(_order(1004, w.barcode)).encode()
    first = await _shopify_post(w, body, _shopify(body, **{"X-Shopify-Webhook-Id": "wh-4"}))
    assert first == (202, {"status": "accepted"})
    return await _shopify_post(w, body, _shopify(body, **{"X-Shopify-Webhook-Id": "wh-4"}))


async def _radar(w: World, events: list[Any], signing_id: str, token: str = RADAR_TOKEN) -> Answer:
    signature = hmac.new(token.encode(), signing_id.encode(), hashlib.sha1).hexdigest()
    response = await w.client.post(
        "/webhooks/geofence/radar",
        data=json.dumps({"events": events}).encode(),
        headers={
            "Content-Type": "application/json",
            "X-Radar-Signing-Id": signing_id,
            "X-Radar-Signature": signature,
        },
    )
    return await _json(response)


async def radar_bad_signature(w: World) -> Answer:
    return await _radar(w, [radar_event(w.visitor)], "sig-bad", token="not-the-token")


async def radar_stale_timestamp(w: World) -> Answer:
    old = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    event = radar_event(w.visitor, createdAt=old, actualCreatedAt=old)
    return await _radar(w, [event], "sig-stale")


async def radar_signature_reused_for_another_body(w: World) -> Answer:
    assert (await _radar(w, [radar_event(w.visitor)], "sig-reuse"))[0] == 200
    exit_event = radar_event(w.visitor, type="user.exited_geofence")
    return await _radar(w, [exit_event], "sig-reuse")


async def radar_retried(w: World) -> Answer:
    event = radar_event(w.visitor)
    first = await _radar(w, [event], "sig-retry")
    again = await _radar(w, [event], "sig-retry")
    assert first == again
    return again


async def _google(w: World, envelope: dict[str, Any]) -> Answer:
    body = json.dumps(envelope).encode()
    headers = {"Content-Type": "application/json"}
    return await _json(await w.client.post("/google/callback", data=body, headers=headers))


def _ids(w: World) -> dict[str, str]:
    return {"object_id": f"{ISSUER}.{w.google_serial}", "class_id": f"{ISSUER}.{PROGRAM}"}


async def google_forged_root(w: World) -> Answer:
    root = ec.generate_private_key(ec.SECP256R1())
    return await _google(w, w.signer.envelope(recipient=ISSUER, root=root, **_ids(w)))


async def google_tampered_message(w: World) -> Answer:
    envelope = w.signer.envelope(recipient=ISSUER, **_ids(w))
    envelope["signedMessage"] = envelope["signedMessage"].replace('"save"', '"del"')
    return await _google(w, envelope)


async def google_redelivered(w: World) -> Answer:
    envelope = w.signer.envelope(recipient=ISSUER, **_ids(w))
    assert (await _google(w, envelope))[0] == 200
    return await _google(w, envelope)


async def google_nonce_reused_for_another_message(w: World) -> Answer:
    saved = w.signer.envelope(recipient=ISSUER, nonce="reused-nonce", **_ids(w))
    assert (await _google(w, saved))[0] == 200
    deleted = w.signer.envelope(recipient=ISSUER, event="del", nonce="reused-nonce", **_ids(w))
    return await _google(w, deleted)


async def apple_token_of_another_pass(w: World) -> Answer:
    mine, theirs = w.documents
    url = f"/apple/v1/passes/{theirs['passTypeIdentifier']}/{theirs['serialNumber']}"
    return await _json(await w.client.get(url, headers=w.wallet.auth(mine)))


async def apple_register_with_another_pass_token(w: World) -> Answer:
    mine, theirs = w.documents
    response = await w.client.post(
        w.wallet.registration(theirs),
        json={"pushToken": "f" * 64},
        headers=w.wallet.auth(mine),
    )
    return await _json(response)


async def api_no_credentials(w: World) -> Answer:
    return await _json(await w.client.get("/api/v1/programs"))


async def api_wrong_key(w: World) -> Answer:
    headers = {"Authorization": "Bearer wsk_AAAAAAAAAAAA.not-the-secret"}
    return await _json(await w.client.get("/api/v1/programs", headers=headers))


async def api_key_without_the_scope(w: World) -> Answer:
    headers = await make_key(w.client, w.admin, ["passes:read"])
    return await _json(await w.client.get("/api/v1/programs", headers=headers))


@dataclass(frozen=True)
class Attack:
    run: Callable[[World], Awaitable[Answer]]
    status: int
    reason: str | None  # None: answered as the first time (a 2xx), counted as a replay
    surface: str


ATTACKS = [
    Attack(scan_bad_signature, 401, "bad_signature", "scan"),
    Attack(scan_stale_timestamp, 401, "stale_timestamp", "scan"),
    Attack(scan_tampered_body, 401, "bad_signature", "scan"),
    Attack(scan_unknown_terminal, 401, "bad_signature", "scan"),
    Attack(scan_forged_barcode, 422, "barcode_forged", "scan"),
    Attack(scan_barcode_of_a_made_up_serial, 422, "barcode_forged", "scan"),
    Attack(scan_replayed, 200, None, "scan"),
    Attack(scan_id_reused_for_another_scan, 409, "scan_id_reused", "scan"),
    Attack(pos_bad_signature, 401, "bad_signature", "pos_webhook"),
    Attack(pos_tampered_body, 401, "bad_signature", "pos_webhook"),
    Attack(pos_stale_timestamp, 401, "stale_timestamp", "pos_webhook"),
    Attack(pos_redelivered, 202, None, "pos_webhook"),
    Attack(radar_bad_signature, 401, "bad_signature", "geofence_webhook"),
    Attack(radar_stale_timestamp, 401, "stale_timestamp", "geofence_webhook"),
    Attack(radar_signature_reused_for_another_body, 401, "signature_reused", "geofence_webhook"),
    Attack(radar_retried, 200, None, "geofence_webhook"),
    Attack(google_forged_root, 401, "intermediate_signature", "google_callback"),
    Attack(google_tampered_message, 401, "message_signature", "google_callback"),
    Attack(google_redelivered, 200, None, "google_callback"),
    Attack(google_nonce_reused_for_another_message, 409, "callback_replayed", "google_callback"),
    Attack(apple_token_of_another_pass, 401, "bad_token", "apple_web_service"),
    Attack(apple_register_with_another_pass_token, 401, "bad_token", "apple_web_service"),
    Attack(api_no_credentials, 401, "missing_credentials", "api_auth"),
    Attack(api_wrong_key, 401, "invalid_api_key", "api_auth"),
    Attack(api_key_without_the_scope, 403, "missing_scope", "api_auth"),
]


async def _scrape(w: World) -> dict[tuple[str, tuple[Any, ...]], float]:
    headers = await make_key(w.client, w.admin, ["metrics:read"])
    response = await w.client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _series(attack: Attack) -> tuple[str, tuple[Any, ...]]:
    if attack.reason is None:
        return REPLAYS, (("surface", attack.surface),)
    return REFUSALS, (("reason", attack.reason), ("surface", attack.surface))


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.run.__name__ for a in ATTACKS])
async def test_each_attack_is_refused_and_counted(world: World, attack: Attack) -> None:
    before = await _scrape(world)
    status, body = await attack.run(world)
    assert status == attack.status, body
    if attack.reason is not None:
        assert body["reason"] == attack.reason, body
        assert body["status"] == status and "type" in body and "title" in body
    after = await _scrape(world)
    series = _series(attack)
    assert after.get(series, 0.0) == before.get(series, 0.0) + 1, series
    # Nothing else was counted as refused: one attack, one count.
    refused = {k: v for k, v in after.items() if k[0] == REFUSALS and before.get(k, 0.0) != v}
    assert set(refused) <= {series}, refused


def test_every_refusal_surface_has_an_attack() -> None:
    from walletsvc.web.refusals import SIGNED_SURFACES

    assert SIGNED_SURFACES | {"api_auth"} == {attack.surface for attack in ATTACKS}
