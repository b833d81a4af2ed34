"""Scale-out: two `walletsvc serve` processes and a separate `walletsvc relay` behave as one.

All three run as real processes on one PostgreSQL database, with the APNs stand-in
and a webhook receiver in this process. The duplicate-scan, push and event guarantees
must hold across processes, because the state behind them lives in the database.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import CERTS
from tests.fakes.apns import FakeApnsServer
from tests.fakes.webhook_receiver import SECRET
from tests.integration.service_processes import (
    SERVICE_PORTS,
    ServiceProcess,
    change_coupon,
    create_database,
    drop_database,
    issue_coupon,
    issue_loyalty,
    open_till,
    port_in,
    register_device,
    service_settings,
    shared_server_url,
)

pytestmark = pytest.mark.postgres


async def _until(check: Any, seconds: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.1)


async def test_two_services_and_a_relay_on_one_database_count_push_and_relay_once(
    tmp_path: Path, receiver: Any
) -> None:
    database = await create_database(shared_server_url())
    taken: set[int] = set()
    events = {
        "relay": "off",  # the separate `walletsvc relay` alone delivers events
        "first_retry_s": 0.2,
        "idle_wait_s": 0.05,
        "webhooks": [{"name": "crm", "url": receiver.url, "secret": SECRET}],
    }
    processes: list[ServiceProcess] = []
    async with FakeApnsServer(client_ca_pem=(CERTS / "wwdr-dev-ca.pem").read_bytes()) as apns:
        try:
            for name in ("a", "b", "relay"):
                port = port_in(SERVICE_PORTS, taken)
                settings = service_settings(
                    database, tmp_path / name / "data", port, apns=apns, events=events
                )
                command = "relay" if name == "relay" else "serve"
                processes.append(ServiceProcess(tmp_path / name, settings, command))
            a, b, relay = processes
            a.start()
            await a.wait_ready()  # the first one migrates; then the others start beside it
            b.start()
            relay.start()
            await b.wait_ready()
            await relay.wait_ready()
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
                await _same_scan_on_both_counts_once(http, a.base, b.base, database)
                await _a_change_is_pushed_once_per_device(http, a.base, b.base, apns, database)
            await _events_are_delivered_once(database, receiver)
            for process in processes:
                assert process.process is not None and process.process.poll() is None
                assert process.tracebacks() == [], process.log.read_text()[-3000:]
        finally:
            for process in processes:
                process.stop()
            await drop_database(database)


async def _same_scan_on_both_counts_once(
    http: aiohttp.ClientSession, a: str, b: str, database: str
) -> None:
    """20 copies of one scan, half to each process, all at once: one ledger entry."""
    till = await open_till(http, a)
    _issued, document = await issue_loyalty(http, b, "scale-1")
    barcode = document["barcodes"][0]["message"]
    answers = await asyncio.gather(
        *(till.scan(a if n % 2 else b, barcode, "same-scan-1", "20.00") for n in range(20))
    )
    assert {status for status, _type, _body in answers} == {200}, answers
    bodies = [body for _status, _type, body in answers]
    assert all(body == bodies[0] for body in bodies), "every copy gets the same answer"
    assert bodies[0]["points_earned"] == 20 and bodies[0]["balance"] == 20
    connection = await asyncpg.connect(database)
    try:
        entries = await connection.fetchval(
            "SELECT count(*) FROM ledger_entries WHERE business_key = 'scan:same-scan-1'"
        )
        balance = await connection.fetchval(
            "SELECT points_balance FROM customers WHERE id = $1", bodies[0]["customer_id"]
        )
    finally:
        await connection.close()
    assert (entries, balance) == (1, 20)


async def _refreshed(database: str) -> bool:
    connection = await asyncpg.connect(database)
    try:
        behind = await connection.fetchval(
            "SELECT count(*) FROM programs WHERE refreshed_stores_version < stores_version"
            " OR refreshed_version < design_version"
        )
    finally:
        await connection.close()
    return bool(behind == 0)


async def _quiet(apns: FakeApnsServer, seconds: float) -> None:
    """Wait until the stand-in has answered nothing new for `seconds`."""
    seen = -1
    while seen != len(apns.received):
        seen = len(apns.received)
        await asyncio.sleep(seconds)


async def _a_change_is_pushed_once_per_device(
    http: aiohttp.ClientSession, a: str, b: str, apns: FakeApnsServer, database: str
) -> None:
    """Both processes run push workers; each device still gets one push per change."""
    tokens = set()
    serials = []
    for n in range(8):
        issued, document = await issue_coupon(http, a if n % 2 else b, f"scale-c{n}")
        for device in range(3):
            token = f"{n:02x}{device:02x}" * 16
            device_id = f"d{n:03}{device}" + "0" * 27
            assert await register_device(http, b if n % 2 else a, document, device_id, token) == 201
            tokens.add(token)
        serials.append(issued["serial"])
    # Adding the store (for the scans above) makes a background refresh re-render the
    # program's passes; let it finish and its pushes land, so only the PATCH is counted.
    await _until(lambda: _refreshed(database), 20, "the store refresh did not finish")
    await _quiet(apns, 2.0)
    apns.received.clear()
    # Half the changes through each process, all at once.
    statuses = await asyncio.gather(
        *(change_coupon(http, a if n % 2 else b, s, "Now 25% off") for n, s in enumerate(serials))
    )
    assert set(statuses) == {200}

    async def all_pushed() -> bool:
        return {push.token for push in apns.received} == tokens

    await _until(all_pushed, 20, "a device got no push")
    await asyncio.sleep(3)  # several worker rounds of both processes: no second push
    pushes = Counter(push.token for push in apns.received)
    assert pushes == dict.fromkeys(tokens, 1), pushes


async def _events_are_delivered_once(database: str, receiver: Any) -> None:
    """The separate relay delivers each event of both processes once."""
    connection = await asyncpg.connect(database)
    try:
        ids = {row[0] for row in await connection.fetch("SELECT event_id FROM outbox")}
    finally:
        await connection.close()
    assert ids

    async def all_delivered() -> bool:
        return set(receiver.ids) >= ids

    await _until(all_delivered, 20, "events missing at the webhook")
    await asyncio.sleep(1)
    repeats = [event for event, n in Counter(receiver.ids).items() if n > 1]
    assert repeats == []
    assert set(receiver.ids) == ids
