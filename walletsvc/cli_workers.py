"""`walletsvc serve --workers N`: several service processes answering on one port.

One Python process saturates one core (the benches in BENCHMARKS.md). Production runs
several behind a load balancer; this does the same on one host: the parent prepares
the database once (migrations, demo program, certificate check), then starts N
`walletsvc serve` processes that each bind the port with SO_REUSEPORT, so the kernel
spreads connections over them. Each is a whole service with its own pool and its own
background workers; those already share their work through claim rows in the database,
as separate hosts would. The parent only supervises: SIGTERM or SIGINT is passed on and
waited for, and when one worker dies on its own the others are stopped and the parent
exits non-zero, so whatever supervises it restarts the lot.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import time
from types import FrameType

import structlog

from walletsvc.bootstrap import Container, prepare_database
from walletsvc.domain.errors import ConfigurationError

log = structlog.get_logger("walletsvc.cli")

_POLL_S = 0.2


def run_workers(container: Container, args: argparse.Namespace) -> int:
    """Prepare the database, run `args.workers` serving processes, return when all stopped."""
    try:
        asyncio.run(_prepare(container))
    except ConfigurationError as exc:
        log.error("startup.refused", detail=str(exc))
        print(f"walletsvc: cannot start: {exc}", file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "walletsvc"]
    if args.config is not None:
        command += ["--config", str(args.config)]
    command += ["serve", "--no-migrate"]  # migrated once, above
    if args.host:
        command += ["--host", args.host]
    if args.port:
        command += ["--port", str(args.port)]
    # The command is this interpreter running this package, with our own arguments.
    workers = [
        subprocess.Popen([*command, "--worker-index", str(index)])  # noqa: S603
        for index in range(args.workers)
    ]
    log.info("serve.workers.started", workers=[worker.pid for worker in workers])
    stopping = False

    def stop(_signum: int = signal.SIGTERM, _frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed = False
    while any(worker.poll() is None for worker in workers):
        if not stopping and any(worker.returncode is not None for worker in workers):
            # A worker died on its own: stop the rest rather than serve at part capacity
            # unnoticed; the supervisor restarts the service.
            failed = True
            dead = [w.pid for w in workers if w.returncode is not None]
            log.error("serve.worker.died", workers=dead)
            stop()
        time.sleep(_POLL_S)
    codes = [worker.returncode for worker in workers]
    log.info("serve.workers.stopped", exit_codes=codes)
    return 1 if failed or any(code != 0 for code in codes) else 0


async def _prepare(container: Container) -> None:
    try:
        await prepare_database(container)
    finally:
        await container.close()
