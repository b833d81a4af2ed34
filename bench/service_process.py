"""Start walletsvc as its own process on a fresh PostgreSQL database, for the HTTP benches."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import asyncpg

from walletsvc.config import LimitsSettings

PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
ADMIN = "bench-admin-key-0123456789abcdefghijklmnop"
# `walletsvc serve --workers N` when WORKERS is set (one process otherwise).
WORKERS = ["--workers", os.environ["WORKERS"]] if os.environ.get("WORKERS") else []
# Every rate-limit scope the service has, from its own settings model.
UNLIMITED_SCOPES = tuple(LimitsSettings().rate_limits())


async def fresh_database(name: str) -> None:
    """Drop and create the bench database."""
    admin = await asyncpg.connect(f"{PG}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


def start_server(
    database: str, data_dir: Path, port: int, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Run `walletsvc serve` (development mode, demo program) on the database."""
    env = dict(
        os.environ,
        WALLETSVC_DATABASE_URL=f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}/{database}",
        WALLETSVC_DATA_DIR=str(data_dir),
        WALLETSVC_ADMIN_API_KEY=ADMIN,
        WALLETSVC_PUBLIC_URL=f"http://127.0.0.1:{port}",
        WALLETSVC_PORT=str(port),
        WALLETSVC_LOG_LEVEL="warning",
        **(extra_env or {}),
    )
    # The benches drive one terminal, one key and one address far beyond what a till or a
    # phone sends: limits stay on (their cost is measured) but out of the way.
    # BENCH_LIMITS=off turns them off instead, to measure what they cost.
    rate = "0" if os.environ.get("BENCH_LIMITS") == "off" else "1000000"
    for scope in UNLIMITED_SCOPES:
        env[f"WALLETSVC_LIMITS__{scope.upper()}__RATE_PER_S"] = rate
        env[f"WALLETSVC_LIMITS__{scope.upper()}__BURST"] = "1000000"
    return subprocess.Popen(
        [sys.executable, "-m", "walletsvc", "serve", *WORKERS],
        env=env,
        cwd=data_dir,
        stdout=subprocess.DEVNULL,
    )


async def wait_ready(base: str) -> None:
    """Wait until /readyz answers 200."""
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the server did not become ready")


TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def server_pids(pid: int) -> list[int]:
    """Return the server process and its worker processes (`serve --workers N`)."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                pids.append(int(entry.name))
    return pids


def cpu_seconds(pid: int) -> float:
    """Return the CPU seconds (user + system) of a server process and its live workers."""
    total = 0
    for each in server_pids(pid):
        fields = _stat(each)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total / TICK
