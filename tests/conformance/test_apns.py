"""ApnsPushSender against FakeApnsServer, a local HTTP/2 + TLS stand-in that answers like APNs.

One test per APNs answer of PROTOCOLS.md section 2, both ways of authenticating, and the
connection behaviour: multiplexing, bounded concurrency, GOAWAY, lost connections.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.fakes.apns import FakeApnsServer, ProviderKey
from walletsvc.apple.apns import ApnsPushSender, ProviderTokenKey
from walletsvc.apple.credentials import SigningIdentity, load_signing_identity
from walletsvc.domain.push import PushOutcome

CERTS = Path(__file__).resolve().parents[2] / "certs_example"
TEAM_ID = "DEVTEAM123"
KEY_ID = "ABC123DEFG"

DELIVERED = PushOutcome.DELIVERED
UNREGISTERED = PushOutcome.UNREGISTERED
RETRY = PushOutcome.RETRY
MISCONFIGURED = PushOutcome.MISCONFIGURED


def tokens(count: int, start: int = 0) -> list[str]:
    """Return device tokens shaped like real ones: 64 hex digits."""
    return [f"{start + index:064x}" for index in range(count)]


@pytest.fixture(scope="module")
def identity() -> SigningIdentity:
    return load_signing_identity(
        wwdr=CERTS / "wwdr-dev-ca.pem",
        certificate=CERTS / "pass-certificate.pem",
        private_key=CERTS / "pass-key.pem",
    )


@pytest.fixture(scope="module")
def topic(identity: SigningIdentity) -> str:
    return identity.pass_type_identifier


@pytest.fixture(scope="module")
def provider_key() -> ProviderTokenKey:
    return ProviderTokenKey(
        key_id=KEY_ID, team_id=TEAM_ID, private_key=ec.generate_private_key(ec.SECP256R1())
    )


class Clock:
    """A clock the test moves by hand, shared by the sender and the stand-in."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += minutes * 60


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def apns(provider_key: ProviderTokenKey, clock: Clock) -> AsyncIterator[FakeApnsServer]:
    server = FakeApnsServer(
        client_ca_pem=(CERTS / "wwdr-dev-ca.pem").read_bytes(),
        provider_keys={
            KEY_ID: ProviderKey(team_id=TEAM_ID, public_key=provider_key.private_key.public_key())
        },
        clock=clock,
    )
    async with server:
        yield server


@pytest.fixture
async def make_sender(
    apns: FakeApnsServer, identity: SigningIdentity, topic: str, clock: Clock
) -> AsyncIterator[Callable[..., ApnsPushSender]]:
    """Return a factory of senders pointed at the stand-in; keyword arguments override."""
    made: list[ApnsPushSender] = []

    def factory(**overrides: Any) -> ApnsPushSender:
        settings: dict[str, Any] = {
            "identities": {topic: identity},
            "endpoint": apns.url,
            "server_ca_pem": apns.ca_pem,
            "clock": clock,
        }
        settings.update(overrides)
        sender = ApnsPushSender(**settings)
        made.append(sender)
        return sender

    yield factory
    for sender in made:
        await sender.close()


@pytest.fixture
def sender(make_sender: Callable[..., ApnsPushSender]) -> ApnsPushSender:
    return make_sender()


def outcomes(replies: list[Any]) -> list[PushOutcome]:
    return [reply.outcome for reply in replies]


# The answers ------------------------------------------------------------------------------


async def test_accepted_push_is_delivered_as_wallet_expects(
    sender: ApnsPushSender, apns: FakeApnsServer, topic: str
) -> None:
    [token] = tokens(1)

    [reply] = await sender.send(topic, [token])

    assert (reply.push_token, reply.outcome, reply.status) == (token, DELIVERED, 200)
    [received] = apns.received
    assert received.token == token
    assert received.topic == topic
    assert received.headers[":method"] == "POST"
    assert received.headers[":path"] == f"/3/device/{token}"
    assert received.headers["apns-push-type"] == "background"
    assert received.headers["apns-priority"] == "5"
    assert received.body == b"{}"


