"""Standard Webhooks signatures: verify what terminals send us, sign what we send.

Follows the Standard Webhooks specification 1.0.0
(https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md,
"Verifying webhook authenticity" and "Webhook headers"):

- headers `webhook-id`, `webhook-timestamp` (integer Unix seconds) and
  `webhook-signature`, a space-delimited list of `<version>,<base64>` signatures so
  that a sender can sign with an old and a new key during rotation;
- symmetric signatures are version `v1`: HMAC-SHA256 over `{id}.{timestamp}.{body}`
  with the raw body bytes; other versions (`v1a`, asymmetric) are skipped, not failed;
- secrets are shown as `whsec_` + base64 of 24 to 64 random bytes; the key is the
  decoded bytes;
- compare in constant time, and refuse a timestamp outside a tolerance of now, both
  ways (the reference libraries use 5 minutes);
- the id and timestamp must not contain `.`, which would let one signed content be
  split into a different id, timestamp and body. The timestamp is digits only; we
  refuse ids with a dot too.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets as random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from walletsvc.domain.errors import BadSignature, ConfigurationError
from walletsvc.intake.payload import header
from walletsvc.intake.signature import check_fresh, decode_base64, hmac_sha256, signed_by_any

SECRET_PREFIX = "whsec_"
TOLERANCE = timedelta(minutes=5)
MIN_KEY_BYTES = 24  # the spec: "at least 24 bytes (192 bits, 512 maximum)"
MAX_KEY_BYTES = 64
MESSAGE_ID = re.compile(r"[\x21-\x2d\x2f-\x7e]{1,256}")  # printable ASCII except "."
SIGNED_TIMESTAMP = re.compile(r"[0-9]{1,10}")  # ASCII digits, no sign or dot; up to year 2286


@dataclass(frozen=True)
class VerifiedDelivery:
    """The metadata of a delivery whose signature and timestamp were accepted."""

    id: str
    timestamp: datetime


def new_secret(size: int = 32) -> str:
    """Return a fresh secret as handed out: `whsec_` + base64 of random bytes."""
    if not MIN_KEY_BYTES <= size <= MAX_KEY_BYTES:
        raise ValueError(f"a signing key has {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes")
    return encode_secret(random.token_bytes(size))


def encode_secret(key: bytes) -> str:
    """Return a key as handed out: `whsec_` + base64."""
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def decode_secret(secret: str) -> bytes:
    """Return the key of a `whsec_` secret (the prefix may be left off)."""
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    # Some senders drop base64 padding; put it back rather than refuse their secret.
    encoded += "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        raise ConfigurationError("a Standard Webhooks secret is whsec_ + base64") from None
    if not key:
        raise ConfigurationError("a Standard Webhooks secret must not be empty")
    return key


def signed_content(message_id: str, timestamp: str, body: bytes) -> bytes:
    """Return the bytes a signature covers: `{id}.{timestamp}.{body}`."""
    return f"{message_id}.{timestamp}.".encode() + body


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """Return one `v1,<base64>` signature."""
    if not MESSAGE_ID.fullmatch(message_id):
        raise ValueError("a webhook id is 1-256 printable ASCII characters without '.'")
    digest = hmac_sha256(key, signed_content(message_id, str(timestamp), body))
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(
    keys: Sequence[bytes], message_id: str, sent_at: datetime, body: bytes
) -> dict[str, str]:
    """Return the three headers of a delivery, signed with every key (two while rotating)."""
    if not keys:
        raise ValueError("sign with at least one key")
    timestamp = int(sent_at.timestamp())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(key, message_id, timestamp, body) for key in keys),
    }


def _v1_digests(signature_header: str) -> list[bytes]:
    digests = []
    for entry in signature_header.split()[:16]:  # a rotation needs two; more is noise
        version, comma, encoded = entry.partition(",")
        if version != "v1" or not comma:
            continue
        digest = decode_base64(encoded)
        if digest is not None:
            digests.append(digest)
    return digests


def verify(
    headers: Mapping[str, str],
    body: bytes,
    keys: Sequence[bytes],
    now: datetime,
    tolerance: timedelta = TOLERANCE,
) -> VerifiedDelivery:
    """Return the id and time of a delivery signed with any key and fresh at `now`, else raise.

    BadSignature when a header is missing or unreadable or no signature matches;
    StaleTimestamp when it is signed but more than `tolerance` away from now.
    """
    message_id = header(headers, "webhook-id")
    sent = header(headers, "webhook-timestamp")
    signatures = header(headers, "webhook-signature")
    if not message_id or not sent or not signatures:
        raise BadSignature(
            "webhook-id, webhook-timestamp and webhook-signature are all required",
            field="webhook-signature",
        )
    message_id, sent = message_id.strip(), sent.strip()
    if not MESSAGE_ID.fullmatch(message_id):
        raise BadSignature(
            "webhook-id must be 1-256 printable ASCII characters without '.'", field="webhook-id"
        )
    if not SIGNED_TIMESTAMP.fullmatch(sent):
        raise BadSignature("webhook-timestamp must be Unix seconds", field="webhook-timestamp")
    content = signed_content(message_id, sent, body)
    if not any(signed_by_any(digest, content, keys) for digest in _v1_digests(signatures)):
        raise BadSignature("no webhook-signature verifies", field="webhook-signature")
    sent_at = datetime.fromtimestamp(int(sent), UTC)
    check_fresh(sent_at, now, max_age=tolerance, max_ahead=tolerance)
    return VerifiedDelivery(message_id, sent_at)
