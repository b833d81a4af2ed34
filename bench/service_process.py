"""Start walletsvc as its own process on a fresh PostgreSQL database, for the HTTP benches."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import asyncpg

PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
ADMIN = "bench-admin-key-0123456789abcdefghijklmnop"


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
    return subprocess.Popen(
        [sys.executable, "-m", "walletsvc", "serve"],
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
