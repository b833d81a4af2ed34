"""The NATS JetStream sink against the real server: subjects, dedupe by event id, outages."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import NATS_URL
from tests.fakes.tcp_proxy import TcpProxy
from tests.integration.test_event_relay import record
from walletsvc.domain.event import EventType
from walletsvc.domain.event_delivery import SinkRoute
from walletsvc.outbox.envelope import encode
from walletsvc.outbox.jetstream import JetStreamEventSink
from walletsvc.outbox.relay import EventRelay, RelayPolicy

pytestmark = pytest.mark.nats


def nats_sink(jetstream: dict[str, Any], url: str = NATS_URL) -> JetStreamEventSink:
    return JetStreamEventSink(
        SinkRoute("nats"),
        url,
        stream=jetstream["stream"],
        subject_prefix=jetstream["prefix"],
        duplicate_window_s=120,
        timeout_s=1.0,
        reconnect_wait_s=0.2,
    )


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def stream_messages(jetstream: dict[str, Any]) -> list[Any]:
    js = jetstream["js"]
    info = await js.stream_info(jetstream["stream"])
    return [
        await js.get_msg(jetstream["stream"], seq)
        for seq in range(info.state.first_seq, info.state.last_seq + 1)
        if info.state.messages
    ]


async def test_events_land_on_their_type_subject_once_per_id(container, jetstream):
    ids = await record(container, "cust-n", count=3)
    sink = nats_sink(jetstream)
    relay = EventRelay(container.event_store, [sink], source="https://walletsvc.test")
    await relay.start()
    try:
        await until(lambda: _ok(sink))
        await relay.fan_out_once()
        # A relay claims, publishes and dies before settling: the lease runs out and
        # the next relay publishes the same events again; the stream drops the copies.
        store = container.event_store
        claimed = await store.claim("nats", datetime.now(UTC), timedelta(seconds=0.2), 10)
        assert len(claimed) == 1  # one customer: one at a time
        await sink.deliver([encode(d.event, relay.source) for d in claimed])
        await asyncio.sleep(0.3)
        await relay.drain()
        messages = await stream_messages(jetstream)
        assert [m.headers["Nats-Msg-Id"] for m in messages] == ids
        assert {m.subject for m in messages} == {f"{jetstream['prefix']}.{EventType.PASS_UPDATED}"}
        assert (await relay.health()) == {"nats": "ok"}
    finally:
        await relay.close()


async def test_while_nats_is_down_events_wait_and_then_all_arrive(container, jetstream):
    proxy = TcpProxy("127.0.0.1", int(NATS_URL.rsplit(":", 1)[1]))
    sink = nats_sink(jetstream, proxy.url)
    relay = EventRelay(
        container.event_store,
        [sink],
        source="https://walletsvc.test",
        policy=RelayPolicy(first_retry=timedelta(seconds=0.1), idle_wait_s=0.05),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        first = await record(container, "cust-o", count=5)
        await asyncio.sleep(0.5)
        assert (await relay.health()) == {"nats": "unreachable"}
        await proxy.open()
        await until(lambda: _count(jetstream, 5))
        await proxy.close()  # down again, mid-life
        second = await record(container, "cust-p", count=5)
        await asyncio.sleep(0.5)
        await proxy.open()
        await until(lambda: _count(jetstream, 10))
        messages = await stream_messages(jetstream)
        assert [m.headers["Nats-Msg-Id"] for m in messages] == first + second
    finally:
        stop.set()
        await task
        await relay.close()
        await proxy.close()


async def _ok(sink: JetStreamEventSink) -> bool:
    return sink.check() == "ok"


async def _count(jetstream: dict[str, Any], n: int) -> bool:
    try:
        info = await jetstream["js"].stream_info(jetstream["stream"])
    except Exception:
        return False
    return bool(info.state.messages >= n)


async def test_a_cluster_url_list_reaches_a_live_node_past_a_dead_one(container, jetstream):
    import socket

    with socket.socket() as probe:  # a port nobody listens on: a node that is down
        probe.bind(("127.0.0.1", 0))
        dead = f"nats://127.0.0.1:{probe.getsockname()[1]}"
    ids = await record(container, "cust-cluster", count=2)
    sink = nats_sink(jetstream, f"{dead}, {NATS_URL}")
    relay = EventRelay(container.event_store, [sink], source="https://walletsvc.test")
    await relay.start()
    try:
        await until(lambda: _ok(sink))
        await relay.drain()
        assert [m.headers["Nats-Msg-Id"] for m in await stream_messages(jetstream)] == ids
        info = await jetstream["js"].stream_info(jetstream["stream"])
        assert info.config.num_replicas == 1  # the configured default, on this one-node server
    finally:
        await relay.close()
