"""Importing customers from the brand's CRM export: good rows in, bad rows reported."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys
from pathlib import Path

from tests.conftest import ADMIN_KEY, SECRET_KEY

CSV = """external_id;email;phone;location_consent;marketing_consent
crm-1;anna@example.de;+49 30 1234567;ja;nein
crm-2;;;;
crm 3;bad@example.de;;;
crm-4;not-an-email;;;
crm-5;;;vielleicht;
crm-1;;;;true
"""


def _env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "WALLETSVC_DATABASE_URL": database_url,
        "WALLETSVC_DATA_DIR": str(tmp_path / "data"),
        "WALLETSVC_SECRET_KEY": SECRET_KEY,
        "WALLETSVC_ADMIN_API_KEY": ADMIN_KEY,
        "PATH": "/usr/bin:/bin",
    }


def _command(database_url: str, tmp_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "walletsvc", *args]


def _walletsvc(database_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(database_url, tmp_path, *args),
        env=_env(database_url, tmp_path),
        capture_output=True,
        text=True,
    )


async def test_an_import_creates_updates_and_reports_bad_rows(
    client, admin, database_url, tmp_path
):
    source = tmp_path / "crm.csv"
    source.write_text(CSV, encoding="utf-8-sig")  # with a BOM, as spreadsheets save it
    rejects = tmp_path / "rejects.csv"
    # Run beside the live service (its workers share the database), without blocking it.
    process = await asyncio.create_subprocess_exec(
        *_command(database_url, tmp_path, "customers", "import", str(source)),
        "--rejects",
        str(rejects),
        env=_env(database_url, tmp_path),
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    assert process.returncode == 1, stderr.decode()  # some rows were rejected
    assert "6 rows: 2 created, 1 updated, 3 rejected" in stderr.decode()
    rows = list(csv.DictReader(io.StringIO(rejects.read_text())))
    assert [(r["line"], r["external_id"], r["field"]) for r in rows] == [
        ("4", "crm 3", "external_id"),
        ("5", "crm-4", "email"),
        ("6", "crm-5", "location_consent"),
    ]
    assert "example.de" not in rejects.read_text()  # reports never repeat personal data
    anna = await client.post("/api/v1/customers", json={"external_id": "crm-1"}, headers=admin)
    profile = await anna.json()
    # The second row for crm-1 changed the consents; the email stayed linked as a hash.
    assert profile["consents"] == {"location": False, "marketing": True}
    assert {i["kind"] for i in profile["identifiers"]} >= {"email_sha256", "phone_sha256"}


def test_a_file_that_is_not_a_customer_csv_is_refused_whole(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    assert _walletsvc(url, tmp_path, "migrate").returncode == 0
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("id,mail\n1,a@b.de\n")
    refused = _walletsvc(url, tmp_path, "customers", "import", str(wrong))
    assert refused.returncode == 2 and "unknown: id, mail" in refused.stderr
    missing = _walletsvc(url, tmp_path, "customers", "import", str(tmp_path / "none.csv"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
