"""Failure drills on real processes: PostgreSQL restarted, the service SIGKILLed, NATS killed.

Each drill runs `walletsvc serve` (or `relay`) as its own process under load from
concurrent clients, breaks something for real, and then checks the issue-8 promise:
nothing acknowledged is lost and nothing is applied twice. PostgreSQL and NATS are
private servers started here, so the shared ones other tests use are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import nats
import pytest

from tests.conftest import CERTS
from tests.fakes.apns import FakeApnsServer
from tests.integration.service_processes import (
    SERVICE_PORTS,
    PrivateNats,
    PrivatePostgres,
    ServiceProcess,
    Till,
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

POINTS = 12  # a 12.50 EUR purchase in the demo program


@dataclass
class ScanLoad:
    """Clients scanning purchases; what the service acknowledged and what it did not."""

    till: Till
    barcodes: list[str]
    bases: list[str]
    acknowledged: dict[str, dict[str, Any]] = field(default_factory=dict)
    owed: dict[str, str] = field(default_factory=dict)  # scan_id -> barcode, unanswered
    barcode_of: dict[str, str] = field(default_factory=dict)
    refusals: Counter[str] = field(default_factory=Counter)  # "503 application/problem+json"...
    reasons: Counter[str] = field(default_factory=Counter)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self, number: int, pause_s: float = 0.02) -> None:
        n = 0
        while not self.stop.is_set():
            scan_id = f"c{number}-{n}"
            barcode = self.barcodes[(number + n) % len(self.barcodes)]
            base = self.bases[n % len(self.bases)]
            n += 1
            self.barcode_of[scan_id] = barcode
            answered = await self.send(base, scan_id, barcode)
            # A till backs off a little when the service is away, as a real one would.
            await asyncio.sleep(pause_s if answered else 0.25)

    async def send(self, base: str, scan_id: str, barcode: str) -> bool:
        try:
            status, content_type, body = await self.till.scan(base, barcode, scan_id)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.refusals[f"no answer: {type(exc).__name__}"] += 1
            self.owed[scan_id] = barcode
            return False
        if status == 200:
            previous = self.acknowledged.setdefault(scan_id, body)
            assert previous == body, f"{scan_id} answered differently on a retry"
            self.owed.pop(scan_id, None)
            return True
        self.refusals[f"{status} {content_type}"] += 1
        self.reasons[str(body.get("reason"))] += 1
        self.owed[scan_id] = barcode
        return False

    async def settle_owed(self, seconds: float = 30) -> None:
        """Send every unacknowledged scan again, same scan_id, until each is answered 200."""
        deadline = asyncio.get_running_loop().time() + seconds
        while self.owed:
            assert asyncio.get_running_loop().time() < deadline, f"still owed: {self.owed}"
            owed = list(self.owed.items())

            async def resend(share: list[tuple[str, str]]) -> None:
                for scan_id, barcode in share:
                    await self.send(self.bases[0], scan_id, barcode)

            await asyncio.gather(*(resend(owed[n::8]) for n in range(8)))
            await asyncio.sleep(0.2)


async def check_ledger(database_url: str, load: ScanLoad) -> None:
    """Each acknowledged scan is one ledger entry; points and balances agree."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT business_key, count(*) AS n, sum(points) AS points FROM ledger_entries"
            " WHERE business_key LIKE 'scan:%' GROUP BY business_key"
        )
        balances = await connection.fetchval("SELECT sum(points_balance) FROM customers")
        answered = await connection.fetchval(
            "SELECT count(*) FROM inbox WHERE processed_at IS NOT NULL"
        )
    finally:
        await connection.close()
    entries = {row["business_key"].removeprefix("scan:"): row["n"] for row in rows}
    twice = {key: n for key, n in entries.items() if n != 1}
    assert twice == {}, f"scans applied more than once: {twice}"
    assert set(entries) == set(load.acknowledged), (
        f"lost: {set(load.acknowledged) - set(entries)}; "
        f"unacknowledged yet applied: {set(entries) - set(load.acknowledged)}"
    )
    assert sum(row["points"] for row in rows) == balances == POINTS * len(entries)
    assert answered == len(entries)


