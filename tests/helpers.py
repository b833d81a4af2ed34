"""Small helpers shared by the tests: reading bundles and checking them like a device would."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import text


def path_of(url: str) -> str:
    """Return the path and query of an absolute URL the service handed out."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def unpack(pkpass: bytes) -> dict[str, bytes]:
    """Return the files of a .pkpass by name."""
    with zipfile.ZipFile(io.BytesIO(pkpass)) as bundle:
        return {name: bundle.read(name) for name in bundle.namelist()}


def verify_pkpass(pkpass: bytes, ca_file: Path, workdir: Path) -> dict[str, Any]:
    """Check a bundle as PROTOCOLS.md section 1 says; return its pass.json."""
    files = unpack(pkpass)
    manifest = json.loads(files["manifest.json"])
    listed = set(manifest)
    present = set(files) - {"manifest.json", "signature"}
    assert listed == present, f"manifest lists {listed ^ present} wrongly"
    for name, digest in manifest.items():
        assert hashlib.sha1(files[name]).hexdigest() == digest, f"{name} hash mismatch"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "manifest.json").write_bytes(files["manifest.json"])
    (workdir / "signature").write_bytes(files["signature"])
    verified = subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(workdir / "signature"),
            "-content",
            str(workdir / "manifest.json"),
            "-CAfile",
            str(ca_file),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stderr
    printed = subprocess.run(
        [
            "openssl",
            "cms",
            "-cmsout",
            "-print",
            "-inform",
            "DER",
            "-in",
            str(workdir / "signature"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "signingTime" in printed
    assert "eContent: <ABSENT>" in printed
    pass_json: dict[str, Any] = json.loads(files["pass.json"])
    return pass_json


async def issue_loyalty(client: Any, headers: dict[str, str], external_id: str) -> dict[str, Any]:
    """Issue a loyalty pass through the API for a customer named by external id."""
    response = await client.post(
        "/api/v1/passes",
        json={"kind": "loyalty", "customer_external_id": external_id},
        headers=headers,
    )
    assert response.status in (200, 201), await response.text()
    issued: dict[str, Any] = await response.json()
    return issued


async def count_rows(container: Any, table: str) -> int:
    """Return how many rows a table holds."""
    async with container.engine.connect() as connection:
        result = await connection.execute(text(f"SELECT count(*) FROM {table}"))
        return int(result.scalar_one())
