"""Request and response models of the loyalty API (balances, tier floors, entries, feed)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from walletsvc.web.schemas import In, Out


class LoyaltyIn(In):
    points: Annotated[int | None, Field(ge=0, description="the balance to hold from now on")] = None
    tier: Annotated[
        str | None,
        Field(min_length=1, max_length=100, description="the tier now, and the floor of reviews"),
    ] = None


class LoyaltyOut(Out):
    customer_id: str
    program: str
    balance: int
    tier: str
    tier_floor: str | None


class LedgerEntryIn(In):
    kind: Literal["earn", "spend", "adjust"]
    points: int = Field(description="positive for earn and spend; signed for adjust")
    business_key: Annotated[
        str,
        Field(
            min_length=1,
            max_length=150,
            description="your unique key for this movement: the same key twice counts once",
        ),
    ]
    occurred_at: datetime | None = None


class TierUpdateOut(Out):
    cursor: str
    customer_id: str
    program: str
    old_tier: str
    new_tier: str
    balance: int
    reason: str
    occurred_at: datetime


class TierUpdatesOut(Out):
    items: list[TierUpdateOut]
    next_cursor: str
