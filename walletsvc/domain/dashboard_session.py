"""The operator dashboard's session: a signed, expiring cookie naming an API key by its id.

A session is `<key id>.<expiry, unix seconds>.<mac>`, like a link token but MACed with
its own key and purpose, so neither can stand in for the other. The MAC also covers a
binding the cookie does not carry (the stored key's secret hash): a key deleted and
made again, or a rotated bootstrap key, opens no old session. The key itself is never
in the cookie; every request looks the key up again (services/dashboard.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
EXPIRY = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class DashboardSession:
    """Who signed in (an API key id) and until when."""

    key_id: str
    expires_at: datetime


def _mac(key: bytes, key_id: str, expires: int, binding: str) -> str:
    message = f"walletsvc-dashboard:{key_id}:{expires}:{binding}".encode()
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()[:24]).decode()


def make_session_token(key: bytes, key_id: str, expires_at: datetime, binding: str) -> str:
    """Return the cookie value of a session of `key_id` until `expires_at`."""
    if not KEY_ID.fullmatch(key_id):
        raise ValueError("not an API key id")
    expires = int(expires_at.timestamp())
    return f"{key_id}.{expires}.{_mac(key, key_id, expires, binding)}"


def read_session_token(token: str, now: datetime) -> DashboardSession | None:
    """Return the session a cookie claims, unverified; None when malformed or expired."""
    parts = token.split(".")
    # ASCII digits only: str.isdigit() would let "²" through to int().
    if len(parts) != 3 or not KEY_ID.fullmatch(parts[0]) or not EXPIRY.fullmatch(parts[1]):
        return None
    expires_at = datetime.fromtimestamp(int(parts[1]), UTC)
    if expires_at <= now:
        return None
    return DashboardSession(parts[0], expires_at)


def session_is_genuine(keys: Sequence[bytes], token: str, binding: str) -> bool:
    """Tell whether one of `keys` signed `token` for this binding (constant-time)."""
    key_id, _, rest = token.partition(".")
    expires_text, _, mac = rest.partition(".")
    if not EXPIRY.fullmatch(expires_text):
        return False
    expires = int(expires_text)
    return any(
        hmac.compare_digest(_mac(key, key_id, expires, binding).encode(), mac.encode())
        for key in keys
    )
