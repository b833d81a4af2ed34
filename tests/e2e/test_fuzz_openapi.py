"""Schemathesis over the OpenAPI document: no input, with or without a key, gives a 5xx.

It runs the real `walletsvc serve` (zero configuration, as `served` in
test_zero_config_serve.py starts it) and the `schemathesis` command against
`/api/v1/openapi.json`: every operation, examples generated from the schema plus
malformed bodies and content types, stateful sequences, once with the admin key and
once without credentials. A 5xx anywhere fails the test; the server's log is checked
for unhandled errors too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_zero_config_serve import served  # noqa: F401  (the fixture)


@pytest.mark.parametrize("with_key", [True, False], ids=["admin key", "no credentials"])
def test_no_generated_request_makes_the_service_fail(served, with_key):  # noqa: F811
    base, workdir, _process = served
    schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert schemathesis, "schemathesis is not installed beside this Python"
    command = [
        schemathesis,
        "run",
        f"{base}/api/v1/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "8",
        "--seed",
        "20261122",
    ]
    if with_key:
        key = (workdir / ".walletsvc" / "admin-api-key").read_text().strip()
        command += ["-H", f"Authorization: Bearer {key}"]
    run = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:]
    log = (workdir / "serve.log").read_text()
    assert "http.unhandled_error" not in log
