"""APNs token auth: the team's .p8 key, and one ES256 provider token reused until it ages.

https://developer.apple.com/documentation/usernotifications/establishing-a-token-based-connection-to-apns
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# Apple: renew the provider token no more than once every 20 minutes, and at least hourly.
TOKEN_MIN_AGE_S = 20 * 60
TOKEN_MAX_AGE_S = 60 * 60


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


class ProviderToken:
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
        if self._clock() - self._issued_at >= TOKEN_MIN_AGE_S:
            self._header = b""
