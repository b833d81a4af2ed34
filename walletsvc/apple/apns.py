"""ApnsPushSender: Wallet's empty update push, over a few long-lived HTTP/2 connections to APNs.

Follows Apple's "Sending notification requests to APNs"
(https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns),
"Establishing a token-based connection to APNs"
(https://developer.apple.com/documentation/usernotifications/establishing-a-token-based-connection-to-apns)
and "Handling notification responses from APNs", as PROTOCOLS.md section 2 summarises:
`POST /3/device/<push token>`, `apns-topic` = the pass type identifier, body `{}`.

Each credential (a pass type's certificate, or the team's provider token shared by every
topic without one) gets a small pool of long-lived connections, opened when the ones open
are full; each carries many concurrent streams (up to `streams_per_connection`, and never
more than APNs announces), and one semaphore bounds the pushes in flight. The sender
never retries by itself: every token gets a `PushReply` and the caller backs off.

Why h2 under a small asyncio protocol rather than aioapns or httpx, and the measured
cost of each choice below: bench/results/apns.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import secrets
import ssl
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
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

from walletsvc.apple.credentials import SigningIdentity
from walletsvc.domain.push import PushOutcome, PushReply

__all__ = ["DEFAULT_ENDPOINT", "ApnsPushSender", "ProviderTokenKey", "classify"]

DEFAULT_ENDPOINT = "https://api.push.apple.com"

log = structlog.get_logger("walletsvc.apns")

# Wallet ignores the payload; it only needs to learn that the pass type changed.
_BODY = b"{}"
_HEX = re.compile(r"[0-9A-Fa-f]+")
_UNREGISTERED_REASONS = frozenset({"Unregistered", "BadDeviceToken", "ExpiredToken"})
# Reasons APNs may give in a GOAWAY that mean our credentials or topic are wrong.
_CONFIG_REASONS = frozenset(
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
# Apple: renew the provider token no more than once every 20 minutes, and at least hourly.
_TOKEN_MIN_AGE_S = 20 * 60
_TOKEN_MAX_AGE_S = 60 * 60
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


@dataclass(frozen=True)
class ProviderTokenKey:
    """An APNs auth key (.p8) for token auth: its key id and the team that owns it."""

    key_id: str
    team_id: str
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def from_p8(cls, path: Path, *, key_id: str, team_id: str) -> ProviderTokenKey:
        """Load the PKCS#8 PEM key Apple hands out as AuthKey_<key id>.p8."""
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path}: an APNs auth key must be an EC (P-256) key")
        return cls(key_id=key_id, team_id=team_id, private_key=key)


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


def _short_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


class _Unavailable(Exception):
    """No connection could be had; every push of the burst that is left gets this answer."""

    def __init__(self, outcome: PushOutcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


class _ProviderToken:
    """One ES256 JWT reused by every push until it is `max_age_s` old."""

    def __init__(self, key: ProviderTokenKey, max_age_s: float, clock: Callable[[], float]):
        self._key = key
        self._max_age_s = max_age_s
        self._clock = clock
        self._issued_at = 0.0
        self._header = b""

    def header(self) -> bytes:
        now = self._clock()
        if not self._header or now - self._issued_at >= self._max_age_s:
            token = jwt.encode(
                {"iss": self._key.team_id, "iat": int(now)},
                self._key.private_key,
                algorithm="ES256",
                headers={"kid": self._key.key_id},
            )
            self._issued_at = now
            self._header = b"bearer " + token.encode("ascii")
        return self._header

    def expired(self) -> None:
        """APNs called the token expired: renew it, unless that would renew too often."""
        if self._clock() - self._issued_at >= _TOKEN_MIN_AGE_S:
            self._header = b""


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

    def __init__(self, pool: _Pool) -> None:
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
            self.ready.set_exception(_Unavailable(PushOutcome.MISCONFIGURED, "NoHttp2"))
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
            self.ready.set_exception(_Unavailable(outcome or PushOutcome.RETRY, reason))
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
        outcome = PushOutcome.MISCONFIGURED if reason in _CONFIG_REASONS else PushOutcome.RETRY
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
class _Burst:
    """What one `send` call may still do: connections it may open."""

    opens_left: int


class _Pool:
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
        token: _ProviderToken | None,
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

    async def connection(self, burst: _Burst) -> _Connection:
        """Return a connection with room for one more stream, opening one when all are full."""
        while True:
            if self._closed:
                raise _Unavailable(PushOutcome.RETRY, "Closed")
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
                    raise _Unavailable(PushOutcome.RETRY, "ConnectionChurn")
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

    def _failure(self, exc: OSError | TimeoutError) -> _Unavailable:
        if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError):
            # The server's certificate failed to verify or it refused ours: configuration.
            log.error("apns.connection.tls_failed", pool=self.name, error=str(exc))
            return _Unavailable(PushOutcome.MISCONFIGURED, "TlsHandshakeFailed")
        log.warning("apns.connection.failed", pool=self.name, error=repr(exc))
        return _Unavailable(PushOutcome.RETRY, "ConnectionFailed")