async def until_ready(http: aiohttp.ClientSession, base: str, seconds: float = 30) -> float:
    """Wait for /readyz to answer 200 again; return how long it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        try:
            async with http.get(f"{base}/readyz") as response:
                if response.status == 200:
                    return loop.time() - started
        except aiohttp.ClientError:
            pass
        assert loop.time() - started < seconds, "the service did not become ready again"
        await asyncio.sleep(0.1)


async def test_postgres_restarted_under_load_loses_no_acknowledged_scan(tmp_path: Path) -> None:
    pg = PrivatePostgres()
    pg.init()
    pg.start()
    serve: ServiceProcess | None = None
    try:
        database = await create_database(pg.server_url())
        port = port_in(SERVICE_PORTS)
        serve = ServiceProcess(
            tmp_path / "serve", service_settings(database, tmp_path / "serve" / "data", port)
        )
        serve.start()
        await serve.wait_ready()
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            till = await open_till(http, serve.base)
            barcodes = [
                (await issue_loyalty(http, serve.base, f"pg-{n}"))[1]["barcodes"][0]["message"]
                for n in range(6)
            ]
            load = ScanLoad(till, barcodes, [serve.base])
            clients = [asyncio.create_task(load.client(n)) for n in range(8)]
            try:
                await asyncio.sleep(2)
                before = len(load.acknowledged)
                assert before > 20, load.refusals
                await asyncio.to_thread(pg.stop, "immediate")  # a crash: no checkpoint
                await asyncio.sleep(1)
                async with http.get(f"{serve.base}/readyz") as response:
                    assert response.status == 503
                    assert (await response.json())["status"] == "unavailable"
                await asyncio.sleep(2)
                during = len(load.acknowledged)
                await asyncio.to_thread(pg.start)
                recovery_s = await until_ready(http, serve.base)
                await asyncio.sleep(2)
            finally:
                load.stop.set()
                await asyncio.gather(*clients)
            after = len(load.acknowledged)
            assert after > during, "no scan accepted after PostgreSQL came back"
            refused_while_down = sum(load.refusals.values())
            await load.settle_owed()
        # While the database was away: 503 problem+json with a reason, never a 500 or a hang.
        assert refused_while_down > 0
        assert set(load.refusals) == {"503 application/problem+json"}, load.refusals
        assert set(load.reasons) == {"database_unavailable"}, load.reasons
        await check_ledger(database, load)
        assert serve.process is not None and serve.process.poll() is None  # never restarted
        print(
            f"acknowledged {len(load.acknowledged)} scans ({before} before the crash, "
            f"{during - before} during, {after - during} after); refused {refused_while_down} "
            f"({dict(load.refusals)}); ready again {recovery_s:.1f} s after PostgreSQL started"
        )
    finally:
        if serve is not None:
            serve.stop()
        pg.remove()


async def test_a_sigkilled_service_loses_no_acknowledged_scan_and_no_owed_push(
    tmp_path: Path,
) -> None:
    database = await create_database(shared_server_url())
    async with FakeApnsServer(client_ca_pem=(CERTS / "wwdr-dev-ca.pem").read_bytes()) as apns:
        port = port_in(SERVICE_PORTS)
        # Pushes wait 5 s for more changes: the ones owed at the kill are not yet sent.
        settings = service_settings(
            database, tmp_path / "data", port, apns=apns, apple={"apns": {"push_delay_s": 5}}
        )
        first = ServiceProcess(tmp_path / "first", settings)
        second = ServiceProcess(tmp_path / "second", settings)
        try:
            first.start()
            await first.wait_ready()
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                till = await open_till(http, first.base)
                barcodes = [
                    (await issue_loyalty(http, first.base, f"k-{n}"))[1]["barcodes"][0]["message"]
                    for n in range(6)
                ]
                coupons = []
                tokens = set()
                for n in range(10):
                    issued, document = await issue_coupon(http, first.base, f"kc-{n}")
                    for device in range(2):
                        token = f"{n:02x}{device:02x}" * 16
                        device_id = f"dev{n:03}{device}" + "0" * 24
                        status = await register_device(http, first.base, document, device_id, token)
                        assert status == 201
                        tokens.add(token)
                    coupons.append(issued["serial"])
                load = ScanLoad(till, barcodes, [first.base])
                clients = [asyncio.create_task(load.client(n)) for n in range(8)]
                changed: set[str] = set()

                async def change_all() -> None:
                    for serial in coupons:
                        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                            if await change_coupon(http, first.base, serial, "Now 20% off") == 200:
                                changed.add(serial)
                        await asyncio.sleep(0.05)

                try:
                    await asyncio.sleep(1.5)
                    changes = asyncio.create_task(change_all())
                    await asyncio.sleep(0.25)  # a few changes made, others on the way
                    first.kill()
                    await changes
                    acknowledged_at_kill = len(load.acknowledged)
                    assert apns.received == [], "no push was due before the kill"
                    second.start()
                    await second.wait_ready()
                    for serial in set(coupons) - changed:  # what the dead process never answered
                        assert await change_coupon(http, second.base, serial, "Now 20% off") == 200
                    await asyncio.sleep(1.5)
                finally:
                    load.stop.set()
                    await asyncio.gather(*clients)
                await load.settle_owed()
                await check_ledger(database, load)
                deadline = asyncio.get_running_loop().time() + 30
                while {push.token for push in apns.received} != tokens:
                    assert asyncio.get_running_loop().time() < deadline, apns.received
                    await asyncio.sleep(0.1)
                await asyncio.sleep(6)  # past another coalescing window: nothing more comes
            pushes = Counter(push.token for push in apns.received)
            assert pushes == dict.fromkeys(tokens, 1), "one push per device, not two"
            assert all(push.status == 200 for push in apns.received)
            print(
                f"{acknowledged_at_kill} scans acknowledged before the kill, "
                f"{len(load.acknowledged)} in all; {len(changed)} of {len(coupons)} changes "
                f"acknowledged before the kill; {len(apns.received)} pushes for {len(tokens)} "
                f"devices; unanswered at the kill: {dict(load.refusals)}"
            )
        finally:
            first.kill()
            second.stop()
            await drop_database(database)


@pytest.mark.nats
async def test_nats_killed_under_load_gets_every_event_once_after_it_returns(
    tmp_path: Path,
) -> None:
    nats_server = PrivateNats(tmp_path / "nats")
    await nats_server.start()
    database = await create_database(shared_server_url())
    port = port_in(SERVICE_PORTS)
    events = {
        "first_retry_s": 0.2,
        "max_retry_s": 1,
        "idle_wait_s": 0.05,
        "nats": {"url": nats_server.url, "stream": "DRILL", "subject_prefix": "drill.events",
                 "duplicate_window_s": 120, "reconnect_wait_s": 0.2, "timeout_s": 1},
    }  # fmt: skip
    serve = ServiceProcess(
        tmp_path / "serve", service_settings(database, tmp_path / "data", port, events=events)
    )
    nc = None
    try:
        serve.start()
        await serve.wait_ready()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            till = await open_till(http, serve.base)
            barcodes = [
                (await issue_loyalty(http, serve.base, f"n-{n}"))[1]["barcodes"][0]["message"]
                for n in range(6)
            ]
            load = ScanLoad(till, barcodes, [serve.base])
            clients = [asyncio.create_task(load.client(n, pause_s=0.05)) for n in range(4)]
            try:
                await asyncio.sleep(1.5)
                nats_server.kill()  # SIGKILL: JetStream's store is left as a crash leaves it
                await asyncio.sleep(3)
                await nats_server.start()
                await asyncio.sleep(1.5)
            finally:
                load.stop.set()
                await asyncio.gather(*clients)
        # The API never noticed: events wait in the outbox while NATS is away.
        assert load.refusals == Counter(), load.refusals
        connection = await asyncpg.connect(database)
        try:
            ids = {row[0] for row in await connection.fetch("SELECT event_id FROM outbox")}
        finally:
            await connection.close()
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        deadline = asyncio.get_running_loop().time() + 30
        while (await js.stream_info("DRILL")).state.messages < len(ids):
            assert asyncio.get_running_loop().time() < deadline, "events missing from the stream"
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)  # a resend after the count was reached would show now
        info = await js.stream_info("DRILL")
        stream_ids = [
            (await js.get_msg("DRILL", seq)).headers["Nats-Msg-Id"]
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
        assert len(stream_ids) == len(set(stream_ids)), "an event is in the stream twice"
        assert set(stream_ids) == ids
        print(
            f"{len(ids)} events from {len(load.acknowledged)} scans, each in the stream once "
            "after NATS was SIGKILLed for 3 s"
        )
    finally:
        if nc is not None:
            await nc.close()
        serve.stop()
        nats_server.kill()
        await drop_database(database)


async def test_apns_faults_through_the_running_service_lose_no_push_and_send_none_twice(
    tmp_path: Path,
) -> None:
    database = await create_database(shared_server_url())
    async with FakeApnsServer(client_ca_pem=(CERTS / "wwdr-dev-ca.pem").read_bytes()) as apns:
        port = port_in(SERVICE_PORTS)
        serve = ServiceProcess(
            tmp_path / "serve", service_settings(database, tmp_path / "data", port, apns=apns)
        )
        try:
            serve.start()
            await serve.wait_ready()
            devices: dict[str, str] = {}  # token -> device library id
            serials = []
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                for n in range(12):
                    issued, document = await issue_coupon(http, serve.base, f"ap-{n}")
                    for device in range(2):
                        token = f"{n:02x}{device:02x}" * 16
                        devices[token] = f"a{n:03}{device}" + "0" * 27
                        assert (
                            await register_device(http, serve.base, document, devices[token], token)
                            == 201
                        )
                    serials.append(issued["serial"])
                tokens = sorted(devices)
                gone, busy, failing = tokens[0:4], tokens[4:8], tokens[8:12]
                for token in gone:
                    apns.answer(410, "Unregistered", token=token)
                for token in busy:
                    apns.answer(429, "TooManyRequests", token=token, retry_after=1)
                for token in failing:
                    apns.answer(500, "InternalServerError", token=token)
                apns.go_away_after(5)  # and the connection goes away mid-burst
                statuses = await asyncio.gather(
                    *(change_coupon(http, serve.base, s, "Now 15% off") for s in serials)
                )
                assert set(statuses) == {200}

                def answered(token: str, status: int) -> int:
                    return sum(p.token == token and p.status == status for p in apns.received)

                await _eventually(
                    lambda: (
                        all(answered(t, 429) for t in busy)
                        and all(answered(t, 500) for t in failing)
                        and all(answered(t, 410) for t in gone)
                    ),
                    30,
                )
                for token in busy + failing:  # APNs recovers
                    apns.answer(200, token=token)
                live = set(tokens) - set(gone)
                await _eventually(lambda: all(answered(t, 200) for t in live), 40)
                await asyncio.sleep(3)  # a resend would land in the next worker rounds
            delivered = Counter(p.token for p in apns.received if p.status == 200)
            assert delivered == dict.fromkeys(live, 1), "each live device once, none twice"
            assert not any(answered(t, 200) for t in gone)
            assert apns.connections_opened >= 2, "GOAWAY made the service reconnect"
            connection = await asyncpg.connect(database)
            try:
                owed = await connection.fetchval("SELECT count(*) FROM apple_push_queue")
                registered = {
                    row[0]
                    for row in await connection.fetch(
                        "SELECT d.push_token FROM apple_registrations r JOIN apple_devices d"
                        " USING (device_library_id)"
                    )
                }
            finally:
                await connection.close()
            assert owed == 0
            assert registered == live, "410 Unregistered removes exactly the dead tokens"
            print(
                f"{len(apns.received)} APNs answers over {apns.connections_opened} connections; "
                f"{len(live)} devices got their push once, {len(gone)} were unregistered"
            )
        finally:
            serve.stop()
            await drop_database(database)


async def _eventually(check: Any, seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)
