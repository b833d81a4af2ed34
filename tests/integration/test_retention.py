"""Retention: old delivered events, inbox rows, webhook bodies and logs go; nothing owed does."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from tests.helpers import count_rows
from tests.integration.test_event_relay import Clock, make_relay, record
from walletsvc.services.retention import BATCH, RetentionPolicy, prune

POLICY = RetentionPolicy(
    events=timedelta(days=35),
    inbox=timedelta(days=35),
    apple_logs=timedelta(days=30),
)
LATER = timedelta(days=36)


@pytest.fixture
async def session() -> Any:
    async with aiohttp.ClientSession() as made:
        yield made


async def subjects(container: Any) -> list[str]:
    async with container.engine.connect() as connection:
        rows = await connection.execute(text("SELECT subject FROM outbox ORDER BY seq"))
        return [row[0] for row in rows]


async def test_delivered_events_go_after_the_retention_and_owed_ones_stay(
    container, receiver, session
):
    clock = Clock(datetime.now(UTC))
    relay = make_relay(container, receiver, session, clock)
    await record(container, "delivered", count=3)
    await relay.drain()
    assert len(receiver.received) == 3
    await record(container, "failing")
    receiver.mode = "500"
    await relay.fan_out_once()
    await relay.deliver_once(relay.sinks[0])  # refused: a pending delivery row stays
    await record(container, "not-yet-handed-on")

    # Within the retention nothing goes.
    report = await prune(container.ctx, POLICY, now=clock() + timedelta(days=30))
    assert report.counts["events"] == 0
    assert await count_rows(container, "outbox") == 5

    report = await prune(container.ctx, POLICY, now=clock() + LATER)
    assert report.counts["events"] == 3
    assert await subjects(container) == ["failing", "not-yet-handed-on"]

    # The relay still delivers what was owed once the receiver is back.
    receiver.mode = "ok"
    clock.advance(seconds=120)
    await relay.drain()
    assert sorted(r.event["subject"] for r in receiver.received[3:]) == [
        "failing",
        "not-yet-handed-on",
    ]


async def test_without_sinks_age_alone_decides_but_an_owed_event_stays(
    container, receiver, session
):
    clock = Clock(datetime.now(UTC))
    relay = make_relay(container, receiver, session, clock)
    await record(container, "owed")
    receiver.mode = "500"
    await relay.fan_out_once()
    await relay.deliver_once(relay.sinks[0])
    await record(container, "never-handed-on", count=2)

    kept = await prune(container.ctx, POLICY, now=clock() + LATER)
    assert kept.counts["events"] == 0  # with sinks, undistributed events wait for them
    sinkless = RetentionPolicy(**{**POLICY.__dict__, "no_sinks": True})
    report = await prune(container.ctx, sinkless, now=clock() + LATER)
    assert report.counts["events"] == 2
    assert await subjects(container) == ["owed"]


async def test_processed_inbox_rows_go_after_the_retention_and_waiting_ones_stay(container):
    now = datetime.now(UTC)
    body = json.dumps({"customer": {"email": "anna@example.de"}}).encode()
    async with container.ctx.uow() as uow:
        await uow.inbox.claim("pos:shopify:t1", "evt-done", "f" * 64, now, body)
        await uow.inbox.respond("pos:shopify:t1", "evt-done", {"status": "processed"}, now)
        await uow.inbox.claim("pos:shopify:t1", "evt-waiting", "f" * 64, now, body)
        await uow.commit()

    report = await prune(container.ctx, POLICY, now=now + timedelta(days=30))
    assert report.counts["inbox"] == 0
    async with container.ctx.uow() as uow:  # within the retention a redelivery is still known
        done = await uow.inbox.get("pos:shopify:t1", "evt-done")
        assert done is not None and done.response == {"status": "processed"}

    report = await prune(container.ctx, POLICY, now=now + LATER)
    assert report.counts["inbox"] == 1
    async with container.ctx.uow() as uow:
        assert await uow.inbox.get("pos:shopify:t1", "evt-done") is None
        assert await uow.inbox.get("pos:shopify:t1", "evt-waiting") is not None


async def test_apple_logs_and_google_notices_go_after_their_windows(container):
    now = datetime.now(UTC)
    async with container.ctx.uow() as uow:
        await uow.apple_devices.add_logs(["old message"], now - timedelta(days=31))
        await uow.apple_devices.add_logs(["new message"], now)
        await uow.google_objects.add_notice("S1", now - timedelta(days=3))
        await uow.google_objects.add_notice("S1", now - timedelta(hours=1))
        await uow.commit()

    report = await prune(container.ctx, POLICY, now=now)
    assert report.counts["apple_logs"] == 1 and report.counts["google_notices"] == 1
    async with container.ctx.uow() as uow:
        # Google's 3-in-24-hours count still sees the recent notice.
        assert await uow.google_objects.notices_since("S1", now - timedelta(days=1)) == 1


async def test_a_backlog_larger_than_a_batch_goes_in_several_transactions(container):
    now = datetime.now(UTC)
    async with container.ctx.uow() as uow:
        await uow.apple_devices.add_logs(
            [f"message {n}" for n in range(BATCH + 5)], now - timedelta(days=40)
        )
        await uow.commit()
    report = await prune(container.ctx, POLICY, now=now)
    assert report.counts["apple_logs"] == BATCH + 5
    assert await count_rows(container, "apple_logs") == 0


def test_the_prune_command_runs_once_and_reports_json(make_settings, tmp_path):
    settings = make_settings()
    config = tmp_path / "walletsvc.toml"
    config.write_text(
        "\n".join(
            [
                f'database_url = "{settings.database_url}"',
                f'data_dir = "{settings.data_dir}"',
                f'secret_key = "{settings.secret_key.get_secret_value()}"',
                "[apple]",
                f'pass_certificate = "{settings.apple.pass_certificate}"',
                f'pass_key = "{settings.apple.pass_key}"',
                f'wwdr_certificate = "{settings.apple.wwdr_certificate}"',
            ]
        )
    )
    migrate = [sys.executable, "-m", "walletsvc", "--config", str(config), "migrate"]
    subprocess.run(migrate, check=True, capture_output=True, timeout=120)
    command = [sys.executable, "-m", "walletsvc", "--config", str(config), "prune"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    counts = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(counts) == {"events", "inbox", "apple_logs", "google_notices"}
