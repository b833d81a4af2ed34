"""HTTP/2 connections to APNs and their pools: many concurrent push streams per connection.

Used by walletsvc/apple/apns.py (ApnsPushSender); bench/results/apns.md has the measured
cost of each choice made here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import structlog
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import H2Error
from hpack import Encoder, HeaderTuple, NeverIndexedHeaderTuple

from walletsvc.apple.apns_token import ProviderToken
from walletsvc.domain.push import PushOutcome, PushReply

log = structlog.get_logger("walletsvc.apns")

# Wallet ignores the payload; it only needs to learn that the pass type changed.
_BODY = b"{}"
_UNREGISTERED_REASONS = frozenset({"Unregistered", "BadDeviceToken", "ExpiredToken"})
# Reasons APNs may give in a GOAWAY that mean our credentials or topic are wrong.
CONFIG_REASONS = frozenset(
    {
        "BadCertificate",
        "BadCertificateEnvironment",
        "Forbidden",
        "InvalidProviderToken",
        "MissingProviderToken",
        "TopicDisallowed",
        "BadTopic",
        "MissingTopic",
    }
)
_CLOSE_WAIT_S = 2.0
# h2's per-header checks cost about a tenth of each push (bench/results/apns.md): our
# headers are fixed, and of APNs' answers only :status, retry-after and the body are read.
_H2_CONFIG = H2Configuration(
    client_side=True,
    header_encoding=None,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
    validate_inbound_headers=False,
)


class _PlainEncoder(Encoder):
    """An HPACK encoder without Huffman coding.

    Every other header is indexed after the first push; what is left is the push token
    path, random hex that Huffman shrinks by about 20 bytes for a measurable share of
    each push's CPU on both ends (bench/results/apns.md): the bytes are cheaper here.
    """

    def encode(
        self,
        headers: Iterable[HeaderTuple | tuple[bytes | str, bytes | str]],  # type: ignore[override]
        huffman: bool = True,
    ) -> bytes:
        return super().encode(headers, huffman=False)


_Header = tuple[bytes, bytes] | NeverIndexedHeaderTuple


def classify(status: int | None, reason: str | None) -> PushOutcome:
    """Map one APNs answer (None: no answer) to what to do with the registration."""
    if status == 200:
        return PushOutcome.DELIVERED
    if status == 410 or reason in _UNREGISTERED_REASONS:
        return PushOutcome.UNREGISTERED
    # An expired provider token is renewed on the next push; nothing for an operator to fix.
    if status is None or status == 429 or status >= 500 or reason == "ExpiredProviderToken":
        return PushOutcome.RETRY
    return PushOutcome.MISCONFIGURED


class Unavailable(Exception):
    """No connection could be had; every push of the burst that is left gets this answer."""

    def __init__(self, outcome: PushOutcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


class _Stream:
    __slots__ = ("body", "future", "retry_after", "started", "status", "token")

    def __init__(self, token: str, future: asyncio.Future[PushReply], started: float) -> None:
        self.token = token
        self.future = future
        self.started = started
        self.status: int | None = None
        self.retry_after: float | None = None
        self.body = b""


class _Connection(asyncio.Protocol):
    """One HTTP/2 connection to APNs carrying many concurrent push streams."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self.h2 = H2Connection(_H2_CONFIG)
        self.h2.encoder = _PlainEncoder()
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.ready: asyncio.Future[None] = self._loop.create_future()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self.usable = False
        self._flush_pending = False
        self._sweep: asyncio.TimerHandle | None = None

    def has_room(self) -> bool:
        return (
            self.usable
            and len(self.streams) < self._pool.streams_per_connection
            and len(self.streams) < self.h2.remote_settings.max_concurrent_streams
            and self.h2.outbound_flow_control_window >= len(_BODY)
        )

    def push(self, token: str, headers: list[_Header]) -> asyncio.Future[PushReply]:
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream_id, headers)
        self.h2.send_data(stream_id, _BODY, end_stream=True)
        future: asyncio.Future[PushReply] = self._loop.create_future()
        self.streams[stream_id] = _Stream(token, future, self._loop.time())
        if stream_id > 2**31 - 1000:
            self.usable = False  # stream ids run out; let this connection drain
        if not self._flush_pending:
            # One write per loop iteration for all the streams opened in it.
            self._flush_pending = True
            self._loop.call_soon(self._flush)
        if self._sweep is None:
            self._arm_sweep()
        return future

    def close(self) -> None:
        """Say GOAWAY and close; streams still open are answered when the transport is gone."""
        self.usable = False
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(H2Error):
                self.h2.close_connection()
            self._flush()
            self.transport.close()

    def abort(self) -> None:
        """Drop a connection that never became ready."""
        self.ready.cancel()
        if self.transport is not None:
            self.transport.abort()

    # asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
            self.ready.set_exception(Unavailable(PushOutcome.MISCONFIGURED, "NoHttp2"))
            transport.abort()
            return
        self.h2.initiate_connection()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        if self._sweep is not None:
            self._sweep.cancel()
        outcome, reason = None, "ConnectionLost"
        if not self.ready.done():
            # Under TLS 1.3 a server checks our certificate after our side of the handshake
            # is done; a refusal then shows as a close before HTTP/2's first SETTINGS (asyncio
            # does not pass the TLS alert on).
            if self._pool.uses_certificate:
                outcome, reason = PushOutcome.MISCONFIGURED, "CertificateRefused"
            self.ready.set_exception(Unavailable(outcome or PushOutcome.RETRY, reason))
        for stream_id in list(self.streams):
            self._finish(stream_id, reason, outcome)
        if not self.closed.done():
            self.closed.set_result(None)
        self._pool.discard(self)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except H2Error:
            log.warning("apns.connection.protocol_error", pool=self._pool.name)
            if self.transport is not None:
                self.transport.abort()
            return
        for event in events:
            if isinstance(event, ResponseReceived):
                self._on_headers(event.stream_id, event.headers)
            elif isinstance(event, DataReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.body += event.data
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, StreamEnded):
                self._finish(event.stream_id)
            elif isinstance(event, StreamReset):
                self._finish(event.stream_id, "StreamReset")
            elif isinstance(event, RemoteSettingsChanged):
                if not self.ready.done():
                    self.usable = True
                    self.ready.set_result(None)
                self._pool.wake()
            elif isinstance(event, WindowUpdated):
                self._pool.wake()
            elif isinstance(event, ConnectionTerminated):
                self._on_goaway(event)
        self._flush()

    # Internals ----------------------------------------------------------------------------

    def _flush(self) -> None:
        self._flush_pending = False
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _on_headers(self, stream_id: int, headers: Sequence[tuple[bytes, bytes]]) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        for name, value in headers:
            if name == b":status":
                stream.status = int(value) if value.isdigit() else None
            elif name == b"retry-after" and value.isdigit():
                stream.retry_after = float(value)

    def _finish(
        self, stream_id: int, lost: str | None = None, outcome: PushOutcome | None = None
    ) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return
        status = stream.status if lost is None else None
        reason = lost if lost is not None else _reason(stream.body)
        reply = PushReply(
            push_token=stream.token,
            outcome=outcome or classify(status, reason),
            status=status,
            reason=reason,
            retry_after_s=stream.retry_after,
        )
        if not stream.future.done():
            stream.future.set_result(reply)
        if status == 503:
            self.usable = False  # APNs is shutting this connection down: move on to another
        if reason == "ExpiredProviderToken":
            self._pool.token_expired()
        if not self.usable and not self.streams:
            self.close()
        self._pool.wake()

    def _on_goaway(self, event: ConnectionTerminated) -> None:
        self.usable = False
        reason = _reason(event.additional_data or b"") or "GoAway"
        outcome = PushOutcome.MISCONFIGURED if reason in CONFIG_REASONS else PushOutcome.RETRY
        log.info("apns.connection.goaway", pool=self._pool.name, reason=reason)
        last = event.last_stream_id or 0
        for stream_id in [sid for sid in self.streams if sid > last]:
            self._finish(stream_id, reason, outcome)
        if not self.streams:
            self.close()

    def _arm_sweep(self) -> None:
        self._sweep = self._loop.call_later(self._pool.timeout_s / 4, self._expire)

    def _expire(self) -> None:
        self._sweep = None
        deadline = self._loop.time() - self._pool.timeout_s
        expired = [sid for sid, stream in self.streams.items() if stream.started <= deadline]
        if expired:
            # A stream APNs never answered means the connection is not healthy: drain it.
            log.warning("apns.connection.timeout", pool=self._pool.name, streams=len(expired))
            self.usable = False
            for stream_id in expired:
                with contextlib.suppress(H2Error):
                    self.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
                self._finish(stream_id, "Timeout")
            self._flush()
        if self.streams:
            self._arm_sweep()


