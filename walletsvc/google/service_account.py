"""The issuer's service account: its key file, save-link JWTs and OAuth2 access tokens.

Save links follow https://developers.google.com/wallet/reference/rest/v1/jwt and the
"skinny JWT" advice of https://developers.google.com/wallet/generic/use-cases/jwt: the
object is inserted over REST first, and the JWT names only its id and class id.

Access tokens follow the service-account flow of
https://developers.google.com/identity/protocols/oauth2/service-account#httprest:
a JWT assertion signed with the key, posted to the key file's `token_uri`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from google.auth import crypt
from google.auth import jwt as google_jwt

from walletsvc.domain.errors import ConfigurationError, WalletUnavailable
from walletsvc.google.http_session import LazySession

SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
SAVE_URL = "https://pay.google.com/gp/v/save/"
MAX_SAVE_URL = 1800  # longer links are cut by some browsers and chat apps
_TOKEN_LIFETIME_S = 3600
_REFRESH_MARGIN_S = 300  # a token this close to expiry is renewed before use


@dataclass(frozen=True)
class ServiceAccount:
    """The parts of a service-account key file walletsvc uses; the key only as a signer."""

    client_email: str
    token_uri: str
    signer: crypt.Signer

    @classmethod
    def from_file(cls, path: Path) -> ServiceAccount:
        """Load a key file as Google's console downloads it; refuse one that cannot work."""
        try:
            info = json.loads(path.read_text())
            signer = crypt.RSASigner.from_service_account_info(info)  # type: ignore[no-untyped-call]
            return cls(str(info["client_email"]), str(info["token_uri"]), signer)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(
                f"the Google service-account key file {path} is unreadable or incomplete "
                f"({type(exc).__name__}); download a JSON key for the issuer's service account "
                "and set WALLETSVC_GOOGLE__SERVICE_ACCOUNT_FILE"
            ) from exc


def save_url(
    account: ServiceAccount, objects_key: str, object_id: str, class_id: str, origins: list[str]
) -> str:
    """Return the Add to Google Wallet link of an object that exists already (skinny JWT).

    One RS256 signature is about a millisecond of CPU, so it runs inline.
    """
    claims = {
        "iss": account.client_email,
        "aud": "google",
        "typ": "savetowallet",
        "iat": int(time.time()),
        "origins": origins,
        "payload": {objects_key: [{"id": object_id, "classId": class_id}]},
    }
    token = _sign(account.signer, claims)
    url = SAVE_URL + token
    if len(url) > MAX_SAVE_URL:  # pragma: no cover - ids are bounded far below this
        raise ConfigurationError(f"a save link is {len(url)} characters; keep ids shorter")
    return url


class AccessTokens:
    """OAuth2 access tokens for the Wallet API, renewed before they expire.

    google-auth's own refresh is synchronous (it would block the event loop on the
    network), so only its signer is used: the assertion is signed inline (about a
    millisecond, once an hour) and posted with aiohttp.
    """

    def __init__(self, account: ServiceAccount, session: LazySession) -> None:
        self._account = account
        self._session = session
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        """Return a valid access token, fetching one when needed."""
        if self._token is not None and time.monotonic() < self._expires_at:
            return self._token
        async with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._token, lifetime = await self._fetch()
                self._expires_at = time.monotonic() + max(0.0, lifetime - _REFRESH_MARGIN_S)
            return self._token

    def forget(self) -> None:
        """Drop the cached token (Google answered 401 with it)."""
        self._token = None

    async def _fetch(self) -> tuple[str, float]:
        now = int(time.time())
        assertion = _sign(
            self._account.signer,
            {
                "iss": self._account.client_email,
                "scope": SCOPE,
                "aud": self._account.token_uri,
                "iat": now,
                "exp": now + _TOKEN_LIFETIME_S,
            },
        )
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
        try:
            async with self._session.get().post(self._account.token_uri, data=form) as response:
                answer: Any = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise WalletUnavailable(f"the token endpoint failed: {type(exc).__name__}") from exc
        if status != 200 or not isinstance(answer, dict) or "access_token" not in answer:
            error = answer.get("error") if isinstance(answer, dict) else None
            if status in (400, 401, 403):
                raise ConfigurationError(
                    f"Google refused the service account's token request ({status} {error}); "
                    "check the key file and that the account may use the Wallet API"
                )
            raise WalletUnavailable(f"the token endpoint answered {status}")
        return str(answer["access_token"]), float(answer.get("expires_in", _TOKEN_LIFETIME_S))


def _sign(signer: crypt.Signer, claims: dict[str, Any]) -> str:
    """Return an RS256 JWT of `claims` signed with google-auth's signer of the key."""
    token: bytes = google_jwt.encode(signer, claims)  # type: ignore[no-untyped-call]
    return token.decode()
