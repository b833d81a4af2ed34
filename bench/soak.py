"""Soak: mixed load at a fixed, moderate rate against `walletsvc serve` on PostgreSQL.

    .venv/bin/python bench/soak.py                    # 30 min, writes bench/results/soak.md
    DURATION=180 .venv/bin/python bench/soak.py       # a 3-minute check that it works

The point is steadiness, not speed: every operation runs open-loop at its own fixed
rate (a request is started on schedule whether or not earlier ones finished), so a
service that slows down or leaks shows as growing latency, errors or memory rather
than as a lower request rate. Operations (per second, `RATES` to change them):

- `issue`: a coupon for a new customer (POST /api/v1/passes), then its .pkpass download;
- `register`: an Apple device registers one of those passes (PassKit web service);
- `change`: a registered coupon's title changes (PATCH), so a push is owed to its device;
- `scan`: a signed purchase scan of one of CUSTOMERS loyalty cards (new scan_id each);
- `geofence`: an enter at the store for a customer who consented to location use.

Pushes go to the APNs stand-in (tests/fakes/apns.py) in a process of its own, over TLS
with the example pass certificate. Every WINDOW seconds the script samples the server
process (RSS, open fds, threads), its PostgreSQL sessions (open and active: the pool in
use), pushes answered, and per operation the count, errors, p50 and p99 of the window.
The verdict compares the first and the last 5 minutes (a third of the run if shorter).
"""

from __future__ import annotations

import asyncio
import io
import json
import multiprocessing
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
import zipfile
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from service_process import ADMIN, PG, fresh_database, start_server, wait_ready

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.apns import FakeApnsServer  # noqa: E402
from walletsvc.intake.standard_webhooks import decode_secret, signature_headers  # noqa: E402

CERTS = ROOT / "certs_example"
DURATION = float(os.environ.get("DURATION", "1800"))
WINDOW = float(os.environ.get("WINDOW", "30"))
CUSTOMERS = int(os.environ.get("CUSTOMERS", "200"))
PORT = int(os.environ.get("PORT", "18760"))
DATABASE = os.environ.get("BENCH_DATABASE", "walletsvc_soak")
OUT = Path(os.environ.get("OUT", ROOT / "bench" / "results" / "soak.md"))
RATES = {
    "issue": 1.0,
    "register": 1.0,
    "change": 1.0,
    "scan": 10.0,
    "geofence": 3.0,
    **{k: float(v) for k, v in (p.split("=") for p in os.environ.get("RATES", "").split(",") if p)},
}
BASE = f"http://127.0.0.1:{PORT}"
HEADERS = {"Authorization": f"Bearer {ADMIN}"}
STORE = "soak-store"
TERMINAL = "soak-till"
INSIDE = (52.520311, 13.405122)  # 35 m from the store's centre
PASS_CACHE_BYTES = 64 * 2**20  # walletsvc.services.pass_cache.SignedPassCache's bound


# --- the APNs stand-in in its own process -------------------------------------------------


def _stand_in(pipe: Connection) -> None:
    async def serve() -> None:
        ca = (CERTS / "wwdr-dev-ca.pem").read_bytes()
        async with FakeApnsServer(client_ca_pem=ca, record=False) as apns:
            pipe.send((apns.url, apns.ca_pem))
            loop = asyncio.get_running_loop()
            while (message := await loop.run_in_executor(None, pipe.recv)) != "stop":
                pipe.send((apns.answered, apns.connections_opened, message))

    asyncio.run(serve())


# --- load ---------------------------------------------------------------------------------