async def test_unregistered_token_is_reported_for_removal(
    sender: ApnsPushSender, apns: FakeApnsServer, topic: str
) -> None:
    batch = tokens(3)
    apns.answer(410, "Unregistered", token=batch[1])

    replies = await sender.send(topic, batch)

    assert [reply.push_token for reply in replies] == batch
    assert outcomes(replies) == [DELIVERED, UNREGISTERED, DELIVERED]
    assert (replies[1].status, replies[1].reason) == (410, "Unregistered")


async def test_bad_device_token_is_reported_for_removal(
    sender: ApnsPushSender, apns: FakeApnsServer, topic: str
) -> None:
    [scripted] = tokens(1)
    apns.answer(400, "BadDeviceToken", token=scripted)
    too_short = "abcdef0123"  # hex, but no device token: the stand-in refuses it like APNs

    replies = await sender.send(topic, [scripted, too_short])

    assert outcomes(replies) == [UNREGISTERED, UNREGISTERED]
    assert [(r.status, r.reason) for r in replies] == [(400, "BadDeviceToken")] * 2


async def test_token_that_is_no_hex_is_dropped_without_a_request(
    sender: ApnsPushSender, apns: FakeApnsServer, topic: str
) -> None:
    replies = await sender.send(topic, ["../../3/device/x", "zz" * 32])

    assert outcomes(replies) == [UNREGISTERED, UNREGISTERED]
    assert {reply.reason for reply in replies} == {"BadDeviceToken"}
    assert apns.received == []


@pytest.mark.parametrize("status", [400, 410])
async def test_expired_token_is_reported_for_removal(
    sender: ApnsPushSender, apns: FakeApnsServer, topic: str, status: int
) -> None:
    apns.answer(status, "ExpiredToken")

    [reply] = await sender.send(topic, tokens(1))

    assert (reply.outcome, reply.status, reply.reason) == (UNREGISTERED, status, "ExpiredToken")


async def test_token_of_another_topic_is_a_configuration_error(
    sender: ApnsPushSender, apns: FakeApnsServer, topic: str
) -> None:
    apns.answer(400, "DeviceTokenNotForTopic")

    [reply] = await sender.send(topic, tokens(1))

    assert (reply.outcome, reply.status, reply.reason) == (
        MISCONFIGURED,
        400,
        "DeviceTokenNotForTopic",
    )


async def test_bad_certificate_is_a_configuration_error_logged_once_per_burst(
    sender: ApnsPushSender, apns: FakeApnsServer, topic: str
) -> None:
    apns.answer(403, "BadCertificate")
    batch = tokens(50)

    with structlog.testing.capture_logs() as logs:
        replies = await sender.send(topic, batch)

    assert set(outcomes(replies)) == {MISCONFIGURED}
    assert {(reply.status, reply.reason) for reply in replies} == {(403, "BadCertificate")}
    alerts = [entry for entry in logs if entry["event"] == "apns.push.misconfigured"]
    assert len(alerts) == 1
    assert (alerts[0]["reason"], alerts[0]["count"]) == ("BadCertificate", 50)
    assert not any(token in repr(logs) for token in batch), "a push token was logged"


async def test_invalid_provider_token_is_a_configuration_error(
    make_sender: Callable[..., ApnsPushSender], apns: FakeApnsServer, topic: str
) -> None:
    # Same key id and team, another key: APNs cannot verify the signature.
    stranger = ProviderTokenKey(
        key_id=KEY_ID, team_id=TEAM_ID, private_key=ec.generate_private_key(ec.SECP256R1())
    )
    sender = make_sender(identities={}, provider_key=stranger)

    replies = await sender.send(topic, tokens(3))

    assert set(outcomes(replies)) == {MISCONFIGURED}
    assert {(r.status, r.reason) for r in replies} == {(403, "InvalidProviderToken")}


