"""The per-issuer rate limit holds across processes under a burst of 1,000 object syncs.

Two containers on one database stand in for two walletsvc processes, each running its
Google worker; the local stand-in answers 429 whenever the issuer is called faster than
the limit, and counts what arrives in every second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import EXTERNAL_DATABASE, empty_all_tables
from tests.e2e.google_setup import (
    ISSUER,
    PROGRAM,
    create_program,
    google_settings,
    service_account_for,
    until,
)
from tests.fakes.google import FakeGoogleServer
from walletsvc.bootstrap import build_container, prepare_database
from walletsvc.domain.wallet_pass import PassKind
from walletsvc.services.api_keys import bootstrap_principal
from walletsvc.services.google_sync import GooglePolicy, run_google_worker
from walletsvc.services.passes import PassRequest, issue_pass
from walletsvc.web.app import create_app

RATE = 100.0
BURST = 5  # what bootstrap allows one process to take at once at this rate
SYNCS = 1000
PROCESSES = 2


async def test_a_burst_of_1000_syncs_from_two_processes_stays_within_the_rate(
    make_settings: Callable[..., Any], tmp_path: Path, aiohttp_client: Any, admin: dict[str, str]
) -> None:
    async with FakeGoogleServer(public_key_pem=b"", rate_per_s=RATE) as google:
        account = service_account_for(google, tmp_path)
        # Workers off in the app: the test runs them itself, in two "processes".
        settings = make_settings(
            google=google_settings(
                google, account, enabled=False, rate_limit_per_s=RATE, sync_delay_s=0
            )
        )
        first, second = build_container(settings), build_container(settings)
        await prepare_database(first)
        try:
            client = await aiohttp_client(create_app(first))
            await create_program(client, admin)
            for number in range(SYNCS):
                await issue_pass(
                    first.ctx,
                    bootstrap_principal(),
                    PassRequest(PROGRAM, PassKind.LOYALTY, customer_external_id=f"c-{number}"),
                )
            stop = asyncio.Event()
            policy = GooglePolicy(batch=50, idle_wait_s=0.05)
            started = time.monotonic()
            workers = [
                asyncio.create_task(run_google_worker(c.ctx, c.ctx.google, stop, policy))
                for c in (first, second)
            ]
            await until(lambda: len(google.resources["loyaltyObject"]) == SYNCS, seconds=120)
            elapsed = time.monotonic() - started
            stop.set()
            await asyncio.gather(*workers)
        finally:
            if EXTERNAL_DATABASE is not None:
                await empty_all_tables(first)
            await second.close()
            await first.close()
    seconds = google.per_second()
    print(f"{SYNCS} syncs in {elapsed:.1f}s; requests per second: {sorted(seconds.items())}")
    assert google.throttled == 0
    assert all(
        object_id.startswith(f"{ISSUER}.") for object_id in google.resources["loyaltyObject"]
    )
    # Every whole second stays within the rate, plus the bucket's burst and the batch
    # each process may hold unspent from the second before.
    assert max(seconds.values()) <= RATE + BURST * (1 + PROCESSES)
    assert elapsed >= (SYNCS - RATE) / RATE * 0.9
