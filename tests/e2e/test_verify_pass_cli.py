"""`walletsvc verify-pass` checks a pass the running service issued, with no settings at all."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import zipfile
from pathlib import Path

from tests.conftest import CERTS
from tests.helpers import issue_loyalty, path_of


async def walletsvc(*args: str, cwd: Path) -> tuple[int, str, str]:
    """Run the real command line in a directory without settings; return code, out, err."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALLETSVC_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "walletsvc",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def download_issued_pass(client, admin, tmp_path: Path) -> Path:
    issued = await issue_loyalty(client, admin, "crm-verify-1")
    download = await client.get(path_of(issued["apple"]["pkpass_url"]))
    assert download.status == 200
    target = tmp_path / "issued.pkpass"
    target.write_bytes(await download.read())
    return target


async def test_an_issued_pass_verifies_with_the_development_ca(client, admin, tmp_path):
    issued = await download_issued_pass(client, admin, tmp_path)

    code, out, err = await walletsvc(
        "verify-pass", str(issued), "--ca", str(CERTS / "wwdr-dev-ca.pem"), cwd=tmp_path
    )

    assert code == 0, out + err
    assert "✓ signature.signing_time" in out
    assert "✓ chain.root" in out
    assert "✗" not in out


async def test_the_json_report_names_every_check(client, admin, tmp_path):
    issued = await download_issued_pass(client, admin, tmp_path)

    code, out, _ = await walletsvc("verify-pass", str(issued), "--json", cwd=tmp_path)

    report = json.loads(out)
    assert code == 0
    assert report["ok"] is True
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    assert statuses["chain.root"] == "warn"  # no --ca: said, not failed
    assert statuses["manifest"] == statuses["signature.valid"] == statuses["identity"] == "pass"


async def test_a_tampered_copy_fails(client, admin, tmp_path):
    issued = await download_issued_pass(client, admin, tmp_path)
    with zipfile.ZipFile(issued) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    document = json.loads(files["pass.json"])
    document["serialNumber"] = "someone-elses-card"
    files["pass.json"] = json.dumps(document).encode()
    tampered = tmp_path / "tampered.pkpass"
    out_zip = io.BytesIO()
    with zipfile.ZipFile(out_zip, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    tampered.write_bytes(out_zip.getvalue())

    code, out, _ = await walletsvc(
        "verify-pass", str(tampered), "--ca", str(CERTS / "wwdr-dev-ca.pem"), cwd=tmp_path
    )

    assert code == 1
    assert "✗ manifest" in out
    assert "FAILED" in out


async def test_a_missing_file_is_a_usage_error(tmp_path):
    code, _, err = await walletsvc("verify-pass", str(tmp_path / "nowhere.pkpass"), cwd=tmp_path)

    assert code == 2
    assert "cannot read" in err
