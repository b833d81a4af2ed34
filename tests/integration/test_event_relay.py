"""The relay and the webhook sink: signed CloudEvents, back-off, 429, 410, dead letters, order."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from tests.conftest import ADMIN_KEY, CERTS, PUBLIC_URL, SECRET_KEY
from tests.fakes.webhook_receiver import SECRET
from tests.fakes.webhook_receiver import SECRET_KEY as HOOK_KEY
from tests.helpers import issue_loyalty
from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.domain.event_delivery import SinkRoute
from walletsvc.outbox.relay import EventRelay, RelayPolicy
from walletsvc.outbox.webhook import WebhookEventSink, retry_after_s

SOURCE = "https://walletsvc.test"


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
async def session() -> Any:
    async with aiohttp.ClientSession() as made:
        yield made


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC))


def make_relay(
    container: Any,
    receiver: Any,
    session: Any,
    clock: Clock,
    *,
    types: frozenset[str] = frozenset(),
    timeout_s: float = 5.0,
    **policy: Any,
) -> EventRelay:
    sink = WebhookEventSink(
        SinkRoute("crm", types), receiver.url, [HOOK_KEY], session, timeout_s=timeout_s
    )
    settings = {"first_retry": timedelta(seconds=1), "max_retry": timedelta(seconds=60), **policy}
    return EventRelay(
        container.event_store, [sink], source=SOURCE, policy=RelayPolicy(**settings), clock=clock
    )


async def record(container: Any, customer: str, count: int = 1, **data: Any) -> list[str]:
    """Record events the way use cases do: through the unit of work's outbox."""
    ids = []
    async with container.ctx.uow() as uow:
        for n in range(count):
            event = DomainEvent(
                type=EventType.PASS_UPDATED,
                subject=customer,
                data={"customer_id": customer, "program": "demo", "serial": "S1", "version": n},
                occurred_at=datetime.now(UTC),
            )
            await uow.outbox.add(event)
            ids.append(event.id)
        await uow.commit()
    return ids


async def deliveries(container: Any) -> list[tuple[str, str, int]]:
    async with container.engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT sink, state, attempts FROM outbox_deliveries ORDER BY seq")
        )
        return [(r[0], r[1], r[2]) for r in rows]


async def test_events_of_a_real_flow_reach_the_webhook_signed_as_cloudevents(
    client, admin, container, receiver, session, clock
):
    issued = await issue_loyalty(client, admin, "crm-events-1")
    relay = make_relay(container, receiver, session, clock)
    await relay.drain()
    types = [r.event["type"] for r in receiver.received]
    assert types == [EventType.CUSTOMER_CREATED, EventType.PASS_ISSUED]
    assert receiver.bad_signatures == 0
    issued_event = receiver.received[1].event
    assert issued_event["specversion"] == "1.0"
    assert issued_event["source"] == SOURCE
    assert issued_event["datacontenttype"] == "application/json"
    assert issued_event["data"]["serial"] == issued["serial"]
    customer = issued_event["data"]["customer_id"]
    assert issued_event["subject"] == issued_event["partitionkey"] == customer
    assert issued_event["time"].endswith("Z") and issued_event["recordedtime"].endswith("Z")
    assert issued_event["sequence"] > receiver.received[0].event["sequence"]
    async with container.engine.connect() as connection:
        ids = [r[0] for r in await connection.execute(text("SELECT event_id FROM outbox"))]
    assert sorted(receiver.ids) == sorted(ids)  # the id is the one written with the row
    assert receiver.received[1].headers["webhook-id"] == issued_event["id"]
    assert await deliveries(container) == []  # delivered rows go
    await relay.drain()
    assert len(receiver.received) == 2  # nothing is sent twice


async def test_a_sink_takes_only_the_types_it_asks_for(
    client, admin, container, receiver, session, clock
):
    await issue_loyalty(client, admin, "crm-events-2")
    relay = make_relay(
        container, receiver, session, clock, types=frozenset({EventType.PASS_ISSUED})
    )
    await relay.drain()
    assert [r.event["type"] for r in receiver.received] == [EventType.PASS_ISSUED]


