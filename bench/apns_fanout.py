"""Measure APNs fan-out: pushes per second from one process to the local APNs stand-in.

The stand-in (tests/fakes/apns.py) runs in its own process so it has its own core, and
reports the CPU it used: when the stand-in stays well under one core while the client
process is at one, the client is what limits the figure, not the stand-in.

    .venv/bin/python bench/apns_fanout.py                       # walletsvc's ApnsPushSender
    .venv/bin/python bench/apns_fanout.py --client httpx        # the candidates it was
    .venv/bin/python bench/apns_fanout.py --client aioapns      # chosen against (pip them)

Every run uses the throwaway pass certificate in certs_example/ for TLS client auth.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.apns import FakeApnsServer  # noqa: E402
from walletsvc.apple.apns import ApnsPushSender  # noqa: E402
from walletsvc.apple.credentials import SigningIdentity, load_signing_identity  # noqa: E402
from walletsvc.domain.push import PushOutcome  # noqa: E402

CERTS = ROOT / "certs_example"

Sender = Callable[[list[str]], Awaitable[int]]


def _stand_in(pipe: Connection, strict: bool, cpu: int | None) -> None:
    """Run the stand-in until told to stop; answer CPU-time queries meanwhile."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})

    async def serve() -> None:
        ca = (CERTS / "wwdr-dev-ca.pem").read_bytes()
        async with FakeApnsServer(client_ca_pem=ca, record=False, strict=strict) as apns:
            pipe.send((apns.url, apns.ca_pem))
            loop = asyncio.get_running_loop()
            while True:
                message = await loop.run_in_executor(None, pipe.recv)
                if message == "stop":
                    pipe.send((apns.answered, apns.connections_opened))
                    return
                pipe.send(time.process_time())

    asyncio.run(serve())


def _identity() -> SigningIdentity:
    return load_signing_identity(
        wwdr=CERTS / "wwdr-dev-ca.pem",
        certificate=CERTS / "pass-certificate.pem",
        private_key=CERTS / "pass-key.pem",
    )


async def _walletsvc(
    url: str, ca: bytes, args: argparse.Namespace
) -> tuple[Sender, Callable[[], Awaitable[None]]]:
    identity = _identity()
    sender = ApnsPushSender(
        identities={identity.pass_type_identifier: identity},
        endpoint=url,
        server_ca_pem=ca,
        max_connections=args.connections,
        streams_per_connection=args.streams,
        max_in_flight=args.in_flight,
    )

    async def send(tokens: list[str]) -> int:
        replies = await sender.send(identity.pass_type_identifier, tokens)
        return sum(reply.outcome is PushOutcome.DELIVERED for reply in replies)

    return send, sender.close


def _client_context(ca: bytes) -> tuple[ssl.SSLContext, str]:
    """Return a context trusting the stand-in, and a PEM file holding cert and key."""
    pem = (CERTS / "pass-certificate.pem").read_bytes() + (CERTS / "pass-key.pem").read_bytes()
    handle, path = tempfile.mkstemp(suffix=".pem")
    with os.fdopen(handle, "wb") as file:
        file.write(pem)
    context = ssl.create_default_context(cadata=ca.decode())
    context.set_alpn_protocols(["h2"])
    return context, path


async def _httpx(
    url: str, ca: bytes, args: argparse.Namespace
) -> tuple[Sender, Callable[[], Awaitable[None]]]:
    import httpx

    context, path = _client_context(ca)
    context.load_cert_chain(path)
    os.unlink(path)
    client = httpx.AsyncClient(
        http2=True,
        verify=context,
        limits=httpx.Limits(max_connections=args.connections),
        timeout=30.0,
    )
    topic = _identity().pass_type_identifier
    headers = {"apns-topic": topic, "apns-push-type": "background", "apns-priority": "5"}
    gate = asyncio.Semaphore(args.in_flight)

    async def one(token: str) -> bool:
        async with gate:
            response = await client.post(f"{url}/3/device/{token}", content=b"{}", headers=headers)
            return response.status_code == 200

    async def send(tokens: list[str]) -> int:
        return sum(await asyncio.gather(*(one(token) for token in tokens)))

    return send, client.aclose


