"""Sign outgoing webhooks Standard Webhooks style (spec 1.0.0, "Signature scheme").

`webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, keyed
with the bytes of a `whsec_`+base64 secret. Kept here, small, rather than shared with
intake/standard_webhooks.py: adapter packages do not import each other. A test
checks that intake's verifier accepts what this signs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

from walletsvc.domain.errors import ConfigurationError

SECRET_PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """Return the key of a `whsec_`+base64 secret, or raise ConfigurationError."""
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    encoded += "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        raise ConfigurationError("a webhook secret is whsec_ + base64") from None
    if len(key) < 24:
        raise ConfigurationError("a webhook secret needs at least 24 bytes of key")
    return key


def signature_headers(
    keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Return webhook-id, webhook-timestamp and webhook-signature (one v1 entry per key)."""
    content = f"{message_id}.{timestamp}.".encode() + body
    signatures = " ".join(
        "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
        for key in keys
    )
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
    }