async def test_a_failing_receiver_is_retried_with_back_off_until_it_takes_the_event(
    container, receiver, session, clock
):
    await record(container, "cust-a")
    receiver.mode = "500"
    relay = make_relay(container, receiver, session, clock)
    await relay.fan_out_once()
    sink = relay.sinks[0]
    assert await relay.deliver_once(sink) == 1
    assert await deliveries(container) == [("crm", "pending", 1)]
    assert await relay.deliver_once(sink) == 0  # backing off: not due yet
    clock.advance(seconds=1.5)
    await relay.deliver_once(sink)
    assert await deliveries(container) == [("crm", "pending", 2)]
    clock.advance(seconds=0.5)
    assert await relay.deliver_once(sink) == 0  # the second wait is 1 to 2 seconds
    receiver.mode = "ok"
    clock.advance(seconds=2)
    assert await relay.deliver_once(sink) == 1
    assert len(receiver.received) == 1 and await deliveries(container) == []
    assert receiver.attempts["500"] == 2


async def test_a_refused_connection_and_a_slow_receiver_are_retried(
    container, receiver, session, clock
):
    await record(container, "cust-b")
    await record(container, "cust-c")
    receiver.answers = ["refuse", "slow"]
    receiver.slow_s = 1.0
    relay = make_relay(container, receiver, session, clock, timeout_s=0.3)
    await relay.fan_out_once()
    await relay.deliver_once(relay.sinks[0])
    assert [d[1:] for d in await deliveries(container)] == [("pending", 1), ("pending", 1)]
    clock.advance(seconds=5)
    await relay.deliver_once(relay.sinks[0])
    assert await deliveries(container) == []
    # The slow answer came after the timeout: the receiver may have taken it once more.
    assert len(set(receiver.ids)) == 2


async def test_429_pauses_the_whole_sink_for_its_retry_after(container, receiver, session, clock):
    await record(container, "cust-d")
    await record(container, "cust-e")
    receiver.answers = ["429"]
    receiver.retry_after = "30"
    relay = make_relay(container, receiver, session, clock, batch=1)
    await relay.fan_out_once()
    sink = relay.sinks[0]
    await relay.deliver_once(sink)
    assert receiver.attempts["429"] == 1
    clock.advance(seconds=10)
    # The other customer's event is due, but the sink is paused for everyone.
    assert await relay.deliver_once(sink) == 0
    assert (await relay.health())["crm"].startswith("paused until")
    clock.advance(seconds=21)
    await relay.drain()
    assert len(receiver.received) == 2


def test_retry_after_takes_seconds_and_http_dates():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after_s("120") == 120
    assert retry_after_s("Thu, 01 Jan 2026 00:01:00 GMT", now) == 60
    assert retry_after_s("soon") is None and retry_after_s(None) is None


async def test_410_stops_the_sink_and_keeps_its_events_as_dead_letters_for_a_replay(
    container, receiver, session, clock
):
    first = await record(container, "cust-f")
    receiver.mode = "410"
    relay = make_relay(container, receiver, session, clock)
    await relay.drain()
    assert receiver.attempts["410"] == 1
    later = await record(container, "cust-g")
    await relay.drain()
    assert receiver.attempts["410"] == 1  # nothing more is sent to a gone endpoint
    assert (await relay.health())["crm"].startswith("gone")
    letters = await container.event_store.dead_letters(None, 10)
    assert [letter.event_id for letter in letters] == first + later
    receiver.mode = "ok"
    assert await container.event_store.replay(None, "crm", clock()) == 2
    await relay.drain()
    assert receiver.received == []  # still gone: a replay alone does not revive
    assert await container.event_store.revive("crm", clock())
    await container.event_store.replay(None, "crm", clock())
    await relay.drain()
    assert receiver.ids == first + later


