"""Real processes for the failure and scale-out drills.

`walletsvc serve` and `walletsvc relay` run as the operator runs them (a TOML file,
their own process), on PostgreSQL; a private PostgreSQL cluster and a private NATS
server can be stopped and started without touching the shared servers other tests
use. A `Till` signs scans as a POS terminal does, over a plain aiohttp session.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from tests.conftest import ADMIN_KEY, CERTS, EXTERNAL_DATABASE, SECRET_KEY
from walletsvc.intake.standard_webhooks import decode_secret, signature_headers

PG_BIN = Path("/usr/lib/postgresql/15/bin")
NATS_SERVER = Path("/usr/sbin/nats-server")
# Port ranges of the drills (kept apart from other suites that start servers).
SERVICE_PORTS = range(18740, 18780)
POSTGRES_PORTS = range(55440, 55450)
NATS_PORTS = range(14240, 14250)
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
OCCURRED_AT = "2026-11-22T10:00:00+01:00"


def port_in(ports: Iterable[int], taken: set[int] | None = None) -> int:
    """Return the first port of `ports` nobody listens on (and not in `taken`)."""
    for port in ports:
        if taken is not None and port in taken:
            continue
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        if taken is not None:
            taken.add(port)
        return port
    raise RuntimeError(f"no free port in {ports}")


# --- servers the drills may stop -----------------------------------------------------------


class PrivatePostgres:
    """A throwaway PostgreSQL 15 cluster in a temporary directory, run as the `postgres` user."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
        self.directory = Path(tempfile.mkdtemp(prefix="walletsvc-drill-pg-"))
        self.data = self.directory / "data"
        self.port = port_in(POSTGRES_PORTS)
        self.log = self.directory / "postgres.log"

    def _as_postgres(self, *command: str) -> subprocess.CompletedProcess[str]:
        prefix = [] if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--"]
        return subprocess.run(
            [*prefix, *command], capture_output=True, text=True, check=False, timeout=60
        )

    def init(self) -> None:
        """Make the cluster: trust auth, and no fsync (no drill cuts the power)."""
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        made = self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync",
        )  # fmt: skip
        if made.returncode != 0:
            raise RuntimeError(f"initdb failed: {made.stderr}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c max_connections=200"
        )
        started = self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log),
            "-w", "start",
        )  # fmt: skip
        if started.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {started.stderr}\n{self.log.read_text()}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; `fast` ends every session at once, `immediate` is a crash."""
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def server_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def remove(self) -> None:
        """Crash-stop the server if it runs, and delete the cluster."""
        self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


class PrivateNats:
    """A nats-server with JetStream on a port and store directory of its own."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = port_in(NATS_PORTS)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start the server and wait until it listens."""
        self.spawn()
        for _ in range(100):
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError("nats-server did not start")

    def spawn(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "nats.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(NATS_SERVER), "-a", "127.0.0.1", "-p", str(self.port), "-js",
                 "-sd", str(self.directory / "store")],
                stdout=log, stderr=log,
            )  # fmt: skip

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


# --- databases ---------------------------------------------------------------------------


def shared_server_url() -> str:
    """Return the PostgreSQL server the suite runs on (WALLETSVC_TEST_DATABASE_URL's)."""
    assert EXTERNAL_DATABASE is not None, "drills run in the PostgreSQL pass"
    url = EXTERNAL_DATABASE.replace("postgresql+asyncpg://", "postgresql://")
    return url.rsplit("/", 1)[0]


