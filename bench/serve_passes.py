"""Signed passes served over HTTP: issue, then download, from many concurrent clients.

Target (issue 3): at least 0.5 x the PKCS7-sign-only rate on one core, measured in the
same run.

    .venv/bin/python bench/serve_passes.py                 # CLIENTS=32 PASSES=3000

The service runs as `walletsvc serve` on a fresh PostgreSQL database in its own
process (development signing material: an RSA-2048 pass certificate, like Apple's).
Each client issues a loyalty pass for a new customer (`POST /api/v1/passes`) and
downloads its .pkpass from the returned link, which signs it. Every pass is new, so
each download costs one signature: the signed-pass cache does not help here.
The reference is the same PKCS7 builder call as the shared bench's `ref_sign.py`,
timed in this process on one core right before and after the HTTP run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from service_process import ADMIN, cpu_seconds, fresh_database, start_server, wait_ready

from walletsvc.apple.credentials import load_signing_identity
from walletsvc.apple.pkpass import sign_manifest

ROOT = Path(__file__).resolve().parents[1]
CERTS = ROOT / "certs_example"
DATABASE = os.environ.get("BENCH_DATABASE", "walletsvc_bench_serve")
CLIENTS = int(os.environ.get("CLIENTS", "32"))
PASSES = int(os.environ.get("PASSES", "3000"))
PORT = int(os.environ.get("PORT", "8766"))
# py-spy over one phase ("issue" or "download"): raw stacks to OUT/serve-pyspy-<phase>.txt.
PROFILE = os.environ.get("PROFILE", "")
OUT = Path(os.environ.get("OUT", ROOT / "bench" / "out"))
BASE = f"http://127.0.0.1:{PORT}"


def sign_only_rate(seconds: float = 3.0) -> float:
    """Return PKCS7 detached signatures per second over a manifest-sized message."""
    identity = load_signing_identity(
        wwdr=CERTS / "wwdr-dev-ca.pem",
        certificate=CERTS / "pass-certificate.pem",
        private_key=CERTS / "pass-key.pem",
    )
    manifest = b'{"icon.png":"' + b"0" * 40 + b'"}' * 8
    for _ in range(50):
        sign_manifest(manifest, identity)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        sign_manifest(manifest, identity)
        count += 1
    return count / (time.perf_counter() - started)


async def issue(http: aiohttp.ClientSession, tag: str, n: int) -> str:
    """Issue a loyalty card for a new customer; return its download link."""
    async with http.post(
        f"{BASE}/api/v1/passes",
        json={"kind": "loyalty", "customer_external_id": f"{tag}-{n}"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    ) as response:
        issued = await response.json()
        assert response.status == 201, issued
    link: str = issued["apple"]["pkpass_url"]
    return link


async def download(http: aiohttp.ClientSession, link: str) -> None:
    async with http.get(link) as response:
        body = await response.read()
        assert response.status == 200 and body[:2] == b"PK"


async def run_clients(
    work: Any, total: int, server: int = 0, phase: str = ""
) -> tuple[list[float], float, float]:
    """Run `work(n)` for n in range(total) from CLIENTS clients; time each, and the server's CPU."""
    latencies: list[float] = []
    counter = iter(range(total))
    spy = None
    if PROFILE and PROFILE == phase:
        OUT.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240  (once, before the clock)
        spy = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "py-spy"),
            *("record", "-p", str(server), "-f", "raw", "-r", "200"),
            *("-o", str(OUT / f"serve-pyspy-{phase}.txt")),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.sleep(1)
    cpu_before = cpu_seconds(server) if server else 0.0

    async def client() -> None:
        for n in counter:
            started = time.perf_counter()
            await work(n)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    elapsed = time.perf_counter() - started
    cpu = (cpu_seconds(server) - cpu_before) if server else 0.0
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        await asyncio.wait_for(spy.wait(), timeout=60)
    return latencies, elapsed, cpu


def report(name: str, latencies: list[float], elapsed: float, cpu: float, reference: float) -> None:
    rate = len(latencies) / elapsed
    q = statistics.quantiles(sorted(latencies), n=100)
    print(
        f"{name}, {CLIENTS} clients: {rate:,.0f} passes/s, p50 {q[49]:.1f} ms, "
        f"p99 {q[98]:.1f} ms; {rate / reference:.2f} x sign-only; "
        f"server CPU {cpu / len(latencies) * 1000:.2f} ms a pass"
    )


async def main() -> None:
    await fresh_database(DATABASE)
    before = sign_only_rate()
    with tempfile.TemporaryDirectory() as data_dir:
        server = start_server(DATABASE, Path(data_dir), PORT)
        try:
            await wait_ready(BASE)
            connector = aiohttp.TCPConnector(limit=CLIENTS)
            async with aiohttp.ClientSession(connector=connector) as http:

                async def warm_up(n: int) -> None:
                    await download(http, await issue(http, "warm", n))

                async def issue_then_download(n: int) -> None:
                    await download(http, await issue(http, "both", n))

                await run_clients(warm_up, 200)
                both = await run_clients(issue_then_download, PASSES, server.pid, "issue")
                # Download only: passes issued first, untimed; every first download signs.
                links = [await issue(http, "only", n) for n in range(PASSES)]

                async def first_download(n: int) -> None:
                    await download(http, links[n])

                only = await run_clients(first_download, PASSES, server.pid, "download")
        finally:
            server.terminate()
            server.wait(timeout=30)
    after = sign_only_rate()
    reference = statistics.mean([before, after])
    print(f"PKCS7 sign only, one core: {before:,.0f}/s before, {after:,.0f}/s after")
    report("issue + download", *both, reference)
    report("download only (each a new signature)", *only, reference)


if __name__ == "__main__":
    asyncio.run(main())