async def test_past_the_horizon_a_delivery_is_a_dead_letter_until_replayed(
    container, receiver, session, clock
):
    ids = await record(container, "cust-h")
    receiver.mode = "500"
    relay = make_relay(container, receiver, session, clock, horizon=timedelta(minutes=10))
    await relay.drain()
    clock.advance(minutes=11)
    await relay.drain()
    letters = await container.event_store.dead_letters("crm", 10)
    assert [(x.event_id, x.attempts) for x in letters] == [(ids[0], 2)]
    assert "500" in (letters[0].last_error or "")
    clock.advance(hours=1)
    await relay.drain()
    assert receiver.attempts["500"] == 2  # a dead letter is not retried
    receiver.mode = "ok"
    assert await container.event_store.replay(ids, None, clock()) == 1
    await relay.drain()
    assert receiver.ids == ids


async def test_a_customers_later_event_waits_while_an_earlier_one_backs_off(
    container, receiver, session, clock
):
    mine = await record(container, "cust-i", count=3)
    other = await record(container, "cust-j")
    receiver.answers = ["500"]  # the first request is cust-i's first event
    relay = make_relay(container, receiver, session, clock)
    await relay.fan_out_once()
    await relay.deliver_once(relay.sinks[0])
    # Other customers are not held up; this customer's later events are.
    assert receiver.ids == other
    clock.advance(seconds=0.5)
    await relay.drain()
    assert receiver.ids == other
    clock.advance(seconds=2)
    await relay.drain()
    assert receiver.ids == other + mine


async def test_a_dead_relays_lease_runs_out_and_another_claims_the_work(
    container, receiver, session, clock
):
    ids = await record(container, "cust-k", count=2)
    relay = make_relay(container, receiver, session, clock, lease=timedelta(seconds=30))
    await relay.fan_out_once()
    store = container.event_store
    claimed = await store.claim("crm", clock(), timedelta(seconds=30), 10)
    assert [d.event.id for d in claimed] == ids[:1]  # one per customer at a time
    # The claimer "dies" here. Until the lease runs out nobody else takes the row...
    assert await relay.deliver_once(relay.sinks[0]) == 0
    clock.advance(seconds=31)
    await relay.drain()
    assert receiver.ids == ids
    # ...and the dead claimer's late settle changes nothing.
    await store.settle("crm", claimed, [], [], clock())
    assert await deliveries(container) == []


async def test_readyz_reports_the_sinks(make_settings, aiohttp_client, receiver):
    from walletsvc.bootstrap import build_container, prepare_database
    from walletsvc.web.app import create_app

    settings = make_settings(
        events={"webhooks": [{"name": "crm", "url": receiver.url, "secret": SECRET}]}
    )
    built = build_container(settings)
    await prepare_database(built)
    try:
        client = await aiohttp_client(create_app(built))
        response = await client.get("/readyz")
        body = await response.json()
        assert response.status == 200
        assert body["checks"] == {"database": "ok", "sink:crm": "ok"}
        # The in-process relay delivers what the API records, with no help.
        await issue_loyalty(client, {"Authorization": f"Bearer {ADMIN_KEY}"}, "crm-ready")
        for _ in range(50):
            if len(receiver.received) == 2:
                break
            await asyncio.sleep(0.1)
        assert len(receiver.received) == 2
    finally:
        from tests.conftest import EXTERNAL_DATABASE, empty_all_tables

        if EXTERNAL_DATABASE is not None:
            await empty_all_tables(built)
        await built.close()


async def test_a_bad_sink_setting_refuses_to_start(make_settings):
    from walletsvc.bootstrap import build_container
    from walletsvc.domain.errors import ConfigurationError

    bad_types = {"webhooks": [{"name": "crm", "url": "http://x", "secret": SECRET, "types": ["x"]}]}
    with pytest.raises(ConfigurationError, match="unknown event types"):
        build_container(make_settings(events=bad_types))
    bad_secret = {"webhooks": [{"name": "crm", "url": "http://x", "secret": "whsec_short"}]}
    with pytest.raises(ConfigurationError, match="crm"):
        build_container(make_settings(events=bad_secret))


