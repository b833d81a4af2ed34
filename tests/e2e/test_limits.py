"""Issue 8, limits: rate limits (429), body sizes per route (413), slow clients (408, cut).

Rates, sizes and deadlines are the real code paths over real HTTP: the app on a local
server for rates and bodies, `walletsvc serve` in its own process for the head
deadline (it is part of the server, not of the app), and two such processes on one
PostgreSQL for a limit shared across processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from tests.conftest import ADMIN_KEY, EXTERNAL_DATABASE, SECRET_KEY, empty_all_tables
from walletsvc.bootstrap import build_container, prepare_database
from walletsvc.config import Settings
from walletsvc.intake.standard_webhooks import decode_secret, signature_headers
from walletsvc.storage.database import create_engine
from walletsvc.storage.tables import metadata
from walletsvc.web.app import create_app

# Ports of this test module's own servers (the range this work was given).
SERVE_PORTS = (18721, 18722, 18723)

TIGHT = {
    "api_key": {"rate_per_s": 1, "burst": 6, "lease": 1},
    "terminal": {"rate_per_s": 2, "burst": 3, "lease": 1},
    "apple_log": {"rate_per_s": 2, "burst": 2, "lease": 1},
    "trusted_proxy_header": "X-Forwarded-For",
    "scan_body_bytes": 1024,
    "apple_log_body_bytes": 2048,
    "body_timeout_s": 1.0,
}


@pytest.fixture
async def limited(
    make_settings: Callable[..., Settings], aiohttp_client: Callable[..., Any]
) -> AsyncIterator[Any]:
    """The app with tight limits, behind a proxy it trusts to say who the client is."""
    container = build_container(make_settings(limits=TIGHT))
    await prepare_database(container)
    try:
        yield await aiohttp_client(create_app(container))
    finally:
        if EXTERNAL_DATABASE is not None:
            await empty_all_tables(container)
        await container.close()


ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def _problem(response: aiohttp.ClientResponse) -> dict[str, Any]:
    assert response.content_type == "application/problem+json", await response.text()
    body: dict[str, Any] = await response.json(content_type=None)
    return body


async def _rate_limited_total(client: Any, scope: str) -> float:
    response = await client.get("/metrics", headers=ADMIN)
    assert response.status == 200
    for line in (await response.text()).splitlines():
        if line.startswith(f'walletsvc_rate_limited_total{{scope="{scope}"}}'):
            return float(line.split()[-1])
    return 0.0


async def _key(client: Any, name: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/api-keys", json={"name": name, "scopes": ["programs:read"]}, headers=ADMIN
    )
    assert response.status == 201, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['key']}"}


async def test_an_api_key_over_its_burst_gets_429_and_another_key_does_not(limited):
    first, second = await _key(limited, "one"), await _key(limited, "two")
    for _ in range(6):
        assert (await limited.get("/api/v1/programs", headers=first)).status == 200
    refused = await limited.get("/api/v1/programs", headers=first)
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) >= 1
    problem = await _problem(refused)
    assert problem["reason"] == "rate_limited" and problem["status"] == 429
    assert (await limited.get("/api/v1/programs", headers=second)).status == 200
    # A key nobody holds spends no one's allowance: it is refused as unknown, not limited.
    forged = {"Authorization": "Bearer wsk_x.nothing"}
    assert (await limited.get("/api/v1/programs", headers=forged)).status == 401


class Till:
    """Signs scans as a terminal; the barcode is never valid, the limit comes first."""

    def __init__(self, terminal_id: str, secret: str) -> None:
        self.terminal_id = terminal_id
        self.key = decode_secret(secret)

    def request(self, barcode: str = "not-a-barcode") -> tuple[bytes, dict[str, str]]:
        body = json.dumps(
            {
                "scan_id": str(uuid.uuid4()),
                "barcode": barcode,
                "action": "identify",
                "occurred_at": "2026-11-22T10:00:00+01:00",
            }
        ).encode()
        headers = signature_headers([self.key], f"msg_{uuid.uuid4().hex}", datetime.now(UTC), body)
        headers["X-Terminal-Id"] = self.terminal_id
        headers["Content-Type"] = "application/json"
        return body, headers


async def _tills(post: Callable[..., Any], names: list[str]) -> list[Till]:
    store = {
        "id": "berlin",
        "program": "demo",
        "name": "Berlin",
        "latitude": 52.52,
        "longitude": 13.405,
        "radius_m": 100,
    }
    status, _ = await post("/api/v1/stores", store)
    assert status == 201
    tills = []
    for name in names:
        status, terminal = await post(
            "/api/v1/stores/berlin/terminals", {"id": name, "adapter": "walletsvc"}
        )
        assert status == 201, terminal
        tills.append(Till(name, terminal["secret"]))
    return tills


def _poster(client: Any) -> Callable[..., Any]:
    async def post(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        response = await client.post(path, json=body, headers=ADMIN)
        return response.status, await response.json()

    return post


async def test_a_terminal_over_its_burst_gets_429_others_do_not_and_it_recovers(limited):
    busy, quiet = await _tills(_poster(limited), ["till-busy", "till-quiet"])
    before = await _rate_limited_total(limited, "terminal")
    statuses = []
    for _ in range(3):
        body, headers = busy.request()
        statuses.append((await limited.post("/api/v1/scans", data=body, headers=headers)).status)
    assert 429 not in statuses, statuses  # the burst: refused for its barcode, not its rate
    body, headers = busy.request()
    refused = await limited.post("/api/v1/scans", data=body, headers=headers)
    assert refused.status == 429
    assert (await _problem(refused))["reason"] == "rate_limited"
    wait = int(refused.headers["Retry-After"])
    body, headers = quiet.request()
    assert (await limited.post("/api/v1/scans", data=body, headers=headers)).status != 429
    # A forged scan in the busy terminal's name is refused for its signature, not counted.
    body, headers = busy.request()
    headers["webhook-signature"] = "v1,AAAA"
    assert (await limited.post("/api/v1/scans", data=body, headers=headers)).status == 401
    await asyncio.sleep(wait)
    body, headers = busy.request()
    assert (await limited.post("/api/v1/scans", data=body, headers=headers)).status != 429
    assert await _rate_limited_total(limited, "terminal") == before + 1


async def test_the_apple_log_is_limited_per_client_address(limited):
    log = {"logs": ["registration failed"]}
    before = await _rate_limited_total(limited, "apple_log")

    async def from_(address: str) -> aiohttp.ClientResponse:
        # The trusted proxy appends the client's address last; what came before is the client's.
        forwarded = f"198.51.100.1, {address}"
        return await limited.post("/apple/v1/log", json=log, headers={"X-Forwarded-For": forwarded})

    assert [(await from_("203.0.113.7")).status for _ in range(2)] == [200, 200]
    refused = await from_("203.0.113.7")
    assert refused.status == 429 and "Retry-After" in refused.headers
    assert (await _problem(refused))["reason"] == "rate_limited"
    assert (await from_("203.0.113.8")).status == 200
    # One IPv6 subscriber holds a /64: its addresses share one allowance.
    assert [(await from_(f"2001:db8::{n}")).status for n in (1, 2, 3)] == [200, 200, 429]
    assert await _rate_limited_total(limited, "apple_log") == before + 2


async def test_a_forwarded_header_is_ignored_unless_the_proxy_is_trusted(
    make_settings: Callable[..., Settings], aiohttp_client: Callable[..., Any]
):
    container = build_container(
        make_settings(limits={"apple_log": {"rate_per_s": 1, "burst": 2, "lease": 1}})
    )
    await prepare_database(container)
    try:
        client = await aiohttp_client(create_app(container))
        statuses = [
            (
                await client.post(
                    "/apple/v1/log",
                    json={"logs": ["x"]},
                    headers={"X-Forwarded-For": f"203.0.113.{n}"},
                )
            ).status
            for n in range(3)
        ]
        assert statuses == [200, 200, 429]  # all from the same peer, whatever they claim
    finally:
        if EXTERNAL_DATABASE is not None:
            await empty_all_tables(container)
        await container.close()


async def test_bodies_over_a_routes_limit_are_refused_with_or_without_content_length(limited):
    big = json.dumps({"logs": ["x" * 3000]}).encode()
    sized = await limited.post(
        "/apple/v1/log", data=big, headers={"Content-Type": "application/json"}
    )
    assert sized.status == 413
    assert (await _problem(sized))["reason"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 500):
            yield big[start : start + 500]

    chunked = await limited.post(
        "/apple/v1/log", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert chunked.request_info.headers.get("Transfer-Encoding") == "chunked"
    assert chunked.status == 413
    assert (await _problem(chunked))["reason"] == "payload_too_large"
    scan = await limited.post("/api/v1/scans", data=b"{" + b" " * 1100 + b"}")
    assert scan.status == 413
    # A POS webhook may be larger than the global 256 KiB (a Shopify order): not refused
    # for its size, but for being sent to a terminal that does not exist.
    order = b"{" + b" " * (300 * 1024) + b"}"
    webhook = await limited.post("/webhooks/pos/shopify/nowhere", data=order)
    assert webhook.status != 413, await webhook.text()


def _raw(port: int) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=15)
    return connection


def _read_until_closed(connection: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """Read until the server closes; return what it sent and when it closed."""
    started = time.monotonic()
    received = b""
    connection.settimeout(limit_s)
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received, time.monotonic() - started


async def test_a_chunked_body_is_refused_before_it_ends(limited):
    port = limited.server.port
    connection = await asyncio.to_thread(_raw, port)
    head = (
        "POST /apple/v1/log HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    # Three chunks are past the 2 KiB limit; the body never ends (no final 0 chunk).
    await asyncio.to_thread(connection.sendall, head.encode() + chunk * 3)
    connection.settimeout(5)
    answer = b""
    while b"payload_too_large" not in answer and (
        chunk := await asyncio.to_thread(connection.recv, 65536)
    ):
        answer += chunk
    connection.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"reason": "payload_too_large"' in answer


async def test_a_body_that_trickles_gets_408_after_the_deadline(limited):
    port = limited.server.port
    connection = await asyncio.to_thread(_raw, port)
    head = (
        "POST /apple/v1/log HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n{"
    )
    started = time.monotonic()
    await asyncio.to_thread(connection.sendall, head.encode())
    connection.settimeout(5)
    answer = await asyncio.to_thread(connection.recv, 65536)
    elapsed = time.monotonic() - started
    connection.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"reason": "request_timeout"' in answer
    assert 0.9 <= elapsed < 3.0, elapsed  # body_timeout_s = 1


# ---- `walletsvc serve` in its own process: the head deadline and keep-alive --------------


def _serve(
    workdir: Path, port: int, database_url: str, limits: dict[str, str]
) -> subprocess.Popen[bytes]:
    executable = shutil.which("walletsvc", path=str(Path(sys.executable).parent))
    assert executable, "the walletsvc console script is not installed beside this Python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALLETSVC_")}
    env.update(
        WALLETSVC_DATABASE_URL=database_url,
        WALLETSVC_ADMIN_API_KEY=ADMIN_KEY,
        WALLETSVC_SECRET_KEY=SECRET_KEY,
        WALLETSVC_PORT=str(port),
        WALLETSVC_LOG_LEVEL="warning",
        WALLETSVC_LOYALTY__REVIEW_INTERVAL_S="0",
    )
    env.update({f"WALLETSVC_LIMITS__{name.upper()}": value for name, value in limits.items()})
    log = (workdir / f"serve-{port}.log").open("w")
    return subprocess.Popen(
        [executable, "serve"], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
    )


def _wait_ready(port: int, process: subprocess.Popen[bytes], workdir: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if probe.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError((workdir / f"serve-{port}.log").read_text())
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def slow_client_server(tmp_path: Path):
    """`walletsvc serve` with short deadlines: heads 1.5 s, bodies 2 s, idle 4 s."""
    port = SERVE_PORTS[0]
    limits = {
        "header_timeout_s": "1.5",
        "body_timeout_s": "2",
        "keepalive_timeout_s": "4",
        "lingering_s": "0.5",
    }
    url = f"sqlite+aiosqlite:///{tmp_path / 'walletsvc.db'}"
    process = _serve(tmp_path, port, url, limits)
    try:
        _wait_ready(port, process, tmp_path)
        yield port
    finally:
        _stop(process)


def _trickle_head(port: int) -> tuple[float, bytes]:
    connection = _raw(port)
    started = time.monotonic()
    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    received = b""
    try:
        for n in range(40):  # one header line every 0.25 s, never the blank line
            time.sleep(0.25)
            connection.sendall(f"X-Slow-{n}: 1\r\n".encode())
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        connection.settimeout(1)
        received = connection.recv(1024)
    except (TimeoutError, ConnectionResetError):
        pass
    elapsed = time.monotonic() - started
    connection.close()
    return elapsed, received


def test_a_head_that_trickles_is_cut_off_at_the_deadline(slow_client_server):
    elapsed, received = _trickle_head(slow_client_server)
    assert received == b""  # closed, not answered
    assert 1.4 <= elapsed < 3.5, elapsed  # header_timeout_s = 1.5 (+ a send that fails)


def test_a_body_that_trickles_is_answered_408_and_closed(slow_client_server):
    connection = _raw(slow_client_server)
    connection.sendall(
        b"POST /apple/v1/log HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    answer, closed_after = _read_until_closed(connection, 10)
    connection.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer
    assert 1.9 <= closed_after < 4.0, closed_after  # 2 s deadline + 0.5 s lingering


def test_an_idle_connection_is_closed_after_the_keepalive_timeout(slow_client_server):
    connection = _raw(slow_client_server)
    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    first, closed_after = _read_until_closed(connection, 10)
    connection.close()
    assert first.startswith(b"HTTP/1.1 200")
    assert 3.5 <= closed_after < 6.0, closed_after  # keepalive_timeout_s = 4


# ---- two processes on one PostgreSQL share one terminal's limit ----------------------------

SHARED = {"rate_per_s": 5.0, "burst": 10, "lease": 3}


@pytest.mark.postgres
async def test_two_processes_admit_one_terminals_scans_within_the_documented_bound(
    tmp_path: Path, external_database: str
):
    limits = {
        "terminal__rate_per_s": str(SHARED["rate_per_s"]),
        "terminal__burst": str(SHARED["burst"]),
        "terminal__lease": str(SHARED["lease"]),
    }
    ports = SERVE_PORTS[1:]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        # One after the other: two first starts on an empty database race to create
        # the demo program (the loser exits), which is not what this test is about.
        for port in ports:
            processes.append(_serve(tmp_path, port, external_database, limits))
            await asyncio.to_thread(_wait_ready, port, processes[-1], tmp_path)
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        async with aiohttp.ClientSession() as http:

            async def post(path: str, body: dict[str, Any]) -> tuple[int, Any]:
                async with http.post(bases[0] + path, json=body, headers=ADMIN) as response:
                    return response.status, await response.json()

            (till,) = await _tills(post, ["till-shared"])
            admitted = {base: 0 for base in bases}
            refused = 0
            window_s = 3.0
            started = time.time()
            stop_at = started + window_s

            async def worker(n: int) -> None:
                nonlocal refused
                base = bases[n % 2]
                while time.time() < stop_at:
                    body, headers = till.request()
                    async with http.post(
                        base + "/api/v1/scans", data=body, headers=headers
                    ) as response:
                        if response.status == 429:
                            refused += 1
                        else:
                            assert 400 <= response.status < 500, await response.text()
                            admitted[base] += 1

            await asyncio.gather(*(worker(n) for n in range(6)))
            elapsed = time.time() - started
        total = sum(admitted.values())
        rate, burst, lease = SHARED["rate_per_s"], SHARED["burst"], SHARED["lease"]
        bound = burst + rate * elapsed + len(ports) * (lease - 1)
        print(f"admitted {admitted} refused {refused} in {elapsed:.2f}s; bound {bound:.1f}")
        assert refused > 0
        assert all(count > 0 for count in admitted.values()), admitted
        assert total <= bound, (total, bound)
        # Leased tokens a process does not spend are lost, never more than lease - 1 each.
        assert total >= burst + rate * window_s - len(ports) * lease - rate, (total, admitted)
    finally:
        for process in processes:
            _stop(process)
        engine = create_engine(external_database, pool_size=1)
        try:
            names = ", ".join(table.name for table in metadata.sorted_tables)
            async with engine.begin() as connection:
                await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        finally:
            await engine.dispose()
