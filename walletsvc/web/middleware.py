"""Request ids, access logs and problem+json for every error, client's or ours."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from prometheus_client import Counter, Histogram

from walletsvc.domain.errors import ConfigurationError, DomainError, RateLimited
from walletsvc.storage.database import database_unreachable
from walletsvc.web.problem import from_domain_error, problem

log = structlog.get_logger("walletsvc.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
REQUEST_ID_KEY = web.RequestKey("request_id", str)
# By route template, never the raw path (tokens and device ids stay out of labels).
REQUESTS = Counter(
    "walletsvc_http_requests", "HTTP requests answered", ["method", "route", "status"]
)
# Refused for going over a rate limit, by scope (api_key, terminal, apple_log, ...).
RATE_LIMITED = Counter(
    "walletsvc_rate_limited", "Requests refused with 429 for exceeding a rate limit", ["scope"]
)
LATENCY = Histogram(
    "walletsvc_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


def request_id_of(request: web.Request) -> str | None:
    """Return the id this request is logged under."""
    return request.get(REQUEST_ID_KEY)


def _route_of(request: web.Request) -> str:
    # The route template, never the raw path: paths carry link tokens and device ids.
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give each request an id (the caller's X-Request-Id if sane), log it, time it."""
    incoming = request.headers.get("X-Request-Id", "")
    request_id = incoming if REQUEST_ID.match(incoming) else secrets.token_hex(8)
    request[REQUEST_ID_KEY] = request_id
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        elapsed = time.perf_counter() - started
        route = _route_of(request)
        REQUESTS.labels(method=request.method, route=route, status=str(status)).inc()
        LATENCY.labels(method=request.method, route=route).observe(elapsed)
        log.info(
            "http.request",
            method=request.method,
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
        )
        structlog.contextvars.unbind_contextvars("request_id")


@web.middleware
async def problem_details(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into problem+json; a bug answers 500 without its stack trace."""
    request_id = request_id_of(request)
    try:
        return await handler(request)
    except DomainError as error:
        if isinstance(error, ConfigurationError):
            log.error("service.misconfigured", detail=error.detail)
        if isinstance(error, RateLimited):
            RATE_LIMITED.labels(scope=error.scope).inc()
            log.info("http.rate_limited", scope=error.scope)
        return from_domain_error(error, request_id)
    except web.HTTPRequestEntityTooLarge:
        return problem(
            413, "the request body is too large", reason="payload_too_large", request_id=request_id
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return problem(
            exc.status, exc.reason, reason=reason, request_id=request_id, headers=headers
        )
    except Exception as error:
        if database_unreachable(error):
            # PostgreSQL restarting or unreachable: the client may retry (a scan with the
            # same scan_id applies once), so say so instead of claiming a bug.
            log.warning("http.database_unavailable", error=type(error).__name__)
            return problem(
                503,
                "the database cannot be reached; retry shortly",
                reason="database_unavailable",
                request_id=request_id,
                headers={"Retry-After": "1"},
            )
        log.exception("http.unhandled_error")
        return problem(
            500,
            "something went wrong on our side; quote the request id when reporting it",
            reason="internal_error",
            request_id=request_id,
        )
