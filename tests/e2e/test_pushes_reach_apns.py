"""A change to a pass reaches the devices holding it through the running service's push worker.

The service runs as `serve` would (the push worker started with the app) against the
local APNs stand-in, which checks the client certificate and topic as APNs does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conformance.test_apple_web_service import DEVICE, TOKEN, Wallet
from tests.conftest import CERTS, EXTERNAL_DATABASE, empty_all_tables
from tests.fakes.apns import FakeApnsServer
from walletsvc.bootstrap import build_container, prepare_database
from walletsvc.web.app import create_app


@pytest.fixture
async def apns() -> AsyncIterator[FakeApnsServer]:
    async with FakeApnsServer(client_ca_pem=(CERTS / "wwdr-dev-ca.pem").read_bytes()) as server:
        yield server


@pytest.fixture
async def pushing_client(
    apns: FakeApnsServer, make_settings: Callable[..., Any], tmp_path: Path, aiohttp_client: Any
) -> AsyncIterator[Any]:
    ca_file = tmp_path / "apns-ca.pem"
    ca_file.write_bytes(apns.ca_pem)
    settings = make_settings(
        apple={
            "pass_certificate": CERTS / "pass-certificate.pem",
            "pass_key": CERTS / "pass-key.pem",
            "wwdr_certificate": CERTS / "wwdr-dev-ca.pem",
            "apns": {
                "enabled": True,
                "endpoint": apns.url,
                "server_ca_file": ca_file,
                "push_delay_s": 0,
            },
        }
    )
    container = build_container(settings)
    await prepare_database(container)
    try:
        yield await aiohttp_client(create_app(container))
    finally:
        if EXTERNAL_DATABASE is not None:
            await empty_all_tables(container)
        await container.close()


async def _until(condition: Callable[[], bool], seconds: float = 10) -> None:
    for _ in range(int(seconds * 20)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_a_coupon_change_is_pushed_to_the_device_holding_it(pushing_client, admin, apns):
    wallet = Wallet(pushing_client, admin)
    issued = await wallet.coupon()
    document = await wallet.pass_json(issued)
    assert await wallet.register(document) == 201
    await wallet.change_coupon(issued["serial"], title="Now 20% off")
    await _until(lambda: len(apns.received) >= 1)
    push = apns.received[0]
    assert (push.token, push.topic, push.auth, push.status) == (
        TOKEN,
        document["passTypeIdentifier"],
        "certificate",
        200,
    )
    # Wallet then asks what changed and fetches the pass: both show the new offer.
    status, body = await wallet.changed(document)
    assert status == 200 and body is not None and body["serialNumbers"] == [issued["serial"]]


async def test_a_device_apns_calls_unregistered_stops_getting_updates(pushing_client, admin, apns):
    wallet = Wallet(pushing_client, admin)
    issued = await wallet.coupon()
    document = await wallet.pass_json(issued)
    await wallet.register(document)
    apns.answer(410, "Unregistered", token=TOKEN)
    await wallet.change_coupon(issued["serial"], title="Now 30% off")
    await _until(lambda: len(apns.received) >= 1)
    assert apns.received[0].status == 410
    for _ in range(100):
        if (await wallet.changed(document, device=DEVICE))[0] == 204:
            break
        await asyncio.sleep(0.05)
    assert (await wallet.changed(document, device=DEVICE))[0] == 204


async def test_apns_replies_are_counted_by_outcome_and_reason(pushing_client, admin, apns):
    labels = {"outcome": "unregistered", "reason": "Unregistered"}

    async def counted() -> float:
        text = await (await pushing_client.get("/metrics", headers=admin)).text()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "walletsvc_apns_replies_total" and sample.labels == labels:
                    return float(sample.value)
        return 0.0

    before = await counted()
    wallet = Wallet(pushing_client, admin)
    issued = await wallet.coupon()
    document = await wallet.pass_json(issued)
    await wallet.register(document)
    apns.answer(410, "Unregistered", token=TOKEN)
    await wallet.change_coupon(issued["serial"], title="Now 30% off")
    await _until(lambda: len(apns.received) >= 1)
    for _ in range(100):
        if await counted() == before + 1:
            break
        await asyncio.sleep(0.05)
    assert await counted() == before + 1
