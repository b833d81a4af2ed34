"""Standard Webhooks, rule by rule of the specification (spec/standard-webhooks.md, 1.0.0)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from walletsvc.domain.errors import (
    BadSignature,
    ConfigurationError,
    DomainError,
    StaleTimestamp,
    Unauthorized,
)
from walletsvc.intake import standard_webhooks
from walletsvc.intake.standard_webhooks import (
    TOLERANCE,
    decode_secret,
    encode_secret,
    new_secret,
    sign,
    signature_headers,
    verify,
)

# The signing example the Standard Webhooks reference libraries test against.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

KEY = b"k" * 32
OLD_KEY = b"o" * 32
OTHER_KEY = b"x" * 32
SENT_AT = datetime(2025, 3, 1, 10, 15, tzinfo=UTC)
BODY = b'{"type":"scan","timestamp":"2025-03-01T10:15:00Z","data":{"barcode":"W1.k1.abc.DEF"}}'


def delivery(*keys: bytes, sent_at: datetime = SENT_AT, body: bytes = BODY) -> dict[str, str]:
    return signature_headers(keys or (KEY,), "msg_0001", sent_at, body)


def by_hand(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_sign_matches_the_reference_test_vector() -> None:
    key = decode_secret(VECTOR_SECRET)
    assert sign(key, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_the_reference_test_vector_verifies_at_its_time() -> None:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    now = datetime.fromtimestamp(VECTOR_TIMESTAMP, UTC)
    verified = verify(headers, VECTOR_BODY, [decode_secret(VECTOR_SECRET)], now)
    assert verified.id == VECTOR_ID
    assert verified.timestamp == now


def test_signed_content_is_id_dot_timestamp_dot_raw_body() -> None:
    headers = delivery()
    assert headers["webhook-timestamp"] == str(int(SENT_AT.timestamp()))
    assert headers["webhook-signature"] == by_hand(
        KEY, "msg_0001", headers["webhook-timestamp"], BODY
    )


def test_a_valid_delivery_verifies() -> None:
    verified = verify(delivery(), BODY, [KEY], SENT_AT + timedelta(seconds=2))
    assert verified.id == "msg_0001"


def test_header_names_are_matched_without_regard_to_case() -> None:
    headers = {name.title(): value for name, value in delivery().items()}
    verify(headers, BODY, [KEY], SENT_AT)


def test_secret_is_whsec_prefix_and_base64_of_the_key() -> None:
    secret = encode_secret(KEY)
    assert secret.startswith("whsec_")
    assert base64.b64decode(secret.removeprefix("whsec_")) == KEY
    assert decode_secret(secret) == KEY


def test_secret_without_prefix_or_padding_still_decodes() -> None:
    secret = encode_secret(b"\x01" * 25)  # 25 bytes: base64 with padding
    assert secret.endswith("=")
    assert decode_secret(secret.removeprefix("whsec_").rstrip("=")) == b"\x01" * 25


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!", "", "whsec_=="])
def test_unusable_secret_is_a_configuration_error(secret: str) -> None:
    with pytest.raises(ConfigurationError):
        decode_secret(secret)


def test_new_secrets_are_random_and_within_the_specs_sizes() -> None:
    first, second = new_secret(), new_secret()
    assert first != second
    assert len(decode_secret(first)) == 32
    assert len(decode_secret(new_secret(24))) == 24
    with pytest.raises(ValueError):
        new_secret(16)
    with pytest.raises(ValueError):
        new_secret(65)


def test_the_secret_text_itself_is_not_the_key() -> None:
    # A receiver keyed with the whsec_ text instead of the decoded bytes must fail.
    secret = encode_secret(KEY)
    with pytest.raises(BadSignature):
        verify(delivery(), BODY, [secret.encode()], SENT_AT)


def test_several_signatures_pass_when_any_one_verifies() -> None:
    headers = delivery(OTHER_KEY, KEY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    verify(headers, BODY, [KEY], SENT_AT)


def test_other_signature_versions_are_skipped_not_failed() -> None:
    headers = delivery()
    valid = headers["webhook-signature"]
    headers["webhook-signature"] = f"v1a,{'A' * 88} v2,{valid[3:]} garbage {valid}"
    verify(headers, BODY, [KEY], SENT_AT)


def test_a_v1_signature_under_another_version_does_not_count() -> None:
    headers = delivery()
    headers["webhook-signature"] = "v2," + headers["webhook-signature"].removeprefix("v1,")
    with pytest.raises(BadSignature):
        verify(headers, BODY, [KEY], SENT_AT)


def test_two_receiver_keys_during_rotation_accept_either_sender_key() -> None:
    verify(delivery(OLD_KEY), BODY, [KEY, OLD_KEY], SENT_AT)
    verify(delivery(KEY), BODY, [KEY, OLD_KEY], SENT_AT)


def test_wrong_key_is_refused() -> None:
    with pytest.raises(BadSignature) as refused:
        verify(delivery(), BODY, [OTHER_KEY], SENT_AT)
    assert refused.value.reason == "bad_signature"
    assert isinstance(refused.value, Unauthorized)


def test_no_keys_at_all_verifies_nothing() -> None:
    with pytest.raises(BadSignature):
        verify(delivery(), BODY, [], SENT_AT)


def test_tampered_body_is_refused() -> None:
    with pytest.raises(BadSignature):
        verify(delivery(), BODY.replace(b"abc", b"abd"), [KEY], SENT_AT)


def test_tampered_id_or_timestamp_is_refused() -> None:
    headers = delivery()
    with pytest.raises(BadSignature):
        verify({**headers, "webhook-id": "msg_0002"}, BODY, [KEY], SENT_AT)
    moved = str(int(headers["webhook-timestamp"]) + 1)
    with pytest.raises(BadSignature):
        verify({**headers, "webhook-timestamp": moved}, BODY, [KEY], SENT_AT)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_each_header_is_required(missing: str) -> None:
    headers = delivery()
    del headers[missing]
    with pytest.raises(BadSignature):
        verify(headers, BODY, [KEY], SENT_AT)


@pytest.mark.parametrize("timestamp", ["hello", "1740824100.5", "-1740824100", "1e9", " "])
def test_timestamp_must_be_integer_unix_seconds(timestamp: str) -> None:
    headers = {**delivery(), "webhook-timestamp": timestamp}
    with pytest.raises(BadSignature):
        verify(headers, BODY, [KEY], SENT_AT)


def test_an_id_with_a_dot_is_refused_as_the_spec_advises() -> None:
    # "msg.1" + "." + ts would let one signed content be split another way.
    timestamp = str(int(SENT_AT.timestamp()))
    headers = {
        "webhook-id": "msg.1",
        "webhook-timestamp": timestamp,
        "webhook-signature": by_hand(KEY, "msg.1", timestamp, BODY),
    }
    with pytest.raises(BadSignature):
        verify(headers, BODY, [KEY], SENT_AT)
    with pytest.raises(ValueError):
        sign(KEY, "msg.1", int(timestamp), BODY)


def test_exactly_five_minutes_either_way_is_accepted() -> None:
    assert timedelta(minutes=5) == TOLERANCE
    verify(delivery(), BODY, [KEY], SENT_AT + TOLERANCE)
    verify(delivery(), BODY, [KEY], SENT_AT - TOLERANCE)


def test_older_than_five_minutes_is_stale() -> None:
    with pytest.raises(StaleTimestamp) as refused:
        verify(delivery(), BODY, [KEY], SENT_AT + TOLERANCE + timedelta(seconds=1))
    assert refused.value.reason == "stale_timestamp"
    assert isinstance(refused.value, Unauthorized)


def test_more_than_five_minutes_in_the_future_is_stale() -> None:
    with pytest.raises(StaleTimestamp):
        verify(delivery(), BODY, [KEY], SENT_AT - TOLERANCE - timedelta(seconds=1))


def test_tolerance_is_configurable() -> None:
    later = SENT_AT + timedelta(minutes=2)
    with pytest.raises(StaleTimestamp):
        verify(delivery(), BODY, [KEY], later, tolerance=timedelta(minutes=1))


def test_a_forged_signature_is_refused_before_its_timestamp_is_judged() -> None:
    # An unauthenticated caller learns nothing about our clock.
    with pytest.raises(BadSignature):
        verify(delivery(OTHER_KEY), BODY, [KEY], SENT_AT + timedelta(days=1))


def test_signing_needs_a_key() -> None:
    with pytest.raises(ValueError):
        standard_webhooks.signature_headers([], "msg_1", SENT_AT, BODY)


header_values = st.text(max_size=120)


@given(
    body=st.binary(max_size=512),
    message_id=st.one_of(st.none(), header_values),
    timestamp=st.one_of(st.none(), header_values, st.integers(0, 2**40).map(str)),
    signature=st.one_of(
        st.none(),
        header_values,
        st.binary(max_size=64).map(lambda raw: "v1," + base64.b64encode(raw).decode()),
    ),
)
def test_arbitrary_input_raises_only_signature_errors(
    body: bytes, message_id: str | None, timestamp: str | None, signature: str | None
) -> None:
    headers = {
        name: value
        for name, value in (
            ("webhook-id", message_id),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", signature),
        )
        if value is not None
    }
    with pytest.raises(DomainError) as refused:
        verify(headers, body, [KEY], SENT_AT)
    assert isinstance(refused.value, BadSignature | StaleTimestamp)