class Soak:
    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.error_kinds: Counter[str] = Counter()
        self.loyalty: list[tuple[str, str]] = []  # (customer_id, barcode)
        self.unregistered: deque[dict[str, Any]] = deque(maxlen=1000)
        self.registered: list[str] = []  # coupon serials with a device
        self.key = b""
        self.counter = 0
        self.in_flight = 0
        # Every .pkpass downloaded here is a new pass, signed once and kept by the service's
        # SignedPassCache (an LRU bounded at 64 MB): RSS grows by about this much, by design.
        self.signed_bytes = 0

    async def setup(self) -> None:
        async with self.http.post(
            f"{BASE}/api/v1/stores",
            json={"id": STORE, "program": "demo", "name": "Soak", "latitude": 52.52,
                  "longitude": 13.405, "radius_m": 100},
            headers=HEADERS,
        ) as response:  # fmt: skip
            assert response.status == 201, await response.text()
        async with self.http.post(
            f"{BASE}/api/v1/stores/{STORE}/terminals",
            json={"id": TERMINAL, "adapter": "walletsvc"},
            headers=HEADERS,
        ) as response:
            terminal = await response.json()
            assert response.status == 201, terminal
        self.key = decode_secret(terminal["secret"])
        for n in range(CUSTOMERS):
            async with self.http.post(
                f"{BASE}/api/v1/customers",
                json={"external_id": f"soak-base-{n}", "consents": {"location": True}},
                headers=HEADERS,
            ) as response:
                customer = await response.json()
                assert response.status in (200, 201), customer
            async with self.http.post(
                f"{BASE}/api/v1/passes",
                json={"kind": "loyalty", "customer_id": customer["id"]},
                headers=HEADERS,
            ) as response:
                issued = await response.json()
                assert response.status == 201, issued
            document = await self.pass_json(issued)
            self.loyalty.append((customer["id"], document["barcodes"][0]["message"]))

    async def pass_json(self, issued: dict[str, Any]) -> dict[str, Any]:
        async with self.http.get(issued["apple"]["pkpass_url"]) as response:
            assert response.status == 200, response.status
            data = await response.read()
        self.signed_bytes += len(data)
        document: dict[str, Any] = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("pass.json"))
        return document

    def next_id(self) -> int:
        self.counter += 1
        return self.counter

    # One call each; each returns normally when the answer is the expected one.

    async def issue(self) -> None:
        n = self.next_id()
        async with self.http.post(
            f"{BASE}/api/v1/passes",
            json={"kind": "coupon", "customer_external_id": f"soak-new-{n}",
                  "coupon": {"title": "10% off", "discount": "10%"}},
            headers=HEADERS,
        ) as response:  # fmt: skip
            issued = await response.json()
            assert response.status == 201, issued
        self.unregistered.append(await self.pass_json(issued))

    async def register(self) -> None:
        if not self.unregistered:
            return
        document = self.unregistered.popleft()
        device = uuid.uuid4().hex
        path = (
            f"/apple/v1/devices/{device}/registrations/"
            f"{document['passTypeIdentifier']}/{document['serialNumber']}"
        )
        async with self.http.post(
            BASE + path,
            json={"pushToken": uuid.uuid4().hex + uuid.uuid4().hex},
            headers={"Authorization": f"ApplePass {document['authenticationToken']}"},
        ) as response:
            assert response.status == 201, await response.text()
        self.registered.append(document["serialNumber"])

    async def change(self) -> None:
        if not self.registered:
            return
        serial = random.choice(self.registered)
        async with self.http.patch(
            f"{BASE}/api/v1/passes/{serial}",
            json={"coupon": {"title": f"Offer {self.next_id()}"}},
            headers=HEADERS,
        ) as response:
            assert response.status == 200, await response.text()

    async def scan(self) -> None:
        _customer, barcode = random.choice(self.loyalty)
        body = json.dumps(
            {"scan_id": f"soak-{self.next_id()}", "barcode": barcode, "action": "purchase",
             "occurred_at": datetime.now(UTC).isoformat(),
             "amount": {"value": "9.90", "currency": "EUR"}}
        ).encode()  # fmt: skip
        headers = signature_headers([self.key], f"msg_{uuid.uuid4().hex}", datetime.now(UTC), body)
        headers["X-Terminal-Id"] = TERMINAL
        headers["Content-Type"] = "application/json"
        async with self.http.post(f"{BASE}/api/v1/scans", data=body, headers=headers) as response:
            assert response.status == 200, await response.text()

    async def geofence(self) -> None:
        customer, _barcode = random.choice(self.loyalty)
        async with self.http.post(
            f"{BASE}/api/v1/geofence-events",
            json={"event_id": str(uuid.uuid4()), "store_id": STORE, "customer_id": customer,
                  "type": random.choice(("enter", "dwell", "exit")),
                  "latitude": INSIDE[0], "longitude": INSIDE[1], "accuracy_m": 15,
                  "occurred_at": (datetime.now(UTC) - timedelta(seconds=5)).isoformat()},
            headers=HEADERS,
        ) as response:  # fmt: skip
            assert response.status == 202, await response.text()

    async def timed(self, name: str, call: Callable[[], Awaitable[None]]) -> None:
        self.in_flight += 1
        started = time.perf_counter()
        try:
            await call()
        except Exception as exc:  # a soak counts failures; it does not stop at the first
            self.errors[name] += 1
            self.error_kinds[f"{name}: {type(exc).__name__} {str(exc)[:80]}"] += 1
        else:
            self.latencies[name].append((time.perf_counter() - started) * 1000)
        finally:
            self.in_flight -= 1

    async def drive(self, name: str, rate: float, until: float) -> None:
        """Start `name` every 1/rate seconds until `until` (open loop, on schedule)."""
        call = getattr(self, name)
        interval = 1 / rate
        tasks: set[asyncio.Task[None]] = set()
        next_at = time.monotonic() + random.uniform(0, interval)
        while next_at < until:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            task = asyncio.create_task(self.timed(name, call))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_at += interval
        await asyncio.gather(*tasks)

    def take_window(self) -> tuple[dict[str, list[float]], Counter[str]]:
        latencies, errors = self.latencies, self.errors
        self.latencies, self.errors = defaultdict(list), Counter()
        return latencies, errors


