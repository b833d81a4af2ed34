"""HTTP webhook sink: one signed POST per event to one endpoint.

Replies: 2xx delivered; 410 Gone means the receiver removed this endpoint, so the
relay stops the whole sink (see docs/events.md); 429 honours Retry-After (seconds or
an HTTP-date) for the whole sink; anything else, a timeout or a refused connection
is retried with back-off. Redirects are not followed: a webhook URL is configured
exactly, and a 3xx is a failure to look into.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
import structlog

from walletsvc.domain.event_delivery import (
    DeliveryOutcome,
    DeliveryReply,
    OutgoingEvent,
    SinkRoute,
)
from walletsvc.outbox.envelope import CONTENT_TYPE
from walletsvc.outbox.signer import signature_headers

log = structlog.get_logger("walletsvc.events")


class WebhookEventSink:
    """Posts CloudEvents to one endpoint, signed with its secret(s); the session is injected."""

    def __init__(
        self,
        route: SinkRoute,
        url: str,
        keys: Sequence[bytes],
        session: aiohttp.ClientSession,
        *,
        timeout_s: float = 10.0,
        concurrency: int = 16,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not keys:
            raise ValueError("a webhook sink signs with at least one key")
        self._route = route
        self._url = url
        self._keys = tuple(keys)
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._slots = asyncio.Semaphore(concurrency)
        self._clock = clock

    @property
    def route(self) -> SinkRoute:
        """Return the sink's name and the event types it takes."""
        return self._route

    async def start(self) -> None:
        """Nothing to prepare: the session connects on the first post."""

    async def deliver(self, events: Sequence[OutgoingEvent]) -> list[DeliveryReply]:
        """Post every event concurrently (up to the sink's concurrency)."""
        return list(await asyncio.gather(*(self._post(event) for event in events)))

    def check(self) -> str:
        """Return "ok": an endpoint is not probed (a probe is a request it did not ask for)."""
        return "ok"

    async def close(self) -> None:
        """Nothing to release: the session belongs to whoever made it."""

    async def _post(self, event: OutgoingEvent) -> DeliveryReply:
        timestamp = int(self._clock().timestamp())
        headers = signature_headers(self._keys, event.id, timestamp, event.body)
        headers["content-type"] = CONTENT_TYPE
        async with self._slots:
            try:
                async with self._session.post(
                    self._url,
                    data=event.body,
                    headers=headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                ) as response:
                    await response.read()  # drain it so the connection goes back to the pool
                    return _reply(response.status, response.headers.get("Retry-After"))
            except TimeoutError:
                return DeliveryReply(DeliveryOutcome.RETRY, "timeout")
            except aiohttp.ClientError as exc:
                return DeliveryReply(DeliveryOutcome.RETRY, type(exc).__name__)


def _reply(status: int, retry_after: str | None) -> DeliveryReply:
    if 200 <= status < 300:
        return DeliveryReply(DeliveryOutcome.DELIVERED, str(status))
    if status == 410:
        return DeliveryReply(DeliveryOutcome.GONE, "410 Gone")
    if status == 429:
        return DeliveryReply(DeliveryOutcome.RETRY, "429", retry_after_s(retry_after))
    return DeliveryReply(DeliveryOutcome.RETRY, str(status))


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Return the pause a Retry-After header asks for (RFC 9110 10.2.3), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
