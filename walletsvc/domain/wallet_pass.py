"""Wallet passes: a loyalty card or a coupon held by one customer."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from walletsvc.domain.errors import Conflict, InvalidInput

# Crockford-style base32 without look-alikes: easy to read aloud at a till.
SERIAL_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
SERIAL_LENGTH = 26  # 130 bits: unguessable, and short enough for a URL and a barcode


class PassKind(StrEnum):
    """What a pass is for."""

    LOYALTY = "loyalty"
    COUPON = "coupon"


class PassState(StrEnum):
    """Where a pass is in its life."""

    ACTIVE = "active"
    VOIDED = "voided"
    REDEEMED = "redeemed"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Coupon:
    """The offer a coupon pass carries."""

    title: str
    description: str | None = None
    discount: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class WalletPass:
    """One issued pass. Its serial and authentication token never change."""

    serial: str
    program_id: str
    customer_id: str
    kind: PassKind
    authentication_token: str
    state: PassState = PassState.ACTIVE
    coupon: Coupon | None = None
    void_reason: str | None = None
    version: int = 1
    content_hash: str = ""
    last_changed_at: datetime | None = None
    created_at: datetime | None = None

    def voided(self, reason: str) -> WalletPass:
        """Return the pass voided for `reason`; a pass is voided only once."""
        if self.state is not PassState.ACTIVE:
            raise Conflict(f"pass is already {self.state.value}", reason=f"pass_{self.state.value}")
        return replace(self, state=PassState.VOIDED, void_reason=reason)


def next_change_time(previous: datetime | None, now: datetime) -> datetime:
    """Return a whole-second change time later than `previous`.

    Apple compares Last-Modified and If-Modified-Since as HTTP-dates, which have whole
    seconds: two versions of a pass within one second would look the same to Wallet,
    and the second would be answered 304 and never shown.
    """
    whole = now.replace(microsecond=0)
    if previous is not None and whole <= previous.replace(microsecond=0):
        return previous.replace(microsecond=0) + timedelta(seconds=1)
    return whole


def new_serial() -> str:
    """Return a fresh random pass serial."""
    return "".join(secrets.choice(SERIAL_ALPHABET) for _ in range(SERIAL_LENGTH))


def new_authentication_token() -> str:
    """Return a fresh per-pass token for Apple's web service (43 characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def validate_coupon(kind: PassKind, coupon: Coupon | None) -> None:
    """A coupon pass needs an offer with a title; a loyalty pass carries none."""
    if kind is PassKind.COUPON:
        if coupon is None or not coupon.title.strip():
            raise InvalidInput("a coupon pass needs coupon.title", field="coupon.title")
        if len(coupon.title) > 80:
            raise InvalidInput("coupon.title is at most 80 characters", field="coupon.title")
    elif coupon is not None:
        raise InvalidInput("only coupon passes carry a coupon", field="coupon")


def is_serial(value: str) -> bool:
    """Tell whether `value` has the shape of a serial this service issues."""
    return len(value) == SERIAL_LENGTH and all(c in SERIAL_ALPHABET for c in value)