# --- sampling -----------------------------------------------------------------------------


def process_sample(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(fields["Threads"]),
    }


def quantile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100)[q - 1]


async def sample(
    soak: Soak, pid: int, monitor: asyncpg.Connection, apns: Connection, started: float
) -> dict[str, Any]:
    latencies, errors = soak.take_window()
    row: dict[str, Any] = {"t_s": round(time.monotonic() - started), **process_sample(pid)}
    row["db_sessions"], row["db_active"] = await monitor.fetchrow(
        "SELECT count(*), count(*) FILTER (WHERE state = 'active') FROM pg_stat_activity"
        " WHERE datname = $1 AND pid <> pg_backend_pid()",
        DATABASE,
    )
    row["push_queue"] = await monitor.fetchval("SELECT count(*) FROM apple_push_queue")
    apns.send("sample")
    row["pushes"], row["apns_connections"], _ = apns.recv()
    row["in_flight"] = soak.in_flight
    row["cache_mb"] = min(soak.signed_bytes, PASS_CACHE_BYTES) / 2**20
    row["load1"] = os.getloadavg()[0]  # the machine is shared: read latencies beside it
    row["ops"] = {
        name: {
            "latencies": latencies[name],
            "n": len(latencies[name]),
            "errors": errors[name],
            "p50": quantile(latencies[name], 50),
            "p99": quantile(latencies[name], 99),
        }
        for name in RATES
    }
    return row


# --- report -------------------------------------------------------------------------------


