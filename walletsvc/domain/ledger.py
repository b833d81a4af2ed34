"""The loyalty ledger: append-only point entries, each under a unique business key.

PROTOCOLS.md section 6: the same business key twice changes nothing; the balance is
derived from the entries (the customer's cached balance moves in the same
transaction); tiers are recomputed on every change (upgrades only here, downgrades
are a scheduled job).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from enum import StrEnum

from walletsvc.domain.errors import InvalidInput

CURRENCY = re.compile(r"[A-Z]{3}")
# Up to 12 digits before the point and 4 after: a till amount, not arbitrary precision.
AMOUNT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,4})?")
MAX_POINTS_PER_ENTRY = 10_000_000


class EntryKind(StrEnum):
    """Why points moved."""

    EARN = "earn"
    SPEND = "spend"
    ADJUST = "adjust"
    EXPIRE = "expire"


@dataclass(frozen=True)
class Money:
    """An amount in a currency, exact."""

    value: Decimal
    currency: str


@dataclass(frozen=True)
class LedgerEntry:
    """Points added (positive) or taken (negative) for one business reason."""

    program_id: str
    customer_id: str
    kind: EntryKind
    points: int
    business_key: str  # e.g. "scan:<scan_id>": the same key twice is the same entry
    occurred_at: datetime
    source: str  # who caused it: "scan", "pos:square", "api"


def parse_money(value: str, currency: str) -> Money:
    """Return the amount, refusing negative, inexact or absurd values."""
    if not AMOUNT.fullmatch(value):
        raise InvalidInput(
            "amount.value must be a decimal string like '12.50'", field="amount.value"
        )
    if not CURRENCY.fullmatch(currency):
        raise InvalidInput(
            "amount.currency must be an ISO 4217 code like 'EUR'", field="amount.currency"
        )
    try:
        return Money(Decimal(value), currency)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise InvalidInput("amount.value is not a number", field="amount.value") from None


def points_for(amount: Money, points_per_unit: Decimal) -> int:
    """Return the points a purchase earns: whole points, rounded down."""
    points = (amount.value * points_per_unit).to_integral_value(rounding=ROUND_FLOOR)
    return min(int(points), MAX_POINTS_PER_ENTRY)
