"""`walletsvc serve --workers 2`: two whole service processes answering on one port."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_zero_config_serve import call, free_port

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for sockets")


def established_sockets(pid: int, port: int) -> int:
    """Count the process's TCP connections accepted on `port` (from /proc)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        if local_port == port and fields[3] == "01":  # ESTABLISHED
            inodes.add(fields[9])
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            count += 1
    return count


def worker_pids(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == parent:
                found.append(int(entry.name))
    return found


@pytest.fixture
def two_workers(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALLETSVC_")}
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "walletsvc", "serve", "--port", str(port), "--workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while len(worker_pids(process.pid)) < 2 or not _ready(base):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((tmp_path / "serve.log").read_text())
            time.sleep(0.2)
        # Both must be listening before connections are counted.
        time.sleep(1.0)
        yield base, port, tmp_path, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
        log.close()


def _ready(base: str) -> bool:
    try:
        return call("GET", f"{base}/readyz")[0] == 200
    except OSError:
        return False


def test_two_workers_share_one_port_and_both_answer(two_workers):
    base, port, workdir, process = two_workers
    workers = worker_pids(process.pid)
    assert len(workers) == 2

    connections = []
    for _ in range(24):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        connections.append(connection)
    held = {pid: established_sockets(pid, port) for pid in workers}
    for connection in connections:
        connection.close()
    # The kernel spreads connections over both (24 all on one: chance 2**-23).
    assert all(count > 0 for count in held.values()), held
    assert sum(held.values()) == 24

    # Whichever worker answers, state is the database's: a pass issued through one
    # connection is served through others.
    key = (workdir / ".walletsvc" / "admin-api-key").read_text().strip()
    status, body, _ = call(
        "POST",
        f"{base}/api/v1/passes",
        key,
        {"program": "demo", "kind": "loyalty", "customer_external_id": "workers-1"},
    )
    assert status == 201
    issued = json.loads(body)
    for _ in range(6):
        status, pkpass, _ = call("GET", issued["apple"]["pkpass_url"])
        assert status == 200 and pkpass[:2] == b"PK"


def test_sigterm_stops_every_worker_cleanly(two_workers):
    _base, _port, workdir, process = two_workers
    workers = worker_pids(process.pid)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or _zombie_or_gone(pid)
    log = (workdir / "serve.log").read_text()
    assert "Traceback" not in log
    assert '"exit_codes": [0, 0]' in log


def test_a_dead_worker_stops_the_service_with_an_error(two_workers):
    _base, _port, workdir, process = two_workers
    first, second = worker_pids(process.pid)
    os.kill(first, signal.SIGKILL)
    assert process.wait(timeout=30) == 1
    assert _zombie_or_gone(second)
    assert "serve.worker.died" in (workdir / "serve.log").read_text()


def _zombie_or_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")