class ApnsPushSender:
    """Push Wallet's update notification to APNs; one `PushReply` per token, in order.

    `identities` maps each pass type identifier (the APNs topic) to its Pass Type ID
    certificate and key; topics without one use token auth when `provider_key` is given.
    `max_connections` bounds each credential's pool and `streams_per_connection` the
    streams on each (h2 walks every open stream to open one more, so very wide
    connections cost CPU); `max_in_flight` bounds the pushes awaiting an answer across
    all pools. A push unanswered after `timeout_s` is RETRY. `priority` 5 is Apple's rule
    for background pushes. `server_ca_pem` replaces the system trust store (tests point
    `endpoint` at a local stand-in).
    """

    def __init__(
        self,
        *,
        identities: Mapping[str, SigningIdentity] | None = None,
        provider_key: ProviderTokenKey | None = None,
        endpoint: str = DEFAULT_ENDPOINT,
        max_connections: int = 8,
        streams_per_connection: int = 128,
        max_in_flight: int = 1000,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        token_max_age_s: float = 40 * 60,
        priority: int = 5,
        server_ca_pem: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"the APNs endpoint must be an https URL, not {endpoint!r}")
        if not _TOKEN_MIN_AGE_S <= token_max_age_s < _TOKEN_MAX_AGE_S:
            raise ValueError("token_max_age_s must be at least 20 minutes and under an hour")
        if min(max_connections, streams_per_connection, max_in_flight) < 1:
            raise ValueError("connections, streams and pushes in flight must be at least 1")
        if priority not in (5, 10):
            raise ValueError("priority must be 5 or 10")
        host, port = parts.hostname, parts.port or 443
        authority = host if port == 443 else f"{host}:{port}"
        self._prefix = [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":authority", authority.encode("idna")),
        ]
        # Wallet's push carries no alert, so it is a background push: Apple's rule for those
        # is priority 5 (10 only if told to).
        self._suffix = [
            (b"apns-push-type", b"background"),
            (b"apns-priority", str(priority).encode()),
        ]
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._max_connections = max_connections
        self._pools: dict[str, _Pool] = {}

        def pool(name: str, context: ssl.SSLContext, token: _ProviderToken | None) -> _Pool:
            return _Pool(
                name,
                host=host,
                port=port,
                context=context,
                max_connections=max_connections,
                streams_per_connection=streams_per_connection,
                timeout_s=timeout_s,
                connect_timeout_s=connect_timeout_s,
                token=token,
            )

        for topic, identity in (identities or {}).items():
            if identity.pass_type_identifier != topic:
                raise ValueError(
                    f"the certificate for {topic!r} is issued to "
                    f"{identity.pass_type_identifier!r}; APNs would refuse every push"
                )
            self._pools[topic] = pool(topic, _tls_context(server_ca_pem, identity), None)
        self._token_pool: _Pool | None = None
        if provider_key is not None:
            token = _ProviderToken(provider_key, token_max_age_s, clock)
            name = f"token:{provider_key.team_id}"
            self._token_pool = pool(name, _tls_context(server_ca_pem, None), token)
        self._closed = False

    async def send(self, topic: str, push_tokens: Sequence[str]) -> list[PushReply]:
        """Push to every token, concurrently; one reply per token, in the same order."""
        if self._closed:
            raise RuntimeError("this ApnsPushSender is closed")
        replies: list[PushReply | None] = [None] * len(push_tokens)
        pool = self._pools.get(topic, self._token_pool)
        topic_header = (b"apns-topic", topic.encode())
        burst = _Burst(opens_left=2 * self._max_connections)
        failure: _Unavailable | None = None
        if pool is None:
            failure = _Unavailable(PushOutcome.MISCONFIGURED, "NoCredentials")
        pending: list[tuple[int, asyncio.Future[PushReply]]] = []
        for index, token in enumerate(push_tokens):
            if failure is not None:
                replies[index] = PushReply(token, failure.outcome, None, failure.reason)
                continue
            if not _HEX.fullmatch(token):
                # Not a device token at all; APNs would answer BadDeviceToken.
                replies[index] = PushReply(token, PushOutcome.UNREGISTERED, None, "BadDeviceToken")
                continue
            assert pool is not None
            await self._in_flight.acquire()
            try:
                connection = await pool.connection(burst)
            except _Unavailable as exc:
                self._in_flight.release()
                failure = exc
                replies[index] = PushReply(token, exc.outcome, None, exc.reason)
                continue
            except BaseException:
                self._in_flight.release()
                raise
            headers = [
                *self._prefix,
                # Never indexed: a push token is used once per burst, and stays out of HPACK state.
                NeverIndexedHeaderTuple(b":path", b"/3/device/" + token.encode("ascii")),
                topic_header,
                *self._suffix,
            ]
            if pool.token is not None:
                headers.append((b"authorization", pool.token.header()))
            future = connection.push(token, headers)
            future.add_done_callback(self._release)
            pending.append((index, future))
        for index, future in pending:
            replies[index] = await future
        done = [reply for reply in replies if reply is not None]
        _log_burst(topic, done)
        return done

    async def close(self) -> None:
        """Close every connection; pushes still in flight are answered RETRY."""
        self._closed = True
        pools = list(self._pools.values())
        if self._token_pool is not None:
            pools.append(self._token_pool)
        for pool in pools:
            await pool.close()

    def _release(self, _future: asyncio.Future[PushReply]) -> None:
        self._in_flight.release()


