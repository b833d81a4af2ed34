"""HMAC checks shared by the inbound adapters: constant time, any of several keys.

Part of the adapter contract. Two keys are live while a terminal's secret rotates,
so a delivery passes when any key made its signature; every key is tried, so the
time taken does not tell which one matched.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta

from walletsvc.domain.errors import BadSignature, StaleTimestamp

# Clocks drift: a timestamp this far ahead of ours is still believed.
CLOCK_SKEW = timedelta(minutes=5)


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """Return the HMAC-SHA256 digest of a message."""
    return hmac.new(key, message, hashlib.sha256).digest()


def decode_base64(value: str) -> bytes | None:
    """Return the bytes of standard base64 text, or None when it is not that."""
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (ValueError, binascii.Error):  # non-ASCII text is a ValueError too
        return None


def signed_by_any(digest: bytes, message: bytes, secrets: Sequence[bytes]) -> bool:
    """Tell whether any key's HMAC-SHA256 of the message equals `digest`."""
    matched = False
    for key in secrets:
        matched |= hmac.compare_digest(hmac_sha256(key, message), digest)
    return matched


def check_base64_hmac(
    presented: str | None, message: bytes, secrets: Sequence[bytes], *, header: str
) -> None:
    """Accept a base64 HMAC-SHA256 header made with any of the keys, else raise BadSignature."""
    if presented is None or not presented.strip():
        raise BadSignature(f"the {header} header is missing", field=header)
    digest = decode_base64(presented)
    if digest is None or not signed_by_any(digest, message, secrets):
        raise BadSignature(f"the {header} signature does not verify", field=header)


def check_fresh(
    sent_at: datetime,
    now: datetime,
    *,
    max_age: timedelta,
    max_ahead: timedelta = CLOCK_SKEW,
) -> None:
    """Refuse a delivery sent more than `max_age` ago or more than `max_ahead` from now."""
    if sent_at < now - max_age:
        raise StaleTimestamp("the delivery is too old: maybe a replay", field="timestamp")
    if sent_at > now + max_ahead:
        raise StaleTimestamp("the delivery is dated in the future", field="timestamp")
