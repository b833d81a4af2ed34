"""Limits at the door: rate limits per client address, body sizes per route, slow bodies.

The middleware runs before any handler: it refuses a client address over its route's
rate (unauthenticated endpoints), then reads the body itself, bounded by the route's
size and by a deadline, before the handler takes a database connection. Limits per
API key and per terminal are checked once the caller is known (`admit`), so forged
requests cannot spend a real terminal's or key's allowance.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

import structlog
from aiohttp import web
from prometheus_client import Counter

from walletsvc.config import LimitsSettings, Settings
from walletsvc.web.keys import CONTAINER
from walletsvc.web.middleware import Handler, request_id_of
from walletsvc.web.problem import problem
from walletsvc.web.serving import GuardedHandler

log = structlog.get_logger("walletsvc.limits")

SLOW_CLIENTS = Counter(
    "walletsvc_slow_clients", "Connections cut off for sending too slowly", ["phase"]
)

REGISTRATION = (
    "/apple/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}/{serialNumber}"
)


@dataclass(frozen=True)
class RoutePolicy:
    """What limits one route: the per-address rate scope, and the body size setting."""

    scope: str | None = None
    body: str | None = None  # the LimitsSettings field with the size in bytes


# (method, route template) -> policy. Routes not listed: no per-address rate, and the
# global `max_body_bytes`.
POLICIES: dict[tuple[str, str], RoutePolicy] = {
    ("POST", "/api/v1/scans"): RoutePolicy(body="scan_body_bytes"),
    ("POST", "/api/v1/geofence-events"): RoutePolicy(body="geofence_body_bytes"),
    ("POST", "/webhooks/geofence/radar"): RoutePolicy(body="radar_body_bytes"),
    ("POST", "/webhooks/pos/{adapter}/{terminal_id}"): RoutePolicy(body="pos_webhook_body_bytes"),
    ("POST", "/apple/v1/log"): RoutePolicy("apple_log", "apple_log_body_bytes"),
    ("POST", REGISTRATION): RoutePolicy("apple_device", "apple_device_body_bytes"),
    ("DELETE", REGISTRATION): RoutePolicy("apple_device", "apple_device_body_bytes"),
    ("POST", "/google/callback"): RoutePolicy("google_callback", "google_callback_body_bytes"),
    ("GET", "/add/{token}"): RoutePolicy("add_page"),
    ("GET", "/add/{token}/pass.pkpass"): RoutePolicy("add_page"),
    ("POST", "/dashboard/login"): RoutePolicy("dashboard_login", "dashboard_login_body_bytes"),
}
NO_POLICY = RoutePolicy()


def body_limit(settings: Settings, policy: RoutePolicy) -> int:
    """Return the largest body the route takes, in bytes."""
    if policy.body is None:
        return settings.max_body_bytes
    return int(getattr(settings.limits, policy.body))


def client_address(request: web.Request, limits: LimitsSettings) -> str:
    """Return who is calling for per-address limits: the peer, or what a trusted proxy saw.

    An IPv6 client is keyed by its /64, as one subscriber is usually handed a whole /64.
    """
    raw = request.remote or "unknown"
    if limits.trusted_proxy_header:
        hops = [
            part.strip()
            for value in request.headers.getall(limits.trusted_proxy_header, [])
            for part in value.split(",")
            if part.strip()
        ]
        if len(hops) >= limits.trusted_proxy_hops:
            raw = hops[-limits.trusted_proxy_hops]
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:64]
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address) + "/64"
    return str(address)


async def admit(request: web.Request, scope: str, key: str) -> None:
    """Spend one request of `key`'s allowance in `scope`, or raise RateLimited (429)."""
    limiter = request.app[CONTAINER].limiter
    if limiter is not None:
        await limiter.admit(scope, key)


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else ""


@web.middleware
async def request_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse an address over its rate; read the body within its size and deadline."""
    protocol = request.protocol
    guarded = protocol if isinstance(protocol, GuardedHandler) else None
    if guarded is not None:
        guarded.head_received()
    try:
        container = request.app[CONTAINER]
        settings = container.settings
        policy = POLICIES.get((request.method, _route(request)), NO_POLICY)
        limiter = container.limiter
        if policy.scope is not None and limiter is not None and limiter.limits(policy.scope):
            await limiter.admit(policy.scope, client_address(request, settings.limits))
        if request.body_exists:
            limit = body_limit(settings, policy)
            refused = _too_large(request, limit)
            if refused is not None:
                return refused
            request = request.clone(client_max_size=limit)
            try:
                async with asyncio.timeout(settings.limits.body_timeout_s):
                    await request.read()  # kept by the request: handlers read it again
            except web.HTTPRequestEntityTooLarge:
                return _closing(
                    problem(
                        413,
                        f"the request body is larger than {limit} bytes",
                        reason="payload_too_large",
                        request_id=request_id_of(request),
                    )
                )
            except TimeoutError:
                SLOW_CLIENTS.labels(phase="body").inc()
                log.info("http.slow_body", timeout_s=settings.limits.body_timeout_s)
                return _closing(
                    problem(
                        408,
                        "the request body did not arrive in time",
                        reason="request_timeout",
                        request_id=request_id_of(request),
                    )
                )
        return await handler(request)
    finally:
        if guarded is not None:
            guarded.request_done()


def _too_large(request: web.Request, limit: int) -> web.Response | None:
    # Refused before a byte of the body is read.
    if request.content_length is not None and request.content_length > limit:
        return _closing(
            problem(
                413,
                f"the request body is larger than {limit} bytes",
                reason="payload_too_large",
                request_id=request_id_of(request),
            )
        )
    return None


def _closing(response: web.Response) -> web.Response:
    # The rest of the body is not read into memory: the server drains it for at most
    # `lingering_s`, then closes, so the connection cannot be reused mid-body.
    response.force_close()
    return response