async def _aioapns(
    url: str, ca: bytes, args: argparse.Namespace
) -> tuple[Sender, Callable[[], Awaitable[None]]]:
    from aioapns import APNs, NotificationRequest, PushType
    from aioapns.connection import APNsProductionClientProtocol

    port = int(url.rsplit(":", 1)[1])

    # aioapns has no endpoint setting: its host and port are class attributes.
    class Local(APNsProductionClientProtocol):
        APNS_SERVER = "127.0.0.1"
        APNS_PORT = port

    context, path = _client_context(ca)
    topic = _identity().pass_type_identifier
    client = APNs(
        client_cert=path,
        topic=topic,
        ssl_context=context,
        max_connections=args.connections,
    )
    os.unlink(path)
    client.pool.protocol_class = Local
    gate = asyncio.Semaphore(args.in_flight)

    async def one(token: str) -> bool:
        async with gate:
            request = NotificationRequest(
                device_token=token, message={}, priority=5, push_type=PushType.BACKGROUND
            )
            result = await client.send_notification(request)
            return bool(result.is_successful)

    async def send(tokens: list[str]) -> int:
        return sum(await asyncio.gather(*(one(token) for token in tokens)))

    async def close() -> None:
        client.pool.close()

    return send, close


CLIENTS = {"walletsvc": _walletsvc, "httpx": _httpx, "aioapns": _aioapns}


async def run(
    args: argparse.Namespace, url: str, ca: bytes, pipe: Connection
) -> list[dict[str, Any]]:
    send, close = await CLIENTS[args.client](url, ca, args)
    tokens = [f"{index:064x}" for index in range(args.pushes)]
    await send(tokens[:1000])  # warm up: connect, fill HPACK tables
    rows = []
    for _ in range(args.rounds):
        pipe.send("cpu")
        server_cpu = pipe.recv()
        client_cpu = time.process_time()
        started = time.perf_counter()
        delivered = await send(tokens)
        wall = time.perf_counter() - started
        client_cpu = time.process_time() - client_cpu
        pipe.send("cpu")
        server_cpu = pipe.recv() - server_cpu
        rows.append(
            {
                "delivered": delivered,
                "wall": wall,
                "rate": args.pushes / wall,
                "client_cpu": client_cpu / wall,
                "server_cpu": server_cpu / wall,
            }
        )
    await close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", choices=sorted(CLIENTS), default="walletsvc")
    parser.add_argument("--pushes", type=int, default=20_000, help="pushes per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--streams", type=int, default=128, help="streams per connection")
    parser.add_argument("--in-flight", type=int, default=1000)
    parser.add_argument(
        "--strict", action="store_true", help="let h2 validate every header in the stand-in"
    )
    parser.add_argument(
        "--pin", action="store_true", help="pin the client to CPU 0 and the stand-in to CPU 1"
    )
    args = parser.parse_args(argv)

    if args.pin:
        os.sched_setaffinity(0, {0})
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    stand_in = context.Process(
        target=_stand_in, args=(child, args.strict, 1 if args.pin else None), daemon=True
    )
    stand_in.start()
    try:
        url, ca = parent.recv()
        rows = asyncio.run(run(args, url, ca, parent))
        parent.send("stop")
        answered, connections = parent.recv()
    finally:
        stand_in.join(timeout=10)
        if stand_in.is_alive():
            stand_in.terminate()

    print(
        f"client={args.client} pushes/round={args.pushes} rounds={args.rounds} "
        f"connections<={args.connections} streams/connection<={args.streams} "
        f"in-flight<={args.in_flight} stand-in strict={args.strict} pinned={args.pin} "
        f"cpus={os.cpu_count()}"
    )
    print(
        "| round | delivered | seconds | pushes/s | client CPU | stand-in CPU "
        "| client CPU µs/push | stand-in CPU µs/push |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for number, row in enumerate(rows, 1):
        per_push = row["wall"] / args.pushes * 1e6
        print(
            f"| {number} | {row['delivered']} | {row['wall']:.2f} | {row['rate']:,.0f} | "
            f"{row['client_cpu']:.0%} | {row['server_cpu']:.0%} | "
            f"{row['client_cpu'] * per_push:.0f} | {row['server_cpu'] * per_push:.0f} |"
        )
    rates = [row["rate"] for row in rows]
    print(
        f"median {statistics.median(rates):,.0f} pushes/s (min {min(rates):,.0f}, "
        f"max {max(rates):,.0f}); stand-in answered {answered} on {connections} connection(s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