async def create_database(server_url: str, prefix: str = "walletsvc_drill") -> str:
    """Create a fresh database on the server; return its asyncpg URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(f"{server_url}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"{server_url}/{name}"


async def drop_database(database_url: str) -> None:
    server_url, name = database_url.rsplit("/", 1)
    admin = await asyncpg.connect(f"{server_url}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def sqlalchemy_url(database_url: str) -> str:
    return database_url.replace("postgresql://", "postgresql+asyncpg://")


# --- the service as a process --------------------------------------------------------------


def toml_lines(table: dict[str, Any], prefix: str = "") -> list[str]:
    """Render nested settings as TOML (JSON scalars are valid TOML values)."""
    lines = [f"{key} = {json.dumps(value)}" for key, value in table.items() if not _nested(value)]
    for key, value in table.items():
        if isinstance(value, dict):
            lines += ["", f"[{prefix}{key}]", *toml_lines(value, f"{prefix}{key}.")]
        elif _nested(value):
            for item in value:
                lines += ["", f"[[{prefix}{key}]]", *toml_lines(item, f"{prefix}{key}.")]
    return lines


def _nested(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and bool(value) and isinstance(value[0], dict)
    )


def service_settings(
    database_url: str, data_dir: Path, port: int, *, apns: Any = None, **more: Any
) -> dict[str, Any]:
    """Settings of one `walletsvc serve` on `database_url`; `apns` (a FakeApnsServer) pushes."""
    apple: dict[str, Any] = {
        "pass_certificate": str(CERTS / "pass-certificate.pem"),
        "pass_key": str(CERTS / "pass-key.pem"),
        "wwdr_certificate": str(CERTS / "wwdr-dev-ca.pem"),
    }
    if apns is not None:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        ca_file = data_dir.parent / f"apns-ca-{port}.pem"
        ca_file.write_bytes(apns.ca_pem)
        apple["apns"] = {
            "enabled": True,
            "endpoint": apns.url,
            "server_ca_file": str(ca_file),
            "push_delay_s": 0,
        }
    settings: dict[str, Any] = {
        "database_url": sqlalchemy_url(database_url),
        "data_dir": str(data_dir),
        "public_url": f"http://127.0.0.1:{port}",
        "port": port,
        "admin_api_key": ADMIN_KEY,
        "secret_key": SECRET_KEY,
        "log_format": "json",
        "log_level": "warning",
        "apple": apple,
        "loyalty": {"review_interval_s": 0},
        # Eight tills on one terminal far outrun a real one: the limits stay on but out of
        # the way (they have tests of their own, across processes too).
        "limits": {
            scope: {"rate_per_s": 1_000_000, "burst": 1_000_000}
            for scope in ("api_key", "terminal", "apple_device")
        },
    }
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key] = _merged(settings[key], value)
        else:
            settings[key] = value
    return settings


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


class ServiceProcess:
    """`walletsvc --config FILE serve` (or `relay`) in its own process, logging to a file."""

    def __init__(self, directory: Path, settings: dict[str, Any], command: str = "serve") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.command = command
        self.port = int(settings["port"])
        self.base = f"http://127.0.0.1:{self.port}"
        self.config = directory / "walletsvc.toml"
        self.config.write_text("\n".join(toml_lines(settings)) + "\n")
        self.log = directory / f"{command}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "walletsvc", "--config", str(self.config), self.command],
                cwd=self.directory, stdout=out, stderr=out,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def wait_ready(self, seconds: float = 60) -> None:
        """Wait until /readyz answers 200 (serve) or the process is up a moment (relay)."""
        assert self.process is not None
        if self.command != "serve":
            await asyncio.sleep(1)
            assert self.process.poll() is None, self.log.read_text()
            return
        deadline = asyncio.get_running_loop().time() + seconds
        async with aiohttp.ClientSession() as http:
            while True:
                assert self.process.poll() is None, f"serve exited:\n{self.log.read_text()}"
                try:
                    async with http.get(f"{self.base}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                assert asyncio.get_running_loop().time() < deadline, self.log.read_text()
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye, as a crashed host or the OOM killer would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> int | None:
        """SIGTERM and wait; return the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def tracebacks(self) -> list[str]:
        text = self.log.read_text() if self.log.exists() else ""
        return [line for line in text.splitlines() if "Traceback" in line or '"exception"' in line]


# --- clients -----------------------------------------------------------------------------


