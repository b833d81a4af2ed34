"""Serve the app with a deadline on request heads (slowloris) and sane keep-alive.

aiohttp closes a connection whose next request head has not arrived within
`keepalive_timeout` of connecting or of the last response, but that one timer is also
the idle keep-alive timeout, which must stay above a load balancer's (60 s on most).
So a head that starts arriving must also be complete within `header_timeout_s` of its
first byte, or the socket is closed. No handler, worker or database connection is
involved until a head is complete; bodies get their own deadline (web/limits.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from prometheus_client import Counter

from walletsvc.config import Settings

log = structlog.get_logger("walletsvc.http")

HEADS_CUT = Counter(
    "walletsvc_slow_headers", "Connections closed because a request head arrived too slowly"
)


class GuardedHandler(RequestHandler):
    """aiohttp's connection handler, plus a deadline from a head's first byte to its end.

    The middleware says when a head is complete (`head_received`) and when its handler
    is done (`request_done`): a deadline armed while no request is being handled is a
    head still arriving.
    """

    def __init__(self, manager: web.Server, *, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout_s = header_timeout_s
        self._head_deadline: asyncio.TimerHandle | None = None
        self._handling = 0

    def data_received(self, data: bytes) -> None:
        if data and self._handling == 0 and self._head_deadline is None:
            self._head_deadline = asyncio.get_running_loop().call_later(
                self._header_timeout_s, self._head_too_slow
            )
        super().data_received(data)

    def head_received(self) -> None:
        """Stop the head deadline: a request head was parsed and its handler started."""
        self._handling += 1
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def request_done(self) -> None:
        """Note that a handler finished; the next head's first byte arms a new deadline."""
        self._handling -= 1

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self._handling == 0 and self.transport is not None:
            HEADS_CUT.inc()
            log.info("http.slow_header", timeout_s=self._header_timeout_s)
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().connection_lost(exc)


def run(app: Awaitable[web.Application], settings: Settings, *, reuse_port: bool = False) -> None:
    """Serve `app` on the configured host and port until SIGINT or SIGTERM.

    `reuse_port` lets the processes of `serve --workers N` bind the same port.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(_serve(app, settings, reuse_port=reuse_port))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(main)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _serve(
    app: Awaitable[web.Application], settings: Settings, *, reuse_port: bool = False
) -> None:
    limits = settings.limits
    runner = web.AppRunner(
        await app,
        handle_signals=True,
        access_log=None,
        shutdown_timeout=settings.shutdown_timeout_s,
    )
    await runner.setup()
    server = runner.server
    assert server is not None
    loop = asyncio.get_running_loop()

    def connection() -> GuardedHandler:
        return GuardedHandler(
            server,
            loop=loop,
            header_timeout_s=limits.header_timeout_s,
            keepalive_timeout=limits.keepalive_timeout_s,
            lingering_time=limits.lingering_s,
            access_log=None,
        )

    listener = await loop.create_server(
        connection,
        settings.host,
        settings.port,
        reuse_address=True,
        reuse_port=reuse_port or None,
        backlog=128,
    )
    try:
        await asyncio.Event().wait()  # until a signal ends the loop (GracefulExit)
    finally:
        listener.close()
        await runner.cleanup()
