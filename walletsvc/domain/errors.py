"""One tree of domain errors; each carries a machine-readable reason.

Only the web middleware maps these to HTTP statuses (see walletsvc/web/problem.py).
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the service reports to a caller."""

    reason = "error"

    def __init__(self, detail: str, *, reason: str | None = None, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if reason is not None:
            self.reason = reason
        self.field = field


class InvalidInput(DomainError):
    """The caller sent something the service cannot accept."""

    reason = "invalid_input"


class NotFound(DomainError):
    """The thing asked for does not exist, or the caller may not know that it does."""

    reason = "not_found"


class Conflict(DomainError):
    """The request clashes with the current state (an id taken, a coupon already used)."""

    reason = "conflict"


class Unauthorized(DomainError):
    """No valid credentials came with the request."""

    reason = "unauthorized"


class Forbidden(DomainError):
    """The credentials are valid but do not allow this."""

    reason = "forbidden"


class PayloadTooLarge(DomainError):
    """The request body is larger than the service accepts."""

    reason = "payload_too_large"


class ConfigurationError(DomainError):
    """The service is set up in a way that cannot work; the message says what to fix."""

    reason = "configuration_error"


class Unavailable(DomainError):
    """A dependency needed to answer is not reachable right now."""

    reason = "unavailable"


class DuplicateKey(Conflict):
    """A row with the same unique key exists already (often a concurrent insert)."""

    reason = "already_exists"


class BadSignature(Unauthorized):
    """A signed request whose signature is missing or made with no key we hold."""

    reason = "bad_signature"


class StaleTimestamp(Unauthorized):
    """A signed request too old (or too far in the future) to be trusted: maybe a replay."""

    reason = "stale_timestamp"


class MalformedWebhook(InvalidInput):
    """A verified webhook whose body is not the shape its sender documents."""

    reason = "malformed_webhook"


class WalletRejected(InvalidInput):
    """A wallet's API refused what we sent as invalid (a design it does not accept)."""

    reason = "wallet_rejected"


class WalletUnavailable(Unavailable):
    """A wallet's API is busy or failing; the work is retried later."""

    reason = "wallet_unavailable"

    def __init__(
        self,
        detail: str,
        *,
        reason: str | None = None,
        field: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(detail, reason=reason, field=field)
        self.retry_after_s = retry_after_s


class RateLimited(DomainError):
    """A caller sent more requests than its limit allows; it may try again later."""

    reason = "rate_limited"

    def __init__(
        self,
        detail: str,
        *,
        reason: str | None = None,
        field: str | None = None,
        scope: str = "",
        retry_after_s: float = 1.0,
    ) -> None:
        super().__init__(detail, reason=reason, field=field)
        self.scope = scope  # which limit: api_key, terminal, add_page, ...
        self.retry_after_s = retry_after_s