async def _cli(config: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "walletsvc",
        "--config",
        str(config),
        "events",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def write_config(path: Path, database_url: str, data_dir: Path, **events: Any) -> Path:
    """Write a walletsvc.toml for a subprocess on the test database."""
    lines = [
        f'database_url = "{database_url}"',
        f'data_dir = "{data_dir}"',
        f'public_url = "{PUBLIC_URL}"',
        f'admin_api_key = "{ADMIN_KEY}"',
        f'secret_key = "{SECRET_KEY}"',
        'log_format = "json"',
        "[apple]",
        f'pass_certificate = "{CERTS / "pass-certificate.pem"}"',
        f'pass_key = "{CERTS / "pass-key.pem"}"',
        f'wwdr_certificate = "{CERTS / "wwdr-dev-ca.pem"}"',
        "[events]",
        *(
            f"{key} = {json.dumps(value)}"
            for key, value in events.items()
            if key not in ("nats", "webhooks")
        ),
    ]
    for hook in events.get("webhooks", []):
        lines.append("[[events.webhooks]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in hook.items()]
    if "nats" in events:
        lines.append("[events.nats]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in events["nats"].items()]
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_operators_list_and_replay_dead_letters_from_the_command_line(
    container, receiver, session, clock, database_url, tmp_path
):
    ids = await record(container, "cust-l", count=2)
    receiver.mode = "410"
    relay = make_relay(container, receiver, session, clock)
    await relay.drain()
    config = write_config(
        tmp_path / "walletsvc.toml",
        database_url,
        tmp_path / "data",
        webhooks=[{"name": "crm", "url": receiver.url, "secret": SECRET}],
    )
    code, out, err = await _cli(config, "status")
    assert code == 0, err
    assert "crm: pending 0, dead 2, GONE" in out
    code, out, _ = await _cli(config, "dead", "--json")
    assert [json.loads(line)["event_id"] for line in out.splitlines()] == ids
    code, _, err = await _cli(config, "replay")
    assert code == 2 and "--all" in err
    code, out, _ = await _cli(config, "revive", "crm")
    assert code == 0 and "takes events again" in out
    code, out, _ = await _cli(config, "replay", ids[0])
    assert code == 0 and out.startswith("1 dead letter")
    receiver.mode = "ok"
    clock.now = datetime.now(UTC)  # the command line replayed on the wall clock
    await relay.drain()
    assert receiver.ids == ids[:1]
    code, out, _ = await _cli(config, "replay", "--all", "--sink", "crm")
    clock.now = datetime.now(UTC)
    await relay.drain()
    assert receiver.ids == ids


@pytest.mark.postgres
async def test_an_event_that_commits_after_a_later_one_is_not_skipped(
    container, receiver, session, clock
):
    """The pitfall: seq is taken at INSERT; a cursor would skip the late committer."""
    relay = make_relay(container, receiver, session, clock)
    late = container.ctx.uow()
    async with late as uow:
        event = DomainEvent(
            type=EventType.PASS_UPDATED,
            subject="cust-late",
            data={"customer_id": "cust-late", "program": "demo", "serial": "S", "version": 1},
            occurred_at=datetime.now(UTC),
        )
        await uow.outbox.add(event)
        await uow._session.flush()  # seq taken now, commit later
        early = await record(container, "cust-early")
        await relay.drain()
        assert receiver.ids == early
        await uow.commit()
    await relay.drain()
    assert receiver.ids == [*early, event.id]


def test_unique_sink_names_are_required():
    from walletsvc.config import EventsSettings

    with pytest.raises(ValueError, match="must differ"):
        EventsSettings(
            webhooks=[
                {"name": "a", "url": "http://x", "secret": SECRET},
                {"name": "a", "url": "http://y", "secret": SECRET},
            ]
        )
    assert uuid  # keep the import for ids made in other tests


@pytest.mark.postgres
async def test_the_first_attempt_leaves_no_row_for_what_is_delivered(
    container, receiver, session, clock
):
    """PostgreSQL sends while it distributes: only what is still owed becomes a row."""
    mine = await record(container, "cust-q", count=2)
    other = await record(container, "cust-r")
    receiver.answers = ["ok", "500"]  # cust-q's first event, then cust-r's
    relay = make_relay(container, receiver, session, clock)
    assert await relay.distribute_once() == 3
    # cust-q's first went; its second waits behind it (pending, never tried); cust-r's
    # failed and backs off. Nothing delivered left a row.
    assert receiver.ids == mine[:1]
    assert sorted(await deliveries(container)) == [("crm", "pending", 0), ("crm", "pending", 1)]
    async with container.engine.connect() as connection:
        left = await connection.scalar(
            text("SELECT count(*) FROM outbox WHERE distributed_at IS NULL")
        )
    assert left == 0
    clock.advance(seconds=2)
    await relay.drain()
    assert sorted(receiver.ids) == sorted([*mine, *other])
    assert [i for i in receiver.ids if i in mine] == mine  # in order for the customer
    assert await deliveries(container) == []


@pytest.mark.postgres
async def test_a_first_attempt_past_its_wait_is_leased_and_settled_when_answered(
    container, receiver, session, clock
):
    ids = await record(container, "cust-s")
    receiver.answers = ["slow"]
    receiver.slow_s = 0.6
    relay = make_relay(container, receiver, session, clock, first_attempt_wait=timedelta(0))
    assert await relay.distribute_once() == 1
    # Committed with the reply still awaited: the row is leased, so no claim resends it.
    assert await deliveries(container) == [("crm", "pending", 0)]
    assert await relay.deliver_once(relay.sinks[0]) == 0
    await relay.close()  # waits for the late reply and settles it
    assert await deliveries(container) == []
    assert receiver.ids == ids


@pytest.mark.postgres
async def test_a_distribution_cut_short_records_nothing_and_is_sent_again(
    container, receiver, session, clock
):
    """A relay that dies mid-distribution: its events are undistributed, resent by id."""
    ids = await record(container, "cust-t")
    receiver.answers = ["slow"]
    receiver.slow_s = 0.5
    relay = make_relay(container, receiver, session, clock)
    cut = asyncio.create_task(relay.distribute_once())
    await asyncio.sleep(0.2)  # the post is out, the transaction open
    cut.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cut
    async with container.engine.connect() as connection:
        left = await connection.scalar(
            text("SELECT count(*) FROM outbox WHERE distributed_at IS NULL")
        )
    assert left == 1 and await deliveries(container) == []
    await relay.drain()
    assert set(receiver.ids) == set(ids)  # the same id again: receivers dedupe on it
    assert await deliveries(container) == []


@pytest.mark.postgres
async def test_a_customer_with_an_event_owed_gets_no_first_attempt_for_the_next(
    container, receiver, session, clock
):
    """The owed lookup, folded into the marking statement, holds a customer's later events."""
    mine = await record(container, "cust-u", count=2)
    other = await record(container, "cust-v")
    receiver.answers = ["500"]  # cust-u's first event fails its first attempt
    relay = make_relay(container, receiver, session, clock, batch=1, workers=1)  # one a time
    assert [await relay.distribute_once() for _ in range(3)] == [1, 1, 1]
    # cust-u's second is owed behind the first (never tried); cust-v is not held up.
    assert receiver.ids == other
    assert await deliveries(container) == [("crm", "pending", 1), ("crm", "pending", 0)]
    third = await record(container, "cust-u")
    assert await relay.distribute_once() == 1
    assert receiver.ids == other
    clock.advance(seconds=2)
    await relay.drain()
    assert receiver.ids == other + mine + third
    assert await deliveries(container) == []