def report(rows: list[dict[str, Any]], header: list[str], soak: Soak) -> str:
    ops = list(RATES)
    columns = [
        "t (s)", "RSS MB", "pass cache MB", "fds", "threads", "PG sessions (active)",
        "push queue", "pushes", "load", *(f"{op} n/err p50/p99 ms" for op in ops),
    ]  # fmt: skip
    lines = [*header, "", "| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    previous_pushes = 0
    for row in rows:
        cells = [
            str(row["t_s"]), f"{row['rss_mb']:.1f}", f"{row['cache_mb']:.1f}", str(row["fds"]),
            str(row["threads"]),
            f"{row['db_sessions']} ({row['db_active']})", str(row["push_queue"]),
            str(row["pushes"] - previous_pushes), f"{row['load1']:.1f}",
        ]  # fmt: skip
        previous_pushes = row["pushes"]
        for op in ops:
            o = row["ops"][op]
            cells.append(f"{o['n']}/{o['errors']} {o['p50']:.1f}/{o['p99']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *verdict(rows)]
    if soak.error_kinds:
        lines += ["", "Errors by kind:", ""]
        lines += [f"- {n} x {kind}" for kind, n in soak.error_kinds.most_common(20)]
    return "\n".join(lines) + "\n"


def verdict(rows: list[dict[str, Any]]) -> list[str]:
    span = min(300.0, DURATION / 3)
    end = rows[-1]["t_s"]
    first = [r for r in rows if r["t_s"] <= span]
    last = [r for r in rows if r["t_s"] > end - span]
    rss_first = statistics.mean(r["rss_mb"] for r in first)
    rss_last = statistics.mean(r["rss_mb"] for r in last)
    cache_growth = statistics.mean(r["cache_mb"] for r in last) - statistics.mean(
        r["cache_mb"] for r in first
    )
    per_hour = (rss_last - rss_first - cache_growth) / ((end - span) / 3600)
    lines = [
        f"## Verdict: first {span:.0f} s against last {span:.0f} s (latencies pooled per span)",
        "",
        f"- RSS {rss_first:.1f} MB -> {rss_last:.1f} MB ({(rss_last / rss_first - 1):+.1%}), "
        f"of which the signed-pass cache (bounded at 64 MB, by design) {cache_growth:+.1f} MB; "
        f"the rest {rss_last - rss_first - cache_growth:+.1f} MB ({per_hour:+.1f} MB an hour); "
        f"open fds {statistics.mean(r['fds'] for r in first):.0f} -> "
        f"{statistics.mean(r['fds'] for r in last):.0f}; PostgreSQL sessions at most "
        f"{max(r['db_sessions'] for r in rows)}",
    ]
    total_errors = sum(o["errors"] for r in rows for o in r["ops"].values())
    total_ops = sum(o["n"] + o["errors"] for r in rows for o in r["ops"].values())
    lines.append(f"- errors: {total_errors} of {total_ops:,} operations")
    for op in RATES:
        before = [x for r in first for x in r["ops"][op]["latencies"]]
        after = [x for r in last for x in r["ops"][op]["latencies"]]
        p50_first, p50_last = quantile(before, 50), quantile(after, 50)
        p99_first, p99_last = quantile(before, 99), quantile(after, 99)
        lines.append(
            f"- {op}: p50 {p50_first:.1f} -> {p50_last:.1f} ms, p99 {p99_first:.1f} -> "
            f"{p99_last:.1f} ms ({(p99_last / p99_first - 1):+.0%}), {len(before)} and "
            f"{len(after)} operations"
        )
    return lines


# --- main ---------------------------------------------------------------------------------


async def main() -> str:
    """Run the soak; return the report."""
    parent, child = multiprocessing.Pipe()
    stand_in = multiprocessing.Process(target=_stand_in, args=(child,), daemon=True)
    stand_in.start()
    apns_url, apns_ca = parent.recv()
    await fresh_database(DATABASE)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as data_dir:
        ca_file = Path(data_dir) / "apns-ca.pem"
        ca_file.write_bytes(apns_ca)
        server = start_server(
            DATABASE,
            Path(data_dir),
            PORT,
            extra_env={
                "WALLETSVC_APPLE__PASS_CERTIFICATE": str(CERTS / "pass-certificate.pem"),
                "WALLETSVC_APPLE__PASS_KEY": str(CERTS / "pass-key.pem"),
                "WALLETSVC_APPLE__WWDR_CERTIFICATE": str(CERTS / "wwdr-dev-ca.pem"),
                "WALLETSVC_APPLE__APNS__ENABLED": "true",
                "WALLETSVC_APPLE__APNS__ENDPOINT": apns_url,
                "WALLETSVC_APPLE__APNS__SERVER_CA_FILE": str(ca_file),
                "WALLETSVC_LOYALTY__REVIEW_INTERVAL_S": "0",
            },
        )
        try:
            await wait_ready(BASE)
            connector = aiohttp.TCPConnector(limit=100)
            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
                soak = Soak(http)
                await soak.setup()
                monitor = await asyncpg.connect(f"{PG}/{DATABASE}")
                print(f"setup done: {CUSTOMERS} loyalty customers; soaking {DURATION:.0f} s")
                rows: list[dict[str, Any]] = []
                started = time.monotonic()
                until = started + DURATION
                drivers = asyncio.gather(
                    *(soak.drive(name, rate, until) for name, rate in RATES.items())
                )
                while time.monotonic() < until:
                    await asyncio.sleep(min(WINDOW, max(0.0, until - time.monotonic())))
                    rows.append(await sample(soak, server.pid, monitor, parent, started))
                    row = rows[-1]
                    print(
                        f"t={row['t_s']:5}s rss={row['rss_mb']:.1f}MB fds={row['fds']} "
                        f"db={row['db_sessions']} pushes={row['pushes']} "
                        + " ".join(
                            f"{op}={o['n']}/{o['errors']}/{o['p99']:.0f}ms"
                            for op, o in row["ops"].items()
                        ),
                        flush=True,
                    )
                await drivers
                checks = await consistency(monitor)
                await monitor.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
            parent.send("stop")
            stand_in.join(timeout=10)
    header = [
        "# Soak: mixed load at a fixed rate against `walletsvc serve` on PostgreSQL",
        "",
        f"Command: `DURATION={DURATION:.0f} .venv/bin/python bench/soak.py` "
        f"(WINDOW={WINDOW:.0f} s, CUSTOMERS={CUSTOMERS}, rates per second: "
        + ", ".join(f"{k} {v:g}" for k, v in RATES.items())
        + ").",
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; load average "
        f"{' '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} after; recorded "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        f"Check at the end: {checks}.",
        "",
        "Each row is one window: operations started on schedule in it (n), failed (err), "
        "and their p50/p99 latency in ms; pushes = answered by the APNs stand-in in it; "
        "load = the machine's 1-minute load average at its end (2 cores, shared).",
    ]
    return report(rows, header, soak)


async def consistency(monitor: asyncpg.Connection) -> str:
    entries, points = await monitor.fetchrow(
        "SELECT count(*), coalesce(sum(points), 0) FROM ledger_entries"
    )
    balances = await monitor.fetchval("SELECT coalesce(sum(points_balance), 0) FROM customers")
    scans = await monitor.fetchval(
        "SELECT count(*) FROM inbox WHERE processed_at IS NOT NULL AND source LIKE 'scan:%'"
    )
    state = "consistent" if points == balances and entries == scans else "INCONSISTENT"
    return (
        f"{state}: {entries:,} ledger entries for {scans:,} answered scans, "
        f"ledger points {points:,} vs sum of balances {balances:,}"
    )


if __name__ == "__main__":
    written = asyncio.run(main())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(written)
    print(written)
