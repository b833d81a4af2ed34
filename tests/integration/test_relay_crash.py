"""Done when: with the sinks down a while and the relay SIGKILLed mid-load, every event arrives.

`walletsvc relay` runs as a real process against the test database; a second one
takes over after the first is killed. The NATS stream must hold each event exactly
once (its dedupe window catches the resends), and the webhook receiver must have
every event, in order per customer, with repeats only of the few in flight at the kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import NATS_URL
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.webhook_receiver import SECRET
from tests.integration.test_event_relay import write_config
from tests.integration.test_nats_sink import stream_messages, until
from walletsvc.domain.event import DomainEvent, EventType

pytestmark = [pytest.mark.postgres, pytest.mark.nats]

CUSTOMERS = 30
PER_CUSTOMER = 10
BATCH = 20


async def start_relay(config: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "walletsvc", "--config", str(config), "relay",
            stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip


async def write_load(container: Any, ids: list[str]) -> None:
    """Record events for many customers, a transaction at a time, as the API would."""
    for round_ in range(PER_CUSTOMER):
        for customer in range(CUSTOMERS):
            async with container.ctx.uow() as uow:
                event = DomainEvent(
                    type=EventType.PASS_UPDATED,
                    subject=f"cust-{customer:03}",
                    data={"customer_id": f"cust-{customer:03}", "program": "demo",
                          "serial": f"S{customer}", "version": round_ + 1},
                    occurred_at=datetime.now(UTC),
                )  # fmt: skip
                await uow.outbox.add(event)
                await uow.commit()
            ids.append(event.id)
        await asyncio.sleep(0.05)


async def test_every_committed_event_arrives_after_outages_and_a_sigkilled_relay(
    container, receiver, jetstream, database_url, tmp_path
):
    total = CUSTOMERS * PER_CUSTOMER
    receiver.mode = "500"  # the webhook endpoint is down at first
    proxy = TcpProxy("127.0.0.1", int(NATS_URL.rsplit(":", 1)[1]))  # and so is NATS
    config = write_config(
        tmp_path / "walletsvc.toml",
        database_url,
        tmp_path / "data",
        lease_s=2,
        first_retry_s=0.2,
        max_retry_s=1,
        idle_wait_s=0.05,
        batch=BATCH,
        webhooks=[{"name": "crm", "url": receiver.url, "secret": SECRET}],
        nats={
            "url": proxy.url,
            "stream": jetstream["stream"],
            "subject_prefix": jetstream["prefix"],
            "duplicate_window_s": 120,
            "reconnect_wait_s": 0.2,
            "timeout_s": 1,
        },
    )
    log = tmp_path / "relay.log"
    first = await start_relay(config, log)
    second = None
    ids: list[str] = []
    writer = asyncio.create_task(write_load(container, ids))
    try:
        await until(lambda: _refused_some(receiver), 30)
        assert receiver.received == []
        receiver.mode = "ok"
        await proxy.open()
        await until(lambda: _received_at_least(receiver, total // 3), 30)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        await asyncio.sleep(0.5)
        second = await start_relay(config, log)
        await writer
        await until(lambda: _received_at_least(receiver, total), 60)
        await until(lambda: _stream_has(jetstream, total), 30)
        await asyncio.sleep(2.5)  # past a lease: any resend would have landed by now
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 15) == 0
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
        await proxy.close()
    assert len(ids) == total
    assert sorted(set(receiver.ids)) == sorted(ids)
    repeats = len(receiver.ids) - len(set(receiver.ids))
    # What the killed relay had in flight may be resent: its claims, or the first
    # attempts of its open distribution; either is at most `workers` (2) batches.
    assert repeats <= 2 * BATCH, f"{repeats} repeats; only batches in flight may be resent"
    for customer, sequence in receiver.by_partition().items():
        assert sequence == sorted(sequence), f"{customer} out of order"
    messages = await stream_messages(jetstream)
    stream_ids = [m.headers["Nats-Msg-Id"] for m in messages]
    assert len(stream_ids) == len(set(stream_ids)) == total
    assert set(stream_ids) == set(ids)
    assert receiver.bad_signatures == 0
    print(f"webhook repeats after the kill: {repeats}; relay log: {log}")


async def _refused_some(receiver: Any) -> bool:
    return receiver.attempts["500"] >= 3


async def _received_at_least(receiver: Any, n: int) -> bool:
    return len(set(receiver.ids)) >= n


async def _stream_has(jetstream: dict[str, Any], n: int) -> bool:
    info = await jetstream["js"].stream_info(jetstream["stream"])
    return bool(info.state.messages >= n)
