"""WebhookReceiver: a local aiohttp endpoint that takes our event webhooks and fails on command.

It verifies every delivery with intake's Standard Webhooks verifier (the one our
terminals are checked with), so a test that passes proves the relay signs the way
receivers check. `answers` is a queue of scripted replies used first; after it runs
out `mode` answers: "ok", "500", "429" (with `retry_after`), "410", "slow" (sleeps
`slow_s` before answering 200) or "refuse" (resets the connection).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from walletsvc.intake.standard_webhooks import verify

SECRET_KEY = secrets.token_bytes(32)
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()


@dataclass
class Received:
    id: str
    event: dict[str, Any]
    headers: dict[str, str]


@dataclass
class WebhookReceiver:
    mode: str = "ok"
    answers: list[str] = field(default_factory=list)
    retry_after: str = "30"
    slow_s: float = 2.0
    keys: tuple[bytes, ...] = (SECRET_KEY,)
    received: list[Received] = field(default_factory=list)  # accepted (2xx) deliveries
    attempts: Counter[str] = field(default_factory=Counter)  # every request, by mode answered
    bad_signatures: int = 0
    url: str = ""  # set once it listens

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        return app

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.received]

    def by_partition(self) -> dict[str, list[int]]:
        """Sequence numbers per customer, in the order they were first accepted."""
        seen: set[str] = set()
        order: dict[str, list[int]] = defaultdict(list)
        for r in self.received:
            if r.id in seen:
                continue
            seen.add(r.id)
            order[r.event["partitionkey"]].append(int(r.event["sequence"]))
        return order

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            verify(request.headers, body, self.keys, datetime.now(UTC))
        except Exception:
            self.bad_signatures += 1
            return web.Response(status=401)
        mode = self.answers.pop(0) if self.answers else self.mode
        self.attempts[mode] += 1
        if mode == "500":
            return web.Response(status=500)
        if mode == "429":
            return web.Response(status=429, headers={"Retry-After": self.retry_after})
        if mode == "410":
            return web.Response(status=410)
        if mode == "refuse":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        if mode == "slow":
            await asyncio.sleep(self.slow_s)
        event = json.loads(body)
        assert request.headers["content-type"].startswith("application/cloudevents+json")
        self.received.append(Received(request.headers["webhook-id"], event, dict(request.headers)))
        return web.Response(status=204)
