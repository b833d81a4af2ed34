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
import hashlib
import os
import re
import secrets
import ssl
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

import structlog
from cryptography.hazmat.primitives import serialization
from hpack import NeverIndexedHeaderTuple
from prometheus_client import Counter as MetricCounter

from walletsvc.apple.apns_connection import (
    Burst,
    ConnectionPool,
    Unavailable,
    classify,
)
from walletsvc.apple.apns_token import (
    TOKEN_MAX_AGE_S,
    TOKEN_MIN_AGE_S,
    ProviderToken,
    ProviderTokenKey,
)
from walletsvc.apple.credentials import SigningIdentity
from walletsvc.domain.push import PushOutcome, PushReply

__all__ = ["DEFAULT_ENDPOINT", "ApnsPushSender", "ProviderTokenKey", "classify"]

DEFAULT_ENDPOINT = "https://api.push.apple.com"

log = structlog.get_logger("walletsvc.apns")

_HEX = re.compile(r"[0-9A-Fa-f]+")


def _short_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


# APNs replies by outcome (accepted, unregistered, retry, ...) and APNs' reason string.
APNS_REPLIES = MetricCounter(
    "walletsvc_apns_replies", "Replies from APNs per push", ["outcome", "reason"]
)


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
        if not TOKEN_MIN_AGE_S <= token_max_age_s < TOKEN_MAX_AGE_S:
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
        self._pools: dict[str, ConnectionPool] = {}

        def pool(name: str, context: ssl.SSLContext, token: ProviderToken | None) -> ConnectionPool:
            return ConnectionPool(
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
        self._token_pool: ConnectionPool | None = None
        if provider_key is not None:
            token = ProviderToken(provider_key, token_max_age_s, clock)
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
        burst = Burst(opens_left=2 * self._max_connections)
        failure: Unavailable | None = None
        if pool is None:
            failure = Unavailable(PushOutcome.MISCONFIGURED, "NoCredentials")
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
            except Unavailable as exc:
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
    for reply in replies:
        APNS_REPLIES.labels(outcome=reply.outcome.value, reason=reply.reason or "").inc()
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
