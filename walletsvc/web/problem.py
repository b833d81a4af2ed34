"""RFC 9457 problem+json bodies, and the one mapping from domain errors to HTTP statuses."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from walletsvc.domain.errors import (
    ConfigurationError,
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
)

PROBLEM_MEDIA_TYPE = "application/problem+json"

# Order matters: the first class an error is an instance of decides.
STATUS_OF: tuple[tuple[type[DomainError], int], ...] = (
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (RateLimited, 429),
    (InvalidInput, 422),
    (Unavailable, 503),
    (ConfigurationError, 500),
)

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def status_of(error: DomainError) -> int:
    """Return the HTTP status for a domain error."""
    for cls, status in STATUS_OF:
        if isinstance(error, cls):
            return status
    return 400


def problem(
    status: int,
    detail: str,
    *,
    reason: str,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """Return a problem+json response; `reason` is the stable machine-readable cause."""
    body: dict[str, Any] = {
        "type": f"https://walletsvc.dev/problems/{reason}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "reason": reason,
    }
    if request_id:
        body["request_id"] = request_id
    body.update({key: value for key, value in extra.items() if value is not None})
    response = web.Response(
        status=status,
        text=json.dumps(body),
        content_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )
    if status == 401:
        response.headers.setdefault("WWW-Authenticate", 'Bearer realm="walletsvc"')
    return response


def from_domain_error(error: DomainError, request_id: str | None) -> web.Response:
    """Return the problem response for a domain error."""
    status = status_of(error)
    detail = error.detail
    if isinstance(error, ConfigurationError):
        # Operators read the log; callers only learn that the service is misconfigured.
        detail = "the service is not configured to do this; the operator has been told"
    headers = None
    if isinstance(error, RateLimited):
        # Whole seconds (RFC 9110 delay-seconds), never 0: the bucket is empty until then.
        headers = {"Retry-After": str(max(1, int(error.retry_after_s)))}
    return problem(
        status,
        detail,
        reason=error.reason,
        request_id=request_id,
        field=error.field,
        headers=headers,
    )
