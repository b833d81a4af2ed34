"""FakeApnsServer: a local HTTP/2-over-TLS stand-in that answers like Apple's push service.

It follows "Sending notification requests to APNs" and "Handling notification responses
from APNs" (https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns):
the path `/3/device/<hex token>`, the `apns-*` headers, a client certificate issued by a
given CA whose UID is the topic, or an ES256 provider token (`kid`, `iss` = team id,
`iat` under an hour old, not renewed more often than every 20 minutes), and JSON error
bodies `{"reason": ...}` with an `apns-id` header. Tests script other answers per token
or for everyone, and can make it send GOAWAY or drop the connection mid-burst.

It runs on 127.0.0.1 on a random port with a certificate made on the spot; clients trust
`ca_pem`. It counts connections and the streams open at once, so tests can assert
multiplexing and bounded concurrency.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import ssl
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    RequestReceived,
    StreamEnded,
    StreamReset,
)
from h2.exceptions import H2Error
from h2.settings import SettingCodes

__all__ = ["Answer", "FakeApnsServer", "ProviderKey", "ReceivedPush"]

_PATH = re.compile(rb"/3/device/(.*)")
_TOKEN = re.compile(rb"[0-9a-fA-F]{64,200}")
_PUSH_TYPES = {
    b"alert",
    b"background",
    b"location",
    b"voip",
    b"complication",
    b"fileprovider",
    b"mdm",
    b"liveactivity",
    b"pushtotalk",
}
_MAX_PAYLOAD = 4096
_SLICE = 4096
_TOKEN_MAX_AGE_S = 3600
_TOKEN_MIN_RENEWAL_S = 20 * 60


@dataclass(frozen=True)
class Answer:
    """A scripted APNs answer: a status with its reason, or a stall (never answer)."""

    status: int
    reason: str | None = None
    retry_after: int | None = None
    stall: bool = False


@dataclass(frozen=True)
class ProviderKey:
    """A token-auth signing key APNs knows: its team and the topics it may push to."""

    team_id: str
    public_key: ec.EllipticCurvePublicKey
    topics: frozenset[str] | None = None  # None: any topic


@dataclass(frozen=True)
class ReceivedPush:
    """One request the stand-in answered."""

    token: str
    topic: str
    headers: dict[str, str]
    body: bytes
    auth: str  # "certificate" or "token"
    connection: int
    status: int


@dataclass
class _Request:
    headers: dict[bytes, bytes]
    body: bytearray = field(default_factory=bytearray)


class FakeApnsServer:
    """An APNs look-alike on 127.0.0.1; use as `async with FakeApnsServer(...) as apns:`."""

    def __init__(
        self,
        *,
        client_ca_pem: bytes | None = None,
        provider_keys: Mapping[str, ProviderKey] | None = None,
        max_concurrent_streams: int = 1000,
        delay_s: float = 0.0,
        clock: Callable[[], float] = time.time,
        record: bool = True,
        strict: bool = True,
    ) -> None:
        self.record = record
        self.strict = strict
        self.client_ca_pem = client_ca_pem
        self.provider_keys = dict(provider_keys or {})
        self.max_concurrent_streams = max_concurrent_streams
        self.delay_s = delay_s
        self.clock = clock
        self.received: list[ReceivedPush] = []
        self.connections_opened = 0
        self.open_streams = 0
        self.peak_open_streams = 0
        self.answered = 0
        self._by_token: dict[str, Answer] = {}
        self._for_all: Answer | None = None
        self._go_away_after: int | None = None
        self._go_away_reason = "Shutdown"
        self._drop_after: int | None = None
        self._token_iat: dict[str, int] = {}
        self._connections: set[_ServerConnection] = set()
        self._server: asyncio.Server | None = None
        with tempfile.TemporaryDirectory(prefix="fake-apns-") as directory:
            self.ca_pem, self._ssl = self._make_tls(Path(directory))

    @property
    def url(self) -> str:
        """Return the endpoint to hand to the client, e.g. https://127.0.0.1:43210."""
        assert self._server is not None, "start the server first"
        port = self._server.sockets[0].getsockname()[1]
        return f"https://127.0.0.1:{port}"

    @property
    def open_connections(self) -> int:
        """Return how many client connections are open now."""
        return len(self._connections)

    async def start(self) -> None:
        """Listen on a random port of 127.0.0.1."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ServerConnection(self), "127.0.0.1", 0, ssl=self._ssl
        )

    async def stop(self) -> None:
        """Close the listener and every open connection."""
        if self._server is not None:
            self._server.close()
            for connection in list(self._connections):
                connection.abort()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # Scripting --------------------------------------------------------------------------

    def answer(
        self,
        status: int,
        reason: str | None = None,
        *,
        token: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer `status`/`reason` to one token, or to every token when none is given."""
        scripted = Answer(status, reason, retry_after)
        if token is None:
            self._for_all = scripted
        else:
            self._by_token[token.lower()] = scripted

    def stall(self, *, token: str | None = None) -> None:
        """Never answer one token (or every token)."""
        if token is None:
            self._for_all = Answer(0, stall=True)
        else:
            self._by_token[token.lower()] = Answer(0, stall=True)

    def go_away_after(self, answers: int, reason: str = "Shutdown") -> None:
        """Send GOAWAY on the connection that gives the next `answers`-th answer, then close it."""
        self._go_away_after = answers
        self._go_away_reason = reason

    def drop_after(self, answers: int) -> None:
        """Close the connection without GOAWAY right after the next `answers`-th answer."""
        self._drop_after = answers

    def reset(self) -> None:
        """Forget scripted answers and triggers; answer 200 again."""
        self._by_token.clear()
        self._for_all = None
        self._go_away_after = None
        self._drop_after = None

    # Checks, in the order APNs reports them ---------------------------------------------

    def judge(self, request: _Request, cert_topic: str | None) -> tuple[Answer, str, str, str]:
        """Return the answer for one request, with its token, topic and auth kind."""
        headers = request.headers
        method = headers.get(b":method", b"")
        path = _PATH.fullmatch(headers.get(b":path", b""))
        raw_token = path.group(1) if path else b""
        token = raw_token.decode("ascii", "replace")
        topic = headers.get(b"apns-topic", b"").decode("utf-8", "replace")
        auth = "certificate" if cert_topic is not None else "token"
        if method != b"POST":
            return Answer(405, "MethodNotAllowed"), token, topic, auth
        if path is None:
            return Answer(404, "BadPath"), token, topic, auth
        if not raw_token:
            return Answer(400, "MissingDeviceToken"), token, topic, auth
        if not topic:
            return Answer(400, "MissingTopic"), token, topic, auth
        denied = self._check_auth(headers, topic, cert_topic)
        if denied is not None:
            return denied, token, topic, auth
        if not _TOKEN.fullmatch(raw_token):
            return Answer(400, "BadDeviceToken"), token, topic, auth
        invalid = self._check_headers(headers)
        if invalid is not None:
            return invalid, token, topic, auth
        if not request.body:
            return Answer(400, "PayloadEmpty"), token, topic, auth
        if len(request.body) > _MAX_PAYLOAD:
            return Answer(413, "PayloadTooLarge"), token, topic, auth
        scripted = self._by_token.get(token.lower(), self._for_all)
        return scripted or Answer(200), token, topic, auth

    def _check_auth(
        self, headers: Mapping[bytes, bytes], topic: str, cert_topic: str | None
    ) -> Answer | None:
        if cert_topic is not None:
            return None if cert_topic == topic else Answer(400, "TopicDisallowed")
        authorization = headers.get(b"authorization")
        if authorization is None:
            return Answer(403, "MissingProviderToken")
        scheme, _, token = authorization.decode("ascii", "replace").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return Answer(403, "InvalidProviderToken")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self.provider_keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                return Answer(403, "InvalidProviderToken")
            claims = jwt.decode(
                token,
                key.public_key,
                algorithms=["ES256"],
                issuer=key.team_id,
                options={"require": ["iss", "iat"], "verify_iat": False},
            )
        except jwt.InvalidTokenError:
            return Answer(403, "InvalidProviderToken")
        iat = claims["iat"]
        if not isinstance(iat, int) or self.clock() - iat > _TOKEN_MAX_AGE_S:
            return Answer(403, "ExpiredProviderToken")
        previous = self._token_iat.get(kid)
        if previous is not None and iat != previous:
            if abs(iat - previous) < _TOKEN_MIN_RENEWAL_S:
                return Answer(429, "TooManyProviderTokenUpdates")
        self._token_iat[kid] = max(iat, previous or iat)
        if key.topics is not None and topic not in key.topics:
            return Answer(400, "TopicDisallowed")
        return None

    @staticmethod
    def _check_headers(headers: Mapping[bytes, bytes]) -> Answer | None:
        push_type = headers.get(b"apns-push-type")
        if push_type is not None and push_type not in _PUSH_TYPES:
            return Answer(400, "InvalidPushType")
        priority = headers.get(b"apns-priority")
        if priority is not None and priority not in (b"1", b"5", b"10"):
            return Answer(400, "BadPriority")
        apns_id = headers.get(b"apns-id")
        if apns_id is not None:
            try:
                uuid.UUID(apns_id.decode("ascii"))
            except ValueError:
                return Answer(400, "BadMessageId")
        expiration = headers.get(b"apns-expiration")
        if expiration is not None and not expiration.isdigit():
            return Answer(400, "BadExpirationDate")
        return None

    def after_answer(self) -> str | None:
        """Count one answer; return "goaway" or "drop" when a scripted trigger fires."""
        self.answered += 1
        if self._go_away_after is not None:
            self._go_away_after -= 1
            if self._go_away_after <= 0:
                self._go_away_after = None
                return "goaway"
        if self._drop_after is not None:
            self._drop_after -= 1
            if self._drop_after <= 0:
                self._drop_after = None
                return "drop"
        return None

    # TLS ---------------------------------------------------------------------------------

    def _make_tls(self, directory: Path) -> tuple[bytes, ssl.SSLContext]:
        now = datetime.now(UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake APNs test CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        chain = directory / "server.pem"
        chain.write_bytes(
            leaf.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain)
        context.set_alpn_protocols(["h2"])
        if self.client_ca_pem is not None:
            # Optional, not required: token-auth clients connect without a certificate.
            context.verify_mode = ssl.CERT_OPTIONAL
            context.load_verify_locations(cadata=self.client_ca_pem.decode("ascii"))
        return ca.public_bytes(serialization.Encoding.PEM), context


class _ServerConnection(asyncio.Protocol):
    """One client connection: h2 framing, then `FakeApnsServer.judge` for every stream."""

    def __init__(self, server: FakeApnsServer) -> None:
        self.server = server
        # strict: h2 checks every header as a conforming server must; the benchmark turns
        # it off to spend the shared CPU on the client (the APNs checks below stay).
        config = H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=server.strict
        )
        self.h2 = H2Connection(config)
        self.transport: asyncio.Transport | None = None
        self.requests: dict[int, _Request] = {}
        self.cert_topic: str | None = None
        self.number = 0
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
            transport.close()
            return
        der = ssl_object.getpeercert(binary_form=True)
        if der:
            uid = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
                NameOID.USER_ID
            )
            value = uid[0].value if uid else ""
            self.cert_topic = value if isinstance(value, str) else value.decode()
        self.server.connections_opened += 1
        self.number = self.server.connections_opened
        self.server._connections.add(self)
        self.h2.initiate_connection()
        self.h2.update_settings(
            {SettingCodes.MAX_CONCURRENT_STREAMS: self.server.max_concurrent_streams}
        )
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connections.discard(self)
        self.server.open_streams -= len(self.requests)
        self.requests.clear()
        self.closing = True

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        # h2 counts open streams with a walk over all of them for every new request, so
        # feed it a slice at a time and answer as we go, as a server reading its socket
        # in small pieces would: a big read of a busy client would otherwise cost O(n^2).
        for offset in range(0, len(data), _SLICE):
            if self.closing:
                return
            try:
                events = self.h2.receive_data(data[offset : offset + _SLICE])
            except H2Error:
                self.flush()
                self.abort()
                return
            self.handle(events)
        self.flush()

    def handle(self, events: list[Event]) -> None:
        for event in events:
            if self.closing:
                break
            if isinstance(event, RequestReceived):
                self.requests[event.stream_id] = _Request(dict(event.headers or ()))
                self.server.open_streams += 1
                self.server.peak_open_streams = max(
                    self.server.peak_open_streams, self.server.open_streams
                )
            elif isinstance(event, DataReceived):
                request = self.requests.get(event.stream_id)
                if request is not None and event.data:
                    request.body += event.data
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, StreamEnded):
                self.on_request(event.stream_id)
            elif isinstance(event, StreamReset):
                if self.requests.pop(event.stream_id, None) is not None:
                    self.server.open_streams -= 1
            elif isinstance(event, ConnectionTerminated):
                self.closing = True
                if self.transport is not None:
                    self.transport.close()

    def on_request(self, stream_id: int) -> None:
        request = self.requests.get(stream_id)
        if request is None:
            return
        answer, token, topic, auth = self.server.judge(request, self.cert_topic)
        if answer.stall:
            return
        if self.server.delay_s > 0:
            loop = asyncio.get_running_loop()
            loop.call_later(
                self.server.delay_s, self.respond_later, stream_id, answer, token, topic, auth
            )
        else:
            self.respond(stream_id, answer, token, topic, auth)

    def respond_later(
        self, stream_id: int, answer: Answer, token: str, topic: str, auth: str
    ) -> None:
        self.respond(stream_id, answer, token, topic, auth)
        self.flush()

    def respond(self, stream_id: int, answer: Answer, token: str, topic: str, auth: str) -> None:
        request = self.requests.pop(stream_id, None)
        if request is None or self.closing:
            return
        self.server.open_streams -= 1
        # APNs echoes the client's apns-id or makes one up; a counter is unique and cheaper.
        apns_id = request.headers.get(b"apns-id") or b"%08X-0000-4000-8000-%012X" % (
            self.number,
            stream_id,
        )
        headers = [(b":status", str(answer.status).encode()), (b"apns-id", apns_id)]
        if answer.retry_after is not None:
            headers.append((b"retry-after", str(answer.retry_after).encode()))
        if answer.status == 200:
            self.h2.send_headers(stream_id, headers, end_stream=True)
        else:
            body: dict[str, object] = {"reason": answer.reason}
            if answer.status == 410:
                body["timestamp"] = int(self.server.clock() * 1000)
            payload = json.dumps(body).encode()
            headers.append((b"content-type", b"application/json"))
            headers.append((b"content-length", str(len(payload)).encode()))
            self.h2.send_headers(stream_id, headers)
            self.h2.send_data(stream_id, payload, end_stream=True)
        if self.server.record:
            self.record(request, answer, token, topic, auth)
        trigger = self.server.after_answer()
        if trigger == "goaway":
            reason = json.dumps({"reason": self.server._go_away_reason}).encode()
            self.h2.close_connection(last_stream_id=stream_id, additional_data=reason)
            self.shut()
        elif trigger == "drop":
            self.shut()

    def record(self, request: _Request, answer: Answer, token: str, topic: str, auth: str) -> None:
        self.server.received.append(
            ReceivedPush(
                token=token,
                topic=topic,
                headers={
                    k.decode("ascii", "replace"): v.decode("utf-8", "replace")
                    for k, v in request.headers.items()
                },
                body=bytes(request.body),
                auth=auth,
                connection=self.number,
                status=answer.status,
            )
        )

    def shut(self) -> None:
        """Stop answering: what was not answered yet on this connection is never processed."""
        self.flush()
        self.closing = True
        self.server.open_streams -= len(self.requests)
        self.requests.clear()
        if self.transport is not None:
            self.transport.close()
