"""Customers of a program: consents, balance and tier."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from walletsvc.domain.errors import InvalidInput

EXTERNAL_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


@dataclass(frozen=True)
class Consents:
    """What the customer allowed: location processing and marketing messages."""

    location: bool = False
    marketing: bool = False


@dataclass(frozen=True)
class Customer:
    """One person in one program, as the service knows them."""

    id: str
    program_id: str
    external_id: str
    consents: Consents = field(default_factory=Consents)
    points_balance: int = 0
    tier: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # Set when this profile turned out to be the same person as an older one: every
    # identifier, pass and point moved there, and this id is an alias of it.
    merged_into: str | None = None
    # The tier the loyalty engine set: reviews never lower the tier below it.
    tier_floor: str | None = None


def validate_external_id(external_id: str) -> str:
    """Return the external id if it is usable as a key, else refuse it."""
    if not EXTERNAL_ID.fullmatch(external_id):
        raise InvalidInput(
            "external_id must be 1-128 characters of letters, digits and ._:@-",
            field="external_id",
        )
    return external_id