async def test_expired_provider_token_is_retried(
    make_sender: Callable[..., ApnsPushSender],
    apns: FakeApnsServer,
    provider_key: ProviderTokenKey,
    topic: str,
    clock: Clock,
) -> None:
    sender = make_sender(identities={}, provider_key=provider_key, clock=lambda: clock() - 7200)

    [reply] = await sender.send(topic, tokens(1))

    assert (reply.outcome, reply.status, reply.reason) == (RETRY, 403, "ExpiredProviderToken")


async def test_too_many_requests_is_retried_after_the_wait_asked_for(
    sender: ApnsPushSender, apns: FakeApnsServer, topic: str
) -> None:
    apns.answer(429, "TooManyRequests", retry_after=30)

    [reply] = await sender.send(topic, tokens(1))

    assert (reply.outcome, reply.status, reply.reason) == (RETRY, 429, "TooManyRequests")
    assert reply.retry_after_s == 30


async def test_internal_server_error_is_retried(
    sender: ApnsPushSender, apns: FakeApnsServer, topic: str
) -> None:
    batch = tokens(2)
    apns.answer(500, "InternalServerError", token=batch[0])

    replies = await sender.send(topic, batch)

    assert outcomes(replies) == [RETRY, DELIVERED]
    assert (replies[0].status, replies[0].reason) == (500, "InternalServerError")


async def test_unavailable_server_is_retried_and_its_connection_replaced(
    sender: ApnsPushSender, apns: FakeApnsServer, topic: str
) -> None:
    apns.answer(503, "ServiceUnavailable")
    [reply] = await sender.send(topic, tokens(1))
    apns.reset()

    later = await sender.send(topic, tokens(5, start=1))

    assert (reply.outcome, reply.status, reply.reason) == (RETRY, 503, "ServiceUnavailable")
    assert set(outcomes(later)) == {DELIVERED}
    assert apns.connections_opened == 2
    assert {received.connection for received in apns.received[1:]} == {2}


# Lost answers -----------------------------------------------------------------------------


async def test_goaway_mid_burst_retries_unanswered_pushes_on_a_new_connection(
    make_sender: Callable[..., ApnsPushSender], apns: FakeApnsServer, topic: str
) -> None:
    sender = make_sender(max_connections=1, max_in_flight=20)
    batch = tokens(200)
    apns.go_away_after(30)

    replies = await sender.send(topic, batch)

    assert [reply.push_token for reply in replies] == batch
    delivered = {r.push_token for r in replies if r.outcome is DELIVERED}
    retried = [r for r in replies if r.outcome is RETRY]
    assert len(delivered) + len(retried) == len(batch)
    assert delivered == {p.token for p in apns.received if p.status == 200}
    assert len(delivered) > 30, "the rest of the burst went on over a new connection"
    assert retried, "streams beyond GOAWAY's last stream id got no answer"
    assert {(r.status, r.reason) for r in retried} == {(None, "Shutdown")}
    assert apns.connections_opened == 2
    assert set(outcomes(await sender.send(topic, [r.push_token for r in retried]))) == {DELIVERED}


async def test_dropped_connection_retries_unanswered_pushes(
    make_sender: Callable[..., ApnsPushSender], apns: FakeApnsServer, topic: str
) -> None:
    sender = make_sender(max_connections=1, max_in_flight=20)
    batch = tokens(100)
    apns.drop_after(10)

    replies = await sender.send(topic, batch)

    delivered = {r.push_token for r in replies if r.outcome is DELIVERED}
    retried = [r for r in replies if r.outcome is RETRY]
    assert len(delivered) + len(retried) == len(batch)
    assert delivered == {p.token for p in apns.received if p.status == 200}
    assert retried
    assert {(r.status, r.reason) for r in retried} == {(None, "ConnectionLost")}
    assert apns.connections_opened == 2


