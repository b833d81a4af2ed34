"""`walletsvc serve` with no configuration at all: the README's first five minutes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import verify_pkpass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def call(method: str, url: str, key: str | None = None, body: dict | None = None):
    request = urllib.request.Request(url, method=method)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    data = None
    if body is not None:
        request.add_header("Content-Type", "application/json")
        data = json.dumps(body).encode()
    with urllib.request.urlopen(request, data=data, timeout=10) as response:
        return response.status, response.read(), response.headers


@pytest.fixture
def served(tmp_path: Path):
    """Start the console script in an empty directory with no WALLETSVC_ settings."""
    executable = shutil.which("walletsvc", path=str(Path(sys.executable).parent))
    assert executable, "the walletsvc console script is not installed beside this Python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALLETSVC_")}
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [executable, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                call("GET", f"{base}/healthz")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "serve.log").read_text()) from None
                time.sleep(0.2)
        yield base, tmp_path, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=20)
        log.close()


def test_zero_config_service_issues_a_pass_that_verifies_offline(served):
    base, workdir, _process = served
    data = workdir / ".walletsvc"
    key = (data / "admin-api-key").read_text().strip()
    assert (workdir / "walletsvc.db").exists()

    programs = json.loads(call("GET", f"{base}/api/v1/programs", key)[1])
    demo = next(p for p in programs["items"] if p["id"] == "demo")
    assert len(demo["tiers"]) >= 3

    status, body, _ = call(
        "POST", f"{base}/api/v1/customers", key, {"external_id": "tour-1", "consents": {}}
    )
    assert status == 201
    customer = json.loads(body)
    status, body, _ = call(
        "POST",
        f"{base}/api/v1/passes",
        key,
        {"program": "demo", "kind": "loyalty", "customer_id": customer["id"]},
    )
    assert status == 201
    issued = json.loads(body)

    status, pkpass, headers = call("GET", issued["apple"]["pkpass_url"])
    assert status == 200 and headers["Content-Type"] == "application/vnd.apple.pkpass"
    pass_json = verify_pkpass(pkpass, data / "apple" / "wwdr-dev-ca.pem", workdir / "check")
    assert pass_json["serialNumber"] == issued["serial"]
    assert pass_json["webServiceURL"] == f"{base}/apple"

    log = (workdir / "serve.log").read_text()
    assert "WILL NOT INSTALL" in log  # the development warning is loud
    assert key not in log  # the admin key itself is never printed


def test_service_stops_cleanly_on_sigterm(served):
    base, workdir, process = served
    assert call("GET", f"{base}/readyz")[0] == 200
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    log = (workdir / "serve.log").read_text()
    assert "Traceback" not in log
