"""Bodies of the signed scan API (API.md, "Store side")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from walletsvc.web.schemas import In, Out


class AmountIn(In):
    value: Annotated[str, Field(min_length=1, max_length=20, description='decimal, e.g. "12.50"')]
    currency: Annotated[str, Field(min_length=3, max_length=3, description="ISO 4217")]


class ScanIn(In):
    scan_id: Annotated[str, Field(min_length=1, max_length=100)]
    barcode: Annotated[str, Field(min_length=1, max_length=200)]
    action: Literal["identify", "purchase", "redeem"]
    occurred_at: datetime
    amount: AmountIn | None = None
    order_id: Annotated[str, Field(min_length=1, max_length=100)] | None = None


class ScanCouponOut(Out):
    title: str
    discount: str | None


class ScanOut(Out):
    customer_id: str
    serial: str
    action: str
    points_earned: int
    balance: int
    tier: str
    coupon: ScanCouponOut | None = None
