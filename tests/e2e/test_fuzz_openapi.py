"""Schemathesis over the OpenAPI document: every answer is documented, every error a problem.

It runs the real `walletsvc serve` (zero configuration, as `served` in
test_zero_config_serve.py starts it) and the `schemathesis` command against
`/api/v1/openapi.json`: every operation, examples generated from the schema plus
malformed bodies, headers and content types. Four callers: the admin key (with
stateful sequences, so created resources are used by later calls), no credentials,
a wrong key, and a key of another program holding every scope.

Checks: no 5xx; every status and content type is one the document declares; every
JSON body matches its declared schema; declared headers are there; and, from
tests/schemathesis_hooks.py, every 4xx/5xx is application/problem+json with type,
title, status and reason. The server's log is checked for unhandled errors too.

Repeat by hand: `walletsvc serve --port 18781` in an empty directory, then the command
`_command` builds (SCHEMATHESIS_HOOKS=tests/schemathesis_hooks.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_zero_config_serve import call, served  # noqa: F401  (the fixture)
from walletsvc.domain.api_key import Scope

SEED = "20261122"
HOOKS = Path(__file__).resolve().parent.parent / "schemathesis_hooks.py"
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "problem_details",  # tests/schemathesis_hooks.py
    ]
)
# Stateful sequences need a caller that can create things; the others stop at the door,
# so examples from the schema and its boundaries (coverage) plus fuzzing are enough.
CALLERS = {
    "admin key": ("admin", 8, "coverage,fuzzing,stateful"),
    "no credentials": (None, 4, "coverage,fuzzing"),
    "wrong key": ("wsk_AAAAAAAAAAAA.not-the-secret", 4, "coverage,fuzzing"),
    "another program's key": ("outsider", 4, "coverage,fuzzing"),
}
# Every scope there is but admin: a key that may do anything a program key can.
ALL_SCOPES = [scope.value for scope in Scope if scope is not Scope.ADMIN]


def _command(base: str, max_examples: int, phases: str, key: str | None) -> list[str]:
    schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert schemathesis, "schemathesis is not installed beside this Python"
    command = [
        schemathesis,
        "run",
        f"{base}/api/v1/openapi.json",
        "--checks",
        CHECKS,
        "--phases",
        phases,
        "--max-examples",
        str(max_examples),
        "--seed",
        SEED,
        "--no-color",
    ]
    if key is not None:
        command += ["-H", f"Authorization: Bearer {key}"]
    return command


def _outsider_key(base: str, admin: str) -> str:
    """Return a key of a second program that holds every scope."""
    program = {"id": "other", "name": "Other", "tiers": [{"name": "A", "min_points": 0}]}
    status, _, _ = call("POST", f"{base}/api/v1/programs", admin, program)
    assert status in (201, 409)
    created = {"name": "outsider", "scopes": ALL_SCOPES, "program": "other"}
    status, body, _ = call("POST", f"{base}/api/v1/api-keys", admin, created)
    assert status == 201, body
    return str(json.loads(body)["key"])


@pytest.mark.parametrize("caller", list(CALLERS))
def test_every_generated_request_gets_a_documented_answer(served, caller):  # noqa: F811
    base, workdir, _process = served
    who, max_examples, phases = CALLERS[caller]
    admin = (workdir / ".walletsvc" / "admin-api-key").read_text().strip()
    key = {"admin": admin}.get(who, who) if who != "outsider" else _outsider_key(base, admin)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}
    run = subprocess.run(
        _command(base, max_examples, phases, key),
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-6000:]
    # The checks ran (a hooks file that failed to load would leave the custom check out).
    assert "problem_details" not in run.stderr
    log = (workdir / "serve.log").read_text()
    assert "http.unhandled_error" not in log