def _reason(body: bytes) -> str | None:
    if not body:
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    reason = parsed.get("reason") if isinstance(parsed, dict) else None
    return reason if isinstance(reason, str) else None


@dataclass
class Burst:
    """What one `send` call may still do: connections it may open."""

    opens_left: int


class ConnectionPool:
    """The connections of one credential: a pass type's certificate, or the provider token."""

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        context: ssl.SSLContext,
        max_connections: int,
        streams_per_connection: int,
        timeout_s: float,
        connect_timeout_s: float,
        token: ProviderToken | None,
    ) -> None:
        self.name = name
        self.uses_certificate = token is None
        self.streams_per_connection = streams_per_connection
        self.timeout_s = timeout_s
        self.token = token
        self._host = host
        self._port = port
        self._context = context
        self._max_connections = max_connections
        self._connect_timeout_s = connect_timeout_s
        self._connections: list[_Connection] = []
        self._current: _Connection | None = None
        self._opening = False
        self._closed = False
        self._room = asyncio.Event()

    async def connection(self, burst: Burst) -> _Connection:
        """Return a connection with room for one more stream, opening one when all are full."""
        while True:
            if self._closed:
                raise Unavailable(PushOutcome.RETRY, "Closed")
            # Fill one connection before moving on: cheaper than finding the emptiest each time.
            current = self._current
            if current is not None and current.has_room():
                return current
            for candidate in self._connections:
                if candidate.has_room():
                    self._current = candidate
                    return candidate
            if not self._opening and len(self._connections) < self._max_connections:
                if burst.opens_left <= 0:
                    raise Unavailable(PushOutcome.RETRY, "ConnectionChurn")
                burst.opens_left -= 1
                await self._open()
                continue
            self._room.clear()
            await self._room.wait()

    def wake(self) -> None:
        self._room.set()

    def discard(self, connection: _Connection) -> None:
        if self._current is connection:
            self._current = None
        if connection in self._connections:
            self._connections.remove(connection)
            log.debug("apns.connection.closed", pool=self.name, open=len(self._connections))
        self.wake()

    def token_expired(self) -> None:
        if self.token is not None:
            self.token.expired()

    async def close(self) -> None:
        self._closed = True
        connections = list(self._connections)
        for connection in connections:
            connection.close()
        if connections:
            # Give the transports a moment to finish their TLS goodbyes inside this loop.
            await asyncio.wait([c.closed for c in connections], timeout=_CLOSE_WAIT_S)
        self._connections.clear()
        self._current = None
        self.wake()

    async def _open(self) -> None:
        self._opening = True
        loop = asyncio.get_running_loop()
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self), self._host, self._port, ssl=self._context
                )
                await connection.ready
        except (OSError, TimeoutError) as exc:
            if connection is not None:
                connection.abort()
            raise self._failure(exc) from None
        except BaseException:
            if connection is not None:
                connection.abort()
            raise
        finally:
            self._opening = False
            self.wake()
        self._connections.append(connection)
        log.debug("apns.connection.opened", pool=self.name, open=len(self._connections))

    def _failure(self, exc: OSError | TimeoutError) -> Unavailable:
        if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError):
            # The server's certificate failed to verify or it refused ours: configuration.
            log.error("apns.connection.tls_failed", pool=self.name, error=str(exc))
            return Unavailable(PushOutcome.MISCONFIGURED, "TlsHandshakeFailed")
        log.warning("apns.connection.failed", pool=self.name, error=repr(exc))
        return Unavailable(PushOutcome.RETRY, "ConnectionFailed")