async def test_push_never_answered_times_out_as_retry(
    make_sender: Callable[..., ApnsPushSender], apns: FakeApnsServer, topic: str
) -> None:
    sender = make_sender(timeout_s=0.4)
    batch = tokens(3)
    apns.stall(token=batch[1])

    replies = await sender.send(topic, batch)

    assert outcomes(replies) == [DELIVERED, RETRY, DELIVERED]
    assert (replies[1].status, replies[1].reason) == (None, "Timeout")


async def test_unreachable_endpoint_is_retried(
    make_sender: Callable[..., ApnsPushSender], topic: str
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe is closed
    sender = make_sender(endpoint=f"https://127.0.0.1:{port}")

    replies = await sender.send(topic, tokens(5))

    assert {(r.outcome, r.status, r.reason) for r in replies} == {(RETRY, None, "ConnectionFailed")}


# Authentication ---------------------------------------------------------------------------


async def test_pass_certificate_authenticates_its_topic(
    sender: ApnsPushSender, apns: FakeApnsServer, topic: str
) -> None:
    replies = await sender.send(topic, tokens(2))

    assert set(outcomes(replies)) == {DELIVERED}
    assert {(p.auth, p.topic) for p in apns.received} == {("certificate", topic)}
    assert all("authorization" not in p.headers for p in apns.received)


async def test_provider_token_authenticates_without_a_certificate(
    make_sender: Callable[..., ApnsPushSender],
    apns: FakeApnsServer,
    provider_key: ProviderTokenKey,
    clock: Clock,
) -> None:
    sender = make_sender(identities={}, provider_key=provider_key)
    other_brand = "pass.com.example.walletsvc.other"

    replies = await sender.send(other_brand, tokens(2))

    assert set(outcomes(replies)) == {DELIVERED}
    assert {(p.auth, p.topic) for p in apns.received} == {("token", other_brand)}
    scheme, _, token = apns.received[0].headers["authorization"].partition(" ")
    assert scheme == "bearer"
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims == {"iss": TEAM_ID, "iat": int(clock())}


async def test_provider_token_is_reused_for_twenty_minutes_and_renewed_within_the_hour(
    make_sender: Callable[..., ApnsPushSender],
    apns: FakeApnsServer,
    provider_key: ProviderTokenKey,
    topic: str,
    clock: Clock,
) -> None:
    sender = make_sender(identities={}, provider_key=provider_key)
    seen = []
    start = clock.now
    for minutes in (0, 19, 20, 39, 40, 79, 80):
        clock.now = start + minutes * 60
        replies = await sender.send(topic, tokens(1, start=minutes))
        assert replies[0].outcome is DELIVERED, (minutes, replies[0])
        seen.append(apns.received[-1].headers["authorization"])

    # One token for the first 40 minutes, a second one after that, a third at 80.
    assert len(set(seen[:4])) == 1
    assert len(set(seen[4:6])) == 1
    assert len(set(seen)) == 3


async def test_certificate_from_another_ca_is_refused(
    make_sender: Callable[..., ApnsPushSender], apns: FakeApnsServer, topic: str
) -> None:
    impostor = _identity_from_another_ca(topic)
    sender = make_sender(identities={topic: impostor})

    replies = await sender.send(topic, tokens(3))

    assert {(r.outcome, r.status) for r in replies} == {(MISCONFIGURED, None)}
    assert apns.received == []


async def test_certificate_of_another_pass_type_is_rejected_when_built(
    identity: SigningIdentity, apns: FakeApnsServer
) -> None:
    with pytest.raises(ValueError, match="issued to"):
        ApnsPushSender(identities={"pass.com.example.other": identity}, endpoint=apns.url)


async def test_topic_without_credentials_is_a_configuration_error(
    sender: ApnsPushSender, apns: FakeApnsServer
) -> None:
    replies = await sender.send("pass.com.example.unknown", tokens(2))

    assert {(r.outcome, r.reason) for r in replies} == {(MISCONFIGURED, "NoCredentials")}
    assert apns.received == []


async def test_untrusted_server_certificate_is_a_configuration_error(
    make_sender: Callable[..., ApnsPushSender], topic: str
) -> None:
    sender = make_sender(server_ca_pem=None)  # the system store does not know the stand-in

    replies = await sender.send(topic, tokens(2))

    assert {(r.outcome, r.reason) for r in replies} == {(MISCONFIGURED, "TlsHandshakeFailed")}


# Connections ------------------------------------------------------------------------------


async def test_many_pushes_share_few_long_lived_connections(
    make_sender: Callable[..., ApnsPushSender], apns: FakeApnsServer, topic: str
) -> None:
    apns.delay_s = 0.01  # answers take a while, so streams pile up on each connection
    sender = make_sender(max_connections=2, streams_per_connection=100, max_in_flight=1000)

    first = await sender.send(topic, tokens(1000))
    second = await sender.send(topic, tokens(500, start=1000))

    assert set(outcomes(first + second)) == {DELIVERED}
    assert apns.connections_opened == 2
    assert apns.peak_open_streams > 100, "streams were multiplexed, not sent one by one"


async def test_pushes_in_flight_never_exceed_the_bound(
    make_sender: Callable[..., ApnsPushSender], apns: FakeApnsServer, topic: str
) -> None:
    apns.delay_s = 0.01
    sender = make_sender(max_in_flight=8)

    replies = await sender.send(topic, tokens(100))

    assert set(outcomes(replies)) == {DELIVERED}
    assert apns.peak_open_streams == 8


async def test_bound_holds_across_concurrent_bursts(
    make_sender: Callable[..., ApnsPushSender], apns: FakeApnsServer, topic: str
) -> None:
    apns.delay_s = 0.01
    sender = make_sender(max_in_flight=8)

    bursts = await asyncio.gather(*(sender.send(topic, tokens(40, start=n * 40)) for n in range(3)))

    assert all(set(outcomes(replies)) == {DELIVERED} for replies in bursts)
    assert apns.peak_open_streams == 8


async def test_server_stream_limit_is_respected(
    make_sender: Callable[..., ApnsPushSender], identity: SigningIdentity, topic: str
) -> None:
    # APNs announces how many streams it accepts per connection; more would be refused.
    async with FakeApnsServer(
        client_ca_pem=(CERTS / "wwdr-dev-ca.pem").read_bytes(),
        max_concurrent_streams=5,
        delay_s=0.01,
    ) as strict:
        sender = make_sender(endpoint=strict.url, server_ca_pem=strict.ca_pem, max_connections=1)

        replies = await sender.send(topic, tokens(60))

        assert set(outcomes(replies)) == {DELIVERED}
        assert strict.peak_open_streams == 5
        assert strict.connections_opened == 1


async def test_close_releases_connections(
    sender: ApnsPushSender, apns: FakeApnsServer, topic: str
) -> None:
    await sender.send(topic, tokens(10))

    await sender.close()

    for _ in range(50):
        if not apns.open_connections:
            break
        await asyncio.sleep(0.01)
    assert apns.open_connections == 0
    with pytest.raises(RuntimeError):
        await sender.send(topic, tokens(1))


def _identity_from_another_ca(topic: str) -> SigningIdentity:
    """Return a pass certificate for `topic` that the development WWDR never issued."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some other CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.USER_ID, topic),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"Pass Type ID: {topic}"),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, TEAM_ID),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    return SigningIdentity(
        certificate=certificate,
        private_key=key,
        wwdr=ca,
        pass_type_identifier=topic,
        team_identifier=TEAM_ID,
        not_valid_after=certificate.not_valid_after_utc,
    )
