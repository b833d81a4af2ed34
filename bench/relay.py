"""Relay throughput: outbox rows to NATS JetStream and to a webhook, against a direct floor.

Target (issue 6): the relay reaches at least 0.5 x the floor measured in the same run.

    .venv/bin/python bench/relay.py                    # about 1 min
    N=50000 RUNS=5 .venv/bin/python bench/relay.py

Setup, untimed, per round: the outbox and delivery tables emptied, then N events of
CUSTOMERS customers (pass_updated, ~300-byte data) written through SqlOutbox in
transactions of 500, on PostgreSQL (DATABASE_URL, default a database
`walletsvc_bench_relayperf` on 127.0.0.1, made and migrated here).

Timed, one side at a time, each round:

- `relay -> nats`: the real EventRelay (`run`, in this process) with one
  JetStreamEventSink; the clock stops when the stream holds N messages. It distributes
  (marks outbox rows, makes the first attempt: encodes CloudEvents, publishes with
  Nats-Msg-Id and waits for every ack, in the marking transaction), then claims
  whatever is left owed (FOR UPDATE SKIP LOCKED, one event per customer per claim).
- `floor -> nats`: nats-py publishing the same N CloudEvents bodies with the same
  headers to a fresh stream, BATCH publish_async calls then their acks, repeated.
- `relay -> webhook` and `floor -> webhook`: the same, to a receiver in its own process
  (aiohttp, answers 204): the relay's WebhookEventSink signs each post; the floor posts
  the same bodies, unsigned, with the same concurrency (CONCURRENCY) through one session.

Each line reports events/s and relay / floor. NATS is the shared server at NATS_URL
(default nats://127.0.0.1:4222); streams made here are deleted.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime

import aiohttp
import asyncpg
import nats
from aiohttp import web
from sqlalchemy import text

from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.domain.event_delivery import RecordedEvent, SinkRoute
from walletsvc.outbox.envelope import encode
from walletsvc.outbox.jetstream import JetStreamEventSink
from walletsvc.outbox.relay import EventRelay, RelayPolicy
from walletsvc.outbox.webhook import WebhookEventSink
from walletsvc.storage.database import create_engine
from walletsvc.storage.event_deliveries import SqlEventDeliveryStore
from walletsvc.storage.migrate import upgrade
from walletsvc.storage.unit_of_work import SqlOutbox

N = int(os.environ.get("N", "10000"))
RUNS = int(os.environ.get("RUNS", "3"))
CUSTOMERS = int(os.environ.get("CUSTOMERS", "2000"))
BATCH = int(os.environ.get("BATCH", "500"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "64"))
FAN_OUT = int(os.environ.get("FAN_OUT", str(max(BATCH, 1000))))
NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
DATABASE = "walletsvc_bench_relayperf"
DATABASE_URL = os.environ.get(
    "DATABASE_URL", f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DATABASE}"
)
RECEIVER_PORT = int(os.environ.get("RECEIVER_PORT", "18765"))
SOURCE = "https://walletsvc.bench"
KEY = b"k" * 32


def receiver_main(port: int) -> None:
    """Run the webhook receiver (in its own process): 204 to every post."""

    async def take(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", take)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def ensure_database() -> None:
    if DATABASE not in DATABASE_URL:
        return
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            await admin.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await admin.close()


async def load(engine: object) -> list[RecordedEvent]:
    """Empty the tables and write N events; return them as the relay will read them."""
    from sqlalchemy.ext.asyncio import AsyncEngine

    from walletsvc.storage.database import session_factory

    assert isinstance(engine, AsyncEngine)
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE outbox_deliveries, event_sinks, outbox"))
    sessions = session_factory(engine)
    events = []
    now = datetime.now(UTC)
    for start in range(0, N, 500):
        async with sessions() as session:
            outbox = SqlOutbox(session)
            for n in range(start, min(N, start + 500)):
                customer = f"cust-{n % CUSTOMERS:06}"
                event = DomainEvent(
                    type=EventType.PASS_UPDATED,
                    subject=customer,
                    data={
                        "customer_id": customer,
                        "program": "bench",
                        "serial": f"SERIAL-{n % CUSTOMERS:08}",
                        "version": n // CUSTOMERS + 1,
                    },
                    occurred_at=now,
                )
                await outbox.add(event)
                events.append(
                    RecordedEvent(
                        n + 1, event.id, event.type, customer, customer, now, now, event.data
                    )
                )
            await session.commit()
    return events


async def stream_count(js: object, stream: str) -> int:
    info = await js.stream_info(stream)  # type: ignore[attr-defined]
    return int(info.state.messages)


async def pending(engine: object) -> int:
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        owed = await conn.execute(
            text(
                "SELECT (SELECT count(*) FROM outbox_deliveries) + "
                "(SELECT count(*) FROM outbox WHERE distributed_at IS NULL)"
            )
        )
        return int(owed.scalar_one())


async def time_relay(store: SqlEventDeliveryStore, sink: object, done: object) -> float:
    relay = EventRelay(
        store,
        [sink],  # type: ignore[list-item]
        source=SOURCE,
        policy=RelayPolicy(
            batch=BATCH,
            fan_out_batch=FAN_OUT,
            idle_wait_s=0.05,
            workers=int(os.environ.get("WORKERS", "2")),
        ),
    )
    await relay.start()
    if isinstance(sink, JetStreamEventSink):
        while sink.check() != "ok":  # noqa: ASYNC110  (polling a sink that has no event)
            await asyncio.sleep(0.01)
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(relay.run(stop))
    while not await done():  # type: ignore[operator]  # noqa: ASYNC110  (polls the database)
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    await relay.close()
    return elapsed


async def nats_round(
    engine: object, store: SqlEventDeliveryStore, js: object
) -> tuple[float, float]:
    events = await load(engine)
    tag = uuid.uuid4().hex[:8]
    relay_stream, floor_stream = f"BENCH_RELAY_{tag}", f"BENCH_FLOOR_{tag}"
    sink = JetStreamEventSink(
        SinkRoute("nats"), NATS_URL, stream=relay_stream, subject_prefix=f"bench.{tag}.relay"
    )
    try:
        relay_s = await time_relay(store, sink, lambda: _stream_full(js, relay_stream))
        await js.add_stream(name=floor_stream, subjects=[f"bench.{tag}.floor.>"])  # type: ignore[attr-defined]
        bodies = [encode(e, SOURCE) for e in events]
        started = time.perf_counter()
        for chunk in range(0, N, BATCH):
            futures = [
                await js.publish_async(  # type: ignore[attr-defined]
                    f"bench.{tag}.floor.{o.type}", o.body, headers={"Nats-Msg-Id": o.id}
                )
                for o in bodies[chunk : chunk + BATCH]
            ]
            await asyncio.gather(*futures)
        floor_s = time.perf_counter() - started
        assert await stream_count(js, floor_stream) == N
    finally:
        for stream in (relay_stream, floor_stream):
            try:
                await js.delete_stream(stream)  # type: ignore[attr-defined]
            except Exception:
                pass
    return N / relay_s, N / floor_s


async def _stream_full(js: object, stream: str) -> bool:
    try:
        return await stream_count(js, stream) >= N
    except Exception:
        return False


async def webhook_round(engine: object, store: SqlEventDeliveryStore) -> tuple[float, float]:
    events = await load(engine)
    url = f"http://127.0.0.1:{RECEIVER_PORT}/hook"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:
        sink = WebhookEventSink(SinkRoute("hook"), url, [KEY], session, concurrency=CONCURRENCY)

        async def drained() -> bool:
            return await pending(engine) == 0

        relay_s = await time_relay(store, sink, drained)
        bodies = [encode(e, SOURCE).body for e in events]
        slots = asyncio.Semaphore(CONCURRENCY)

        async def post(body: bytes) -> None:
            async with slots, session.post(url, data=body) as response:
                await response.read()
                assert response.status == 204

        started = time.perf_counter()
        await asyncio.gather(*(post(body) for body in bodies))
        floor_s = time.perf_counter() - started
    return N / relay_s, N / floor_s


async def main() -> None:
    await ensure_database()
    engine = create_engine(DATABASE_URL, pool_size=10)
    await upgrade(engine)
    store = SqlEventDeliveryStore(engine)
    receiver = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--receiver", str(RECEIVER_PORT)
    )
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    results: dict[str, list[tuple[float, float]]] = {"nats": [], "webhook": []}
    try:
        await asyncio.sleep(1.0)
        for run in range(RUNS):
            results["nats"].append(await nats_round(engine, store, js))
            results["webhook"].append(await webhook_round(engine, store))
            for side, rows in results.items():
                relay, floor = rows[-1]
                print(
                    f"round {run + 1} {side:8} relay {relay:8,.0f}/s  floor {floor:8,.0f}/s  "
                    f"ratio {relay / floor:.2f}",
                    flush=True,
                )
    finally:
        receiver.terminate()
        await receiver.wait()
        await nc.close()
        await engine.dispose()
    print(f"\nN={N} CUSTOMERS={CUSTOMERS} BATCH={BATCH} CONCURRENCY={CONCURRENCY} RUNS={RUNS}")
    for side, rows in results.items():
        ratios = [relay / floor for relay, floor in rows]
        print(
            f"{side:8} median relay {statistics.median(r for r, _ in rows):,.0f}/s, "
            f"floor {statistics.median(f for _, f in rows):,.0f}/s, ratio median "
            f"{statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})"
        )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--receiver":
        receiver_main(int(sys.argv[2]))
    else:
        asyncio.run(main())
