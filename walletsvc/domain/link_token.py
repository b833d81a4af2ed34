"""Signed, expiring links to a customer's pass (the add page and the .pkpass download).

A token is `<serial>.<expiry, unix seconds>.<mac>`, MACed with the service's link
key (any configured one opens it), so a link cannot be made for another serial or
kept alive past its expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from walletsvc.domain.errors import NotFound
from walletsvc.domain.wallet_pass import is_serial

EXPIRY = re.compile(r"[0-9]{1,12}")


class ExpiredLink(NotFound):
    """The link was real but has expired."""

    reason = "link_expired"


def _mac(key: bytes, serial: str, expires: int) -> str:
    digest = hmac.new(key, f"walletsvc-link:{serial}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def make_link_token(key: bytes, serial: str, expires_at: datetime) -> str:
    """Return a token that opens `serial` until `expires_at`."""
    expires = int(expires_at.timestamp())
    return f"{serial}.{expires}.{_mac(key, serial, expires)}"


def open_link_token(keys: Sequence[bytes], token: str, now: datetime) -> str:
    """Return the serial a token opens; unknown, forged and expired tokens are refused.

    Any of `keys` may have made the token, so links handed out before a key
    rotation keep working until they expire.
    """
    parts = token.split(".")
    # ASCII digits only: str.isdigit() would let "²" through to int() and crash.
    if len(parts) != 3 or not is_serial(parts[0]) or not EXPIRY.fullmatch(parts[1]):
        raise NotFound("this link is not valid", reason="link_invalid")
    serial, expires_text, mac = parts
    expires = int(expires_text)
    if not any(hmac.compare_digest(_mac(key, serial, expires), mac) for key in keys):
        raise NotFound("this link is not valid", reason="link_invalid")
    if datetime.fromtimestamp(expires, UTC) < now:
        raise ExpiredLink("this link has expired; ask for a new one", reason="link_expired")
    return serial
