"""FakeGoogleServer: a local stand-in for Google's OAuth2 token endpoint and Wallet REST API.

It behaves as PROTOCOLS.md section 3 and Google's references say
(https://developers.google.com/identity/protocols/oauth2/service-account#httprest,
https://developers.google.com/wallet/reference/rest):

- `POST /token` takes a JWT-bearer grant whose assertion must be RS256-signed by the
  service account's key, with `aud` = this endpoint and the Wallet scope; it answers an
  access token the API then requires as `Authorization: Bearer`.
- `/walletobjects/v1/<collection>` POST inserts (409 when the id exists);
  `<collection>/<id>` GET (404 when missing), PATCH (404 when missing; fields given
  replace the stored ones, arrays whole), PUT (replaces everything);
  `<collection>/<id>/addMessage` appends a message (counting TEXT_AND_NOTIFY ones).
- Required fields per type and at most 10 merchantLocations, else 400 with Google's
  error shape (message and a BadRequest field violation); tests can script a 400 or
  failures (503) for the next requests.
- 429 when an issuer is called faster than `rate_per_s` (a token bucket holding one
  second's worth), so tests see the client's rate limit hold.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import jwt
from aiohttp import web

SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
REQUIRED = {
    "loyaltyClass": ("id", "issuerName", "programName", "programLogo", "reviewStatus"),
    "offerClass": ("id", "issuerName", "title", "provider", "redemptionChannel", "reviewStatus"),
    "loyaltyObject": ("id", "classId", "state"),
    "offerObject": ("id", "classId", "state"),
}
STATES = {"ACTIVE", "COMPLETED", "EXPIRED", "INACTIVE"}


@dataclass(frozen=True)
class Seen:
    """One API request as the fake saw it."""

    at: float
    method: str
    collection: str
    resource_id: str | None
    status: int
    body: dict[str, Any] | None


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class FakeGoogleServer:
    public_key_pem: bytes
    rate_per_s: float = 20.0
    resources: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    requests: list[Seen] = field(default_factory=list)
    token_requests: int = 0
    notifications: Counter[str] = field(default_factory=Counter)
    throttled: int = 0
    _tokens: set[str] = field(default_factory=set)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _scripted: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_route("*", "/walletobjects/v1/{collection}", self._api)
        app.router.add_route("*", "/walletobjects/v1/{collection}/{rid}", self._api)
        app.router.add_route("*", "/walletobjects/v1/{collection}/{rid}/{verb}", self._api)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._runner.cleanup()

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def api_url(self) -> str:
        return f"{self.url}/walletobjects/v1"

    def reject_next(self, message: str, field_name: str) -> None:
        """Answer the next API request with Google's 400 for an invalid argument."""
        self._scripted.append((400, _error(400, message, field_name)))

    def fail_next(self, times: int, status: int = 503) -> None:
        """Answer the next `times` API requests with `status`."""
        self._scripted.extend((status, _error(status, "backend error")) for _ in range(times))

    def calls(self, method: str, resource_id: str) -> list[Seen]:
        return [s for s in self.requests if s.method == method and s.resource_id == resource_id]

    def per_second(self) -> Counter[int]:
        """Return how many API requests arrived in each whole second since the first."""
        if not self.requests:
            return Counter()
        start = self.requests[0].at
        return Counter(int(s.at - start) for s in self.requests)

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            claims = jwt.decode(
                str(form.get("assertion")),
                self.public_key_pem,
                algorithms=["RS256"],
                audience=self.token_url,
            )
        except jwt.PyJWTError as exc:
            return web.json_response(
                {"error": "invalid_grant", "error_description": type(exc).__name__}, status=400
            )
        if claims.get("scope") != SCOPE or "@" not in str(claims.get("iss")):
            return web.json_response({"error": "invalid_scope"}, status=400)
        token = "ya29." + secrets.token_urlsafe(24)
        self._tokens.add(token)
        return web.json_response(
            {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        )

    async def _api(self, request: web.Request) -> web.Response:
        collection = request.match_info["collection"]
        rid = request.match_info.get("rid")
        verb = request.match_info.get("verb")
        body: dict[str, Any] | None = None
        if request.can_read_body:
            try:
                body = json.loads(await request.read())
            except ValueError:
                body = None
        status, answer = self._answer(request, collection, rid, verb, body)
        self.requests.append(Seen(time.monotonic(), request.method, collection, rid, status, body))
        return web.json_response(answer, status=status)

    def _answer(
        self,
        request: web.Request,
        collection: str,
        rid: str | None,
        verb: str | None,
        body: dict[str, Any] | None,
    ) -> tuple[int, dict[str, Any]]:
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self._tokens:
            return 401, _error(401, "Request had invalid authentication credentials.")
        issuer = ((rid or (body or {}).get("id") or "").split(".", 1)[0]) or "?"
        if not self._allow(issuer):
            self.throttled += 1
            return 429, _error(429, "Quota exceeded for quota metric 'Requests per second'.")
        if self._scripted:
            return self._scripted.pop(0)
        if collection not in REQUIRED:
            return 404, _error(404, "Not Found")
        stored = self.resources[collection]
        if request.method == "POST" and rid is None:
            problem = _invalid(collection, body, self.resources)
            if problem:
                return 400, problem
            assert body is not None
            if body["id"] in stored:
                return 409, _error(409, f"Resource already exists: {body['id']}")
            stored[body["id"]] = body
            return 200, body
        if rid is None or rid not in stored:
            return 404, _error(404, f"Resource not found: {rid}")
        if request.method == "GET" and verb is None:
            return 200, stored[rid]
        if request.method == "POST" and verb == "addMessage":
            message = (body or {}).get("message") or {}
            stored[rid].setdefault("messages", []).append(message)
            if message.get("messageType") == "TEXT_AND_NOTIFY":
                self.notifications[rid] += 1
            return 200, {"resource": stored[rid]}
        if request.method == "PATCH":
            merged = _merge(stored[rid], body or {})
            problem = _invalid(collection, merged, self.resources)
            if problem:
                return 400, problem
            stored[rid] = merged
            return 200, merged
        if request.method == "PUT":
            problem = _invalid(collection, body, self.resources)
            if problem:
                return 400, problem
            stored[rid] = dict(body or {})
            return 200, stored[rid]
        return 405, _error(405, "Method not allowed")

    def _allow(self, issuer: str) -> bool:
        now = time.monotonic()
        bucket = self._buckets.setdefault(issuer, _Bucket(self.rate_per_s, now))
        bucket.tokens = min(
            self.rate_per_s, bucket.tokens + (now - bucket.updated) * self.rate_per_s
        )
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True


def _merge(stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    # PATCH: a field given replaces the stored one; arrays are replaced whole, never merged.
    merged = dict(stored)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _invalid(
    collection: str, body: dict[str, Any] | None, resources: dict[str, dict[str, dict[str, Any]]]
) -> dict[str, Any] | None:
    if not isinstance(body, dict):
        return _error(400, "Invalid JSON payload received.")
    for name in REQUIRED[collection]:
        if name not in body:
            return _error(400, f"Missing required field: {name}", name)
    if collection.endswith("Object"):
        classes = resources[collection.replace("Object", "Class")]
        if body["classId"] not in classes:
            return _error(400, f"Class {body['classId']} does not exist", "classId")
        if body["state"] not in STATES:
            return _error(400, "Invalid state", "state")
        if len(body.get("merchantLocations") or []) > 10:
            return _error(400, "At most 10 merchant locations", "merchantLocations")
    return None


def _error(status: int, message: str, field_name: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message}
    if field_name:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field_name, "description": message}],
            }
        ]
    return {"error": error}
