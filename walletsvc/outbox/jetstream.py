"""NATS JetStream sink: each event to `<prefix>.<type>`, deduplicated by `Nats-Msg-Id`.

The message id is the event id, so a redelivery within the stream's duplicate
window (set when the stream is made) is dropped by the server. The stream is made
at start when missing; an existing one is used as it is, with a warning when it
does not cover our subjects. A sink that cannot reach NATS keeps trying to connect
and answers "retry" meanwhile, so the relay backs off instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import nats
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from walletsvc.domain.event_delivery import (
    DeliveryOutcome,
    DeliveryReply,
    OutgoingEvent,
    SinkRoute,
)

log = structlog.get_logger("walletsvc.events")


class JetStreamEventSink:
    """Publishes CloudEvents to a JetStream stream and waits for each acknowledgement."""

    def __init__(
        self,
        route: SinkRoute,
        url: str,
        *,
        stream: str = "WALLETSVC_EVENTS",
        subject_prefix: str = "walletsvc.events",
        duplicate_window_s: float = 600.0,
        replicas: int = 1,
        timeout_s: float = 5.0,
        reconnect_wait_s: float = 1.0,
    ) -> None:
        self._route = route
        # Several servers of one cluster, comma-separated: the client tries them in turn.
        self._servers = [part.strip() for part in url.split(",") if part.strip()]
        self._replicas = replicas
        self.stream = stream
        self.subject_prefix = subject_prefix.rstrip(".")
        self._duplicate_window_s = duplicate_window_s
        self._timeout_s = timeout_s
        self._reconnect_wait_s = reconnect_wait_s
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._stream_ready = False
        self._task: asyncio.Task[None] | None = None

    @property
    def route(self) -> SinkRoute:
        """Return the sink's name and the event types it takes."""
        return self._route

    def subject(self, event_type: str) -> str:
        """Return the subject events of a type are published on."""
        return f"{self.subject_prefix}.{event_type}"

    async def start(self) -> None:
        """Connect and make the stream in the background; until then deliveries answer "retry"."""
        if self._task is None:
            self._task = asyncio.create_task(
                self._connect(), name=f"nats-connect-{self.route.name}"
            )

    async def deliver(self, events: Sequence[OutgoingEvent]) -> list[DeliveryReply]:
        """Publish all events at once and collect their acknowledgements."""
        js = self._js if self.check() == "ok" else None
        if js is None:
            return [DeliveryReply(DeliveryOutcome.RETRY, "nats unreachable")] * len(events)
        futures: list[asyncio.Future[Any] | BaseException] = []
        for event in events:
            try:
                futures.append(
                    await js.publish_async(
                        self.subject(event.type), event.body, headers={"Nats-Msg-Id": event.id}
                    )
                )
            except Exception as exc:  # the connection dropped between two publishes
                futures.append(exc)
        waiting = [f for f in futures if isinstance(f, asyncio.Future)]
        if waiting:
            # One deadline for the whole batch: acks stream back in about one round trip.
            _, late = await asyncio.wait(waiting, timeout=self._timeout_s)
            for future in late:
                future.cancel()  # an ack after this counts as a retry; the stream dedupes
        return [_reply(future) for future in futures]

    def check(self) -> str:
        """Return "ok" when connected and the stream is there."""
        if self._nc is None or not self._nc.is_connected:
            return "unreachable"
        return "ok" if self._stream_ready else "stream missing"

    async def close(self) -> None:
        """Stop connecting and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._nc is not None and not self._nc.is_closed:
            try:
                await self._nc.close()
            except Exception:  # closing a broken connection may fail; it is closed either way
                log.debug("events.nats.close_failed", sink=self._route.name)

    async def _connect(self) -> None:
        # nats.connect keeps trying (max_reconnect_attempts=-1) until the server answers;
        # after that the client reconnects by itself whenever the connection drops.
        self._nc = await nats.connect(
            self._servers,
            connect_timeout=self._timeout_s,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=self._reconnect_wait_s,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self._js = self._nc.jetstream(timeout=self._timeout_s)
        while not self._stream_ready:
            try:
                await self._ensure_stream(self._js)
                self._stream_ready = True
            except Exception as exc:  # JetStream off, or no permission: say so, try again
                log.error(
                    "events.nats.stream_failed",
                    sink=self._route.name,
                    stream=self.stream,
                    error=type(exc).__name__,
                )
                await asyncio.sleep(max(self._reconnect_wait_s, 1.0) * 5)
        log.info("events.nats.ready", sink=self._route.name, stream=self.stream)

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        wanted = f"{self.subject_prefix}.>"
        try:
            info = await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(
                name=self.stream,
                subjects=[wanted],
                duplicate_window=self._duplicate_window_s,
                num_replicas=self._replicas,
            )
            log.info(
                "events.nats.stream_created",
                stream=self.stream,
                subjects=wanted,
                replicas=self._replicas,
            )
            return
        if wanted not in (info.config.subjects or []):
            log.warning(
                "events.nats.stream_subjects",
                stream=self.stream,
                subjects=info.config.subjects,
                expected=wanted,
            )

    async def _on_error(self, exc: Exception) -> None:
        # Every failed (re)connect attempt lands here; one line each, no address or secret.
        log.warning("events.nats.error", sink=self._route.name, error=type(exc).__name__)

    async def _on_disconnected(self) -> None:
        log.warning("events.nats.disconnected", sink=self._route.name)

    async def _on_reconnected(self) -> None:
        log.info("events.nats.reconnected", sink=self._route.name)


def _reply(future: asyncio.Future[Any] | BaseException) -> DeliveryReply:
    if isinstance(future, BaseException):
        return DeliveryReply(DeliveryOutcome.RETRY, type(future).__name__)
    if future.cancelled():
        return DeliveryReply(DeliveryOutcome.RETRY, "timeout")
    error = future.exception()
    if error is not None:  # an API error from the server (no stream, limits...)
        return DeliveryReply(DeliveryOutcome.RETRY, type(error).__name__)
    return DeliveryReply(DeliveryOutcome.DELIVERED, "ack")