def _log_burst(topic: str, replies: Sequence[PushReply]) -> None:
    outcomes = Counter(reply.outcome for reply in replies)
    log.debug("apns.push.sent", topic=topic, **{str(k): v for k, v in outcomes.items()})
    problems: dict[tuple[int | None, str | None], list[PushReply]] = {}
    for reply in replies:
        if reply.outcome is PushOutcome.MISCONFIGURED:
            problems.setdefault((reply.status, reply.reason), []).append(reply)
    # Once per burst and reason: a bad certificate must not log a line per device.
    for (status, reason), affected in problems.items():
        log.error(
            "apns.push.misconfigured",
            topic=topic,
            status=status,
            reason=reason,
            count=len(affected),
            example_token_sha256=_short_hash(affected[0].push_token),
        )


def _tls_context(server_ca_pem: bytes | None, identity: SigningIdentity | None) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cadata=server_ca_pem.decode("ascii") if server_ca_pem is not None else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    if identity is not None:
        _load_identity(context, identity)
    return context


def _load_identity(context: ssl.SSLContext, identity: SigningIdentity) -> None:
    # The ssl module loads client certificates only from files: write the key encrypted
    # under a one-time password into a private temporary file and remove it at once.
    password = secrets.token_bytes(32)
    pem = identity.certificate.public_bytes(serialization.Encoding.PEM) + (
        identity.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
    )
    with tempfile.TemporaryDirectory(prefix="walletsvc-apns-") as directory:
        path = os.path.join(directory, "identity.pem")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
        context.load_cert_chain(path, password=password)
