"""Latency of Apple's "what changed?" and "latest pass" calls with 1,000,000 registrations.

Target (issue 3): p99 at most 10 ms for both on PostgreSQL.

    .venv/bin/python bench/apple_web_service.py            # 1,000,000 registrations
    REGISTRATIONS=100000 .venv/bin/python bench/apple_web_service.py
    RATES=250,500,1000 CONCURRENCY= .venv/bin/python bench/apple_web_service.py  # open loop

What it does, in order:
1. creates a fresh PostgreSQL database (BENCH_DATABASE, default walletsvc_bench on
   127.0.0.1:5432), migrates it and starts `walletsvc serve` on it as its own process;
2. issues SAMPLE passes through the API and registers each on a device through the
   PassKit web service, as Wallet would (so they carry real sealed tokens);
3. bulk-loads the rest of the registrations (customers, passes, devices,
   registrations, with update tags spread over the sequence) in SQL;
4. ANALYZEs, prints the query plans of both calls (docs/apple-web-service.md keeps them);
5. closed loop: for each client count in CONCURRENCY (default 1,4,16; empty for none),
   fires that many clients at each call over loopback for REQUESTS requests and prints
   throughput and p50/p90/p99/max latency measured by the client;
6. open loop: for each offered rate in RATES (requests a second, e.g. 250,500,1000;
   default none), sends REQUESTS requests to each call at arrival times drawn in
   advance (ARRIVALS=poisson, the default, or uniform), each on schedule whether or not
   earlier ones have answered, over as many connections as are in flight (up to
   MAX_IN_FLIGHT, default 2000). Latency runs from each request's SCHEDULED send time,
   so a stall of the server, or of this generator, delays every request due during it
   and shows in the percentiles instead of being hidden (no coordinated omission). It
   prints the offered and achieved rates, p50/p90/p99/max, errors, how late requests
   left (send lag), the most in flight, and server and generator CPU per request.

A closed-loop client only sends when its last request has answered, so at 16 clients
on two cores the median is about 16 / throughput: it measures saturation, not the
query. The open loop answers "at this request rate, how long does a call take?".
The load generator runs in this process and the server in another; both share the
machine's two cores with PostgreSQL, so figures are upper bounds on latency.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import resource
import statistics
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from service_process import ADMIN, PG, cpu_seconds, fresh_database, start_server, wait_ready

ROOT = Path(__file__).resolve().parents[1]
DATABASE = os.environ.get("BENCH_DATABASE", "walletsvc_bench")
REGISTRATIONS = int(os.environ.get("REGISTRATIONS", "1000000"))
SAMPLE = int(os.environ.get("SAMPLE", "200"))
REQUESTS = int(os.environ.get("REQUESTS", "20000"))
CONCURRENCY = [int(n) for n in os.environ.get("CONCURRENCY", "1,4,16").split(",") if n]
RATES = [float(r) for r in os.environ.get("RATES", "").split(",") if r]
ARRIVALS = os.environ.get("ARRIVALS", "poisson")
MAX_IN_FLIGHT = int(os.environ.get("MAX_IN_FLIGHT", "2000"))
PORT = int(os.environ.get("PORT", "8765"))
BASE = f"http://127.0.0.1:{PORT}"
SERVER: list[int] = []  # the server's pid, for its CPU time (with its workers')


async def main() -> None:
    await fresh_database(DATABASE)
    with tempfile.TemporaryDirectory() as data_dir:
        server = start_server(DATABASE, Path(data_dir), PORT)
        SERVER.append(server.pid)
        try:
            await wait_ready(BASE)
            async with aiohttp.ClientSession() as http:
                sample = await _issue_and_register(http)
                pass_type = sample[0]["passTypeIdentifier"]
                await _bulk_load(pass_type)
                await _plans(pass_type)
                await _measure(http, sample, pass_type)
        finally:
            server.terminate()
            server.wait(timeout=30)


async def _issue_and_register(http: aiohttp.ClientSession) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    documents = []
    for n in range(SAMPLE):
        async with http.post(
            f"{BASE}/api/v1/passes",
            json={"kind": "loyalty", "customer_external_id": f"sample-{n}"},
            headers=headers,
        ) as response:
            issued = await response.json()
        async with http.get(issued["apple"]["pkpass_url"]) as response:
            bundle = zipfile.ZipFile(BytesIO(await response.read()))
            document = json.loads(bundle.read("pass.json"))
        device = f"sample{n:026d}"
        document["device"] = device
        async with http.post(
            f"{BASE}/apple/v1/devices/{device}/registrations/"
            f"{document['passTypeIdentifier']}/{document['serialNumber']}",
            json={"pushToken": f"{n:064x}"},
            headers={"Authorization": f"ApplePass {document['authenticationToken']}"},
        ) as response:
            assert response.status == 201, await response.text()
        documents.append(document)
    return documents


async def _bulk_load(pass_type: str) -> None:
    count = REGISTRATIONS - SAMPLE
    connection = await asyncpg.connect(f"{PG}/{DATABASE}")
    started = time.perf_counter()
    try:
        sealed = await connection.fetchval("SELECT auth_token_sealed FROM passes LIMIT 1")
        await connection.execute(
            """
            INSERT INTO customers (id, program_id, external_id, location_consent,
                marketing_consent, points_balance, tier, created_at, updated_at)
            SELECT 'bulk-' || n, 'demo', 'bulk-' || n, false, false, 0, 'Bronze', now(), now()
            FROM generate_series(1, $1) AS n
            """,
            count,
        )
        await connection.execute(
            """
            INSERT INTO passes (serial, program_id, customer_id, kind, state, auth_token_sealed,
                version, content_hash, update_tag, last_changed_at, created_at)
            SELECT 'b' || lpad(n::text, 25, '0'), 'demo', 'bulk-' || n, 'loyalty', 'active', $2,
                1, md5(n::text), (random() * $1)::bigint, now(), now()
            FROM generate_series(1, $1) AS n
            """,
            count,
            sealed,
        )
        await connection.execute(
            """
            INSERT INTO apple_devices (device_library_id, push_token, created_at, updated_at)
            SELECT 'bulkdevice' || lpad(n::text, 22, '0'), lpad(to_hex(n), 64, '0'), now(), now()
            FROM generate_series(1, $1) AS n
            """,
            count,
        )
        await connection.execute(
            """
            INSERT INTO apple_registrations (device_library_id, pass_type_id, serial, created_at)
            SELECT 'bulkdevice' || lpad(n::text, 22, '0'), $2, 'b' || lpad(n::text, 25, '0'), now()
            FROM generate_series(1, $1) AS n
            """,
            count,
            pass_type,
        )
        await connection.execute(
            "UPDATE counters SET value = $1 WHERE name = 'pass_update'", REGISTRATIONS
        )
        await connection.execute("ANALYZE")
        total = await connection.fetchval("SELECT count(*) FROM apple_registrations")
    finally:
        await connection.close()
    print(f"registrations: {total:,} (bulk load {time.perf_counter() - started:.1f} s)")


async def _plans(pass_type: str) -> None:
    connection = await asyncpg.connect(f"{PG}/{DATABASE}")
    try:
        changed = await connection.fetch(
            """
            EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
            SELECT passes.serial, passes.update_tag FROM passes
            JOIN apple_registrations ON apple_registrations.serial = passes.serial
            WHERE apple_registrations.device_library_id = $1
              AND apple_registrations.pass_type_id = $2
            """,
            "bulkdevice" + "1".zfill(22),
            pass_type,
        )
        latest = await connection.fetch(
            """
            EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
            SELECT p.*, c.*, (SELECT revision FROM programs g WHERE g.id = p.program_id)
            FROM passes p JOIN customers c ON c.id = p.customer_id
            WHERE p.serial = $1
            """,
            "b" + "1".zfill(25),
        )
    finally:
        await connection.close()
    print("\nplan, what changed:\n" + "\n".join(row[0] for row in changed))
    print(
        "\nplan, latest pass (the pass, its holder, its program's revision):\n"
        + "\n".join(row[0] for row in latest)
    )


async def _measure(
    http: aiohttp.ClientSession, sample: list[dict[str, Any]], pass_type: str
) -> None:
    bulk = REGISTRATIONS - SAMPLE

    def changed_request() -> tuple[str, dict[str, str]]:
        n = random.randint(1, bulk)
        tag = random.randint(0, REGISTRATIONS)
        device = "bulkdevice" + str(n).zfill(22)
        return (
            f"{BASE}/apple/v1/devices/{device}/registrations/{pass_type}?passesUpdatedSince={tag}",
            {},
        )

    def latest_request() -> tuple[str, dict[str, str]]:
        document = random.choice(sample)
        return (
            f"{BASE}/apple/v1/passes/{pass_type}/{document['serialNumber']}",
            {"Authorization": f"ApplePass {document['authenticationToken']}"},
        )

    calls = (("what changed", changed_request), ("latest pass", latest_request))
    for name, make in calls:
        for clients in CONCURRENCY:
            await _report(http, name, make, clients)
    if RATES:
        # A session of its own: the closed loop's default pool of 100 connections would
        # make requests wait for a connection, which is the generator limiting.
        connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
        async with aiohttp.ClientSession(connector=connector) as open_http:
            for name, make in calls:
                for rate in RATES:
                    await _report_open(open_http, name, make, rate)


async def _report(http: aiohttp.ClientSession, name: str, make: Any, clients: int) -> None:
    await _load(http, make, REQUESTS // 10, clients)  # warm-up: pool, signed-pass cache
    cpu = cpu_seconds(SERVER[0])
    latencies, elapsed = await _load(http, make, REQUESTS, clients)
    cpu = cpu_seconds(SERVER[0]) - cpu
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    print(
        f"{name}: {len(latencies):,} requests, {clients} clients, "
        f"{len(latencies) / elapsed:,.0f} req/s; "
        f"p50 {q[49]:.2f} ms, p90 {q[89]:.2f} ms, p99 {q[98]:.2f} ms, "
        f"max {latencies[-1]:.2f} ms; server CPU {cpu / len(latencies) * 1000:.2f} ms a request"
    )


async def _load(
    http: aiohttp.ClientSession, make: Any, total: int, clients: int
) -> tuple[list[float], float]:
    latencies: list[float] = []
    remaining = total

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            url, headers = make()
            started = time.perf_counter()
            async with http.get(url, headers=headers) as response:
                await response.read()
                assert response.status in (200, 204), response.status
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, time.perf_counter() - started


async def _report_open(http: aiohttp.ClientSession, name: str, make: Any, rate: float) -> None:
    await _open_loop(http, make, rate, REQUESTS // 10)  # warm-up at the same rate
    cpu = cpu_seconds(SERVER[0])
    own = _own_cpu()
    run = await _open_loop(http, make, rate, REQUESTS)
    cpu = cpu_seconds(SERVER[0]) - cpu
    own = _own_cpu() - own
    latencies = sorted(run.latencies)
    q = statistics.quantiles(latencies, n=100)
    lag = statistics.quantiles(run.lags, n=100)
    capped = " (MAX_IN_FLIGHT reached: the generator limited)" if run.peak >= MAX_IN_FLIGHT else ""
    print(
        f"{name}, open loop: offered {run.offered:,.0f} req/s ({ARRIVALS}), achieved "
        f"{run.achieved:,.0f} req/s, {len(latencies):,} requests, {run.errors} errors; "
        f"from scheduled send p50 {q[49]:.2f} ms, p90 {q[89]:.2f} ms, p99 {q[98]:.2f} ms, "
        f"max {latencies[-1]:.2f} ms; send lag p99 {lag[98]:.2f} ms, "
        f"most in flight {run.peak}{capped}; server CPU {cpu / REQUESTS * 1000:.2f} ms, "
        f"generator CPU {own / REQUESTS * 1000:.2f} ms a request"
    )


@dataclass
class _OpenRun:
    """What one open-loop run saw: latencies from the scheduled send, in milliseconds."""

    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)  # how late each request actually left
    errors: int = 0
    in_flight: int = 0
    peak: int = 0
    offered: float = 0.0
    achieved: float = 0.0


async def _open_loop(http: aiohttp.ClientSession, make: Any, rate: float, total: int) -> _OpenRun:
    """Send `total` requests at `rate` a second on a schedule fixed in advance."""
    run = _OpenRun()
    # Request i is due one gap after request i - 1 (the first one gap after the start):
    # exponential gaps make Poisson arrivals, bursts included; equal ones, uniform.
    if ARRIVALS == "poisson":
        gaps = [random.expovariate(rate) for _ in range(total)]
    else:
        gaps = [1 / rate] * total
    offsets = list(itertools.accumulate(gaps))

    async def fire(scheduled: float) -> None:
        run.in_flight += 1
        run.peak = max(run.peak, run.in_flight)
        url, headers = make()
        run.lags.append((time.perf_counter() - scheduled) * 1000)
        try:
            async with http.get(url, headers=headers) as response:
                await response.read()
                ok = response.status in (200, 204)
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        ended = time.perf_counter()
        run.in_flight -= 1
        if ok:
            run.latencies.append((ended - scheduled) * 1000)
        else:  # counted, not timed: an error's latency says nothing of the call's
            run.errors += 1

    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    for offset in offsets:
        scheduled = start + offset
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        # Late (the loop was busy): sent at once, and its latency still counts from
        # `scheduled`, so the lateness is measured, not dropped.
        task = asyncio.create_task(fire(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    # Offered: as scheduled (a Poisson draw is near, not at, `rate`); achieved: answered
    # until the last answer, so a server that falls behind shows a lower figure.
    run.offered = total / offsets[-1]
    run.achieved = len(run.latencies) / (time.perf_counter() - start)
    return run


def _own_cpu() -> float:
    """Return this process's CPU seconds (the load generator's, user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    asyncio.run(main())
