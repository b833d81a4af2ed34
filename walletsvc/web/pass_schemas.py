"""Bodies that change an issued pass (PATCH and void)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from walletsvc.web.schemas import In


class CouponChangeIn(In):
    """Fields left out stay as they are; null clears an optional field."""

    title: Annotated[str, Field(min_length=1, max_length=80)] | None = None
    description: Annotated[str, Field(max_length=500)] | None = None
    discount: Annotated[str, Field(max_length=40)] | None = None
    expires_at: datetime | None = None


class PassChangeIn(In):
    coupon: CouponChangeIn


class VoidIn(In):
    reason: Annotated[str, Field(min_length=1, max_length=200)] = "voided by the brand"
