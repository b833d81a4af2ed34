"""Latency of Apple's "what changed?" and "latest pass" calls with 1,000,000 registrations.

Target (issue 3): p99 at most 10 ms for both on PostgreSQL.

    .venv/bin/python bench/apple_web_service.py            # 1,000,000 registrations
    REGISTRATIONS=100000 .venv/bin/python bench/apple_web_service.py

What it does, in order:
1. creates a fresh PostgreSQL database (BENCH_DATABASE, default walletsvc_bench on
   127.0.0.1:5432), migrates it and starts `walletsvc serve` on it as its own process;
2. issues SAMPLE passes through the API and registers each on a device through the
   PassKit web service, as Wallet would (so they carry real sealed tokens);
3. bulk-loads the rest of the registrations (customers, passes, devices,
   registrations, with update tags spread over the sequence) in SQL;
4. ANALYZEs, prints the query plans of both calls (docs/apple-web-service.md keeps them);
5. for each client count in CONCURRENCY (default 1,4,16), fires that many clients at
   each call over loopback for REQUESTS requests and prints throughput and
   p50/p90/p99/max latency measured by the client.

The load generator runs in this process and the server in another; both share the
machine's two cores with PostgreSQL, so figures are upper bounds on latency.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import tempfile
import time
import zipfile
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
CONCURRENCY = [int(n) for n in os.environ.get("CONCURRENCY", "1,4,16").split(",")]
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
            SELECT p.*, c.*,
              (SELECT md5(g::text) FROM programs g WHERE g.id = p.program_id),
              (SELECT md5(coalesce(string_agg(s::text, ',' ORDER BY s.id), ''))
               FROM stores s WHERE s.program_id = p.program_id)
            FROM passes p JOIN customers c ON c.id = p.customer_id
            WHERE p.serial = $1
            """,
            "b" + "1".zfill(25),
        )
    finally:
        await connection.close()
    print("\nplan, what changed:\n" + "\n".join(row[0] for row in changed))
    print(
        "\nplan, latest pass (the pass, its holder, digests of its program and stores):\n"
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

    for name, make in (("what changed", changed_request), ("latest pass", latest_request)):
        for clients in CONCURRENCY:
            await _report(http, name, make, clients)


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


if __name__ == "__main__":
    asyncio.run(main())
