"""A small client of the Google Wallet REST API (walletobjects v1).

It follows https://developers.google.com/wallet/reference/rest: insert is POST on the
collection, get is GET and patch is PATCH on `<collection>/<id>`; inserting an id that
exists answers 409 and patching a missing one 404. Every request first takes a token
from the shared per-issuer rate limit; 429 and 5xx are retried with exponential
back-off and full jitter (honouring Retry-After), then handed back to the queue.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import structlog
from prometheus_client import Counter

from walletsvc.domain.errors import ConfigurationError, WalletRejected, WalletUnavailable
from walletsvc.google.http_session import LazySession
from walletsvc.google.service_account import AccessTokens

log = structlog.get_logger("walletsvc.google")

# Google's answers per request (status 0: no answer), retries included.
GOOGLE_REPLIES = Counter(
    "walletsvc_google_replies", "Answers from the Google Wallet API", ["method", "status"]
)


class Throttle(Protocol):
    """Waits until a request to an issuer's API is allowed."""

    async def acquire(self, key: str) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is retried before the queue takes over."""

    attempts: int = 4
    first_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    timeout_s: float = 15.0


@dataclass(frozen=True)
class Reply:
    status: int
    body: Mapping[str, Any]


class WalletObjectsClient:
    """Insert, get and patch classes and objects; add messages."""

    def __init__(
        self,
        base_url: str,
        tokens: AccessTokens,
        session: LazySession,
        throttle: Throttle,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._tokens = tokens
        self._session = session
        self._throttle = throttle
        self._retry = retry or RetryPolicy()

    async def insert(self, issuer_id: str, collection: str, body: Mapping[str, Any]) -> Reply:
        return await self.call(issuer_id, "POST", collection, body)

    async def get(self, issuer_id: str, collection: str, resource_id: str) -> Reply:
        return await self.call(issuer_id, "GET", f"{collection}/{resource_id}")

    async def patch(
        self, issuer_id: str, collection: str, resource_id: str, body: Mapping[str, Any]
    ) -> Reply:
        return await self.call(issuer_id, "PATCH", f"{collection}/{resource_id}", body)

    async def add_message(
        self, issuer_id: str, collection: str, resource_id: str, message: Mapping[str, Any]
    ) -> Reply:
        return await self.call(issuer_id, "POST", f"{collection}/{resource_id}/addMessage", message)

    async def call(
        self, issuer_id: str, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> Reply:
        """Send one request, retrying 429, 5xx and lost connections; 404 and 409 are returned.

        Raises WalletRejected for a 400 (with Google's message and field),
        ConfigurationError for 401/403 that a fresh token does not cure, and
        WalletUnavailable when the retries are used up.
        """
        url = f"{self._base}/{path}"
        retry_after: float | None = None
        renewed = False
        attempt = 0
        while True:
            attempt += 1
            await self._throttle.acquire(issuer_id)
            token = await self._tokens.get()
            try:
                async with self._session.get().request(
                    method,
                    url,
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=aiohttp.ClientTimeout(total=self._retry.timeout_s),
                ) as response:
                    status = response.status
                    answer = await _json(response)
                    retry_after = _retry_after(response.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, answer, retry_after = 0, {}, None
                log.warning("google.request.failed", path=path, error=type(exc).__name__)
            GOOGLE_REPLIES.labels(method=method, status=str(status)).inc()
            if status == 401 and not renewed:
                self._tokens.forget()
                renewed = True
                attempt -= 1
                continue
            if status in (401, 403):
                raise ConfigurationError(
                    f"Google refused the service account for issuer {issuer_id} ({status}): "
                    f"{_message(answer)}; add the service account as a user of the issuer"
                )
            if status == 400:
                raise WalletRejected(_message(answer), field=_field(answer))
            if status == 0 or status == 429 or status >= 500:
                if attempt >= self._retry.attempts:
                    raise WalletUnavailable(
                        f"Google answered {status or 'nothing'} {attempt} times",
                        retry_after_s=retry_after,
                    )
                await asyncio.sleep(self._backoff(attempt, retry_after))
                continue
            return Reply(status, answer)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self._retry.max_backoff_s)
        ceiling = min(self._retry.max_backoff_s, self._retry.first_backoff_s * 2 ** (attempt - 1))
        # Full jitter: many workers backing off at once do not come back together.
        return random.uniform(0, ceiling)  # noqa: S311  (not a secret)


async def _json(response: aiohttp.ClientResponse) -> Mapping[str, Any]:
    try:
        answer = await response.json(content_type=None)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _message(answer: Mapping[str, Any]) -> str:
    error = answer.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:400]
    return "no message"


def _field(answer: Mapping[str, Any]) -> str | None:
    """Return the field Google blames: a BadRequest field violation, else an error location."""
    error = answer.get("error")
    if not isinstance(error, dict):
        return None
    for detail in error.get("details") or []:
        if isinstance(detail, dict):
            for violation in detail.get("fieldViolations") or []:
                if isinstance(violation, dict) and isinstance(violation.get("field"), str):
                    return str(violation["field"])[:200]
    for item in error.get("errors") or []:
        if isinstance(item, dict) and isinstance(item.get("location"), str):
            return str(item["location"])[:200]
    return None
