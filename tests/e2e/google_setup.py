"""The service wired to the local Google stand-in, as `serve` would run it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from tests.fakes.google import FakeGoogleServer
from walletsvc.google.dev_material import ensure_dev_service_account

ISSUER = "3388000000022100000"
PROGRAM = "kaffee"


def public_key_of(service_account: Path) -> bytes:
    info = json.loads(service_account.read_text())
    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def service_account_for(server: FakeGoogleServer, directory: Path) -> Path:
    """Write a service-account key whose token_uri is the fake's; teach the fake its key."""
    path = ensure_dev_service_account(directory / "google-sa.json", token_uri=server.token_url)
    server.public_key_pem = public_key_of(path)
    return path


def google_settings(server: FakeGoogleServer, account: Path, **extra: Any) -> dict[str, Any]:
    return {
        "enabled": True,
        "service_account_file": account,
        "issuer_id": ISSUER,
        "api_base_url": server.api_url,
        "sync_delay_s": 0.2,
        "retry_first_backoff_s": 0.02,
        "retry_max_backoff_s": 0.2,
        **extra,
    }


PROGRAM_BODY: dict[str, Any] = {
    "id": PROGRAM,
    "name": "Kaffee & Co Rewards",
    "tiers": [
        {"name": "Bronze", "min_points": 0},
        {"name": "Gold", "min_points": 100, "display_name": {"en": "Gold", "de": "Gold"}},
    ],
    "google": {"issuer_id": ISSUER},
}


async def create_program(client: Any, admin: dict[str, str]) -> None:
    response = await client.post("/api/v1/programs", json=PROGRAM_BODY, headers=admin)
    assert response.status == 201, await response.text()


async def until(condition: Callable[[], bool], seconds: float = 10) -> None:
    for _ in range(int(seconds * 50)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")