class Till:
    """A POS terminal speaking the signed scan API to one service process."""

    def __init__(self, http: aiohttp.ClientSession, terminal_id: str, secret: str) -> None:
        self.http = http
        self.terminal_id = terminal_id
        self.key = decode_secret(secret)

    async def scan(
        self, base: str, barcode: str, scan_id: str, amount: str = "12.50"
    ) -> tuple[int, str, dict[str, Any]]:
        """Send one purchase scan; return the status, content type and JSON body."""
        body = json.dumps(
            {
                "scan_id": scan_id,
                "barcode": barcode,
                "action": "purchase",
                "occurred_at": OCCURRED_AT,
                "amount": {"value": amount, "currency": "EUR"},
            }
        ).encode()
        headers = signature_headers([self.key], f"msg_{uuid.uuid4().hex}", datetime.now(UTC), body)
        headers["X-Terminal-Id"] = self.terminal_id
        headers["Content-Type"] = "application/json"
        async with self.http.post(f"{base}/api/v1/scans", data=body, headers=headers) as response:
            text = await response.text()
            try:
                answer = json.loads(text)
            except ValueError:
                answer = {"raw": text[:200]}
            return response.status, response.content_type, answer


async def open_till(
    http: aiohttp.ClientSession, base: str, store: str = "berlin", terminal: str = "till-1"
) -> Till:
    """Create a store and a `walletsvc` terminal through the admin API."""
    async with http.post(
        f"{base}/api/v1/stores",
        json={"id": store, "program": "demo", "name": store.title(), "latitude": 52.52,
              "longitude": 13.405, "radius_m": 100},
        headers=ADMIN,
    ) as response:  # fmt: skip
        assert response.status in (201, 409), await response.text()
    async with http.post(
        f"{base}/api/v1/stores/{store}/terminals",
        json={"id": terminal, "adapter": "walletsvc"},
        headers=ADMIN,
    ) as response:
        made = await response.json()
        assert response.status == 201, made
    return Till(http, terminal, made["secret"])


async def issue_loyalty(
    http: aiohttp.ClientSession, base: str, external_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Issue a loyalty card; return the API's answer and the pass.json it downloads as."""
    async with http.post(
        f"{base}/api/v1/passes",
        json={"kind": "loyalty", "customer_external_id": external_id},
        headers=ADMIN,
    ) as response:
        issued = await response.json()
        assert response.status == 201, issued
    return issued, await pass_json(http, issued)


async def issue_coupon(
    http: aiohttp.ClientSession, base: str, external_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Issue a coupon; return the API's answer and its pass.json."""
    async with http.post(
        f"{base}/api/v1/passes",
        json={"kind": "coupon", "customer_external_id": external_id,
              "coupon": {"title": "10% off", "discount": "10%"}},
        headers=ADMIN,
    ) as response:  # fmt: skip
        issued = await response.json()
        assert response.status == 201, issued
    return issued, await pass_json(http, issued)


async def pass_json(http: aiohttp.ClientSession, issued: dict[str, Any]) -> dict[str, Any]:
    async with http.get(issued["apple"]["pkpass_url"]) as response:
        assert response.status == 200
        bundle = zipfile.ZipFile(io.BytesIO(await response.read()))
    document: dict[str, Any] = json.loads(bundle.read("pass.json"))
    return document


async def register_device(
    http: aiohttp.ClientSession, base: str, document: dict[str, Any], device: str, token: str
) -> int:
    """Register a device for a pass as Wallet does; return the status."""
    path = (
        f"/apple/v1/devices/{device}/registrations/"
        f"{document['passTypeIdentifier']}/{document['serialNumber']}"
    )
    async with http.post(
        base + path,
        json={"pushToken": token},
        headers={"Authorization": f"ApplePass {document['authenticationToken']}"},
    ) as response:
        return response.status


async def change_coupon(http: aiohttp.ClientSession, base: str, serial: str, title: str) -> int:
    """PATCH a coupon's title (a change Wallet shows, so a push is owed)."""
    async with http.patch(
        f"{base}/api/v1/passes/{serial}", json={"coupon": {"title": title}}, headers=ADMIN
    ) as response:
        await response.read()
        return response.status
