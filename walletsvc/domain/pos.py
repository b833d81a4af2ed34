"""What a POS vendor's webhook asks of the store side, once verified and normalized.

These are kept in the inbox between accepting a delivery and acting on it, so they
serialise to plain JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from walletsvc.domain.ledger import Money


@dataclass(frozen=True)
class PosPurchase:
    """A paid sale with a way to find the customer: a POS customer id or a scanned code."""

    order_id: str
    amount: Money
    customer_ref: str | None = None  # the vendor's customer id
    loyalty_code: str | None = None  # a pass barcode or a loyalty number read at the till
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class PosScan:
    """A pass barcode read at a till with nothing bought."""

    barcode: str
    occurred_at: datetime | None = None


PosItem = PosPurchase | PosScan


def items_to_json(items: tuple[PosItem, ...]) -> list[dict[str, Any]]:
    """Return the items as JSON-ready dictionaries."""
    out: list[dict[str, Any]] = []
    for item in items:
        when = item.occurred_at.isoformat() if item.occurred_at else None
        if isinstance(item, PosPurchase):
            out.append(
                {
                    "kind": "purchase",
                    "order_id": item.order_id,
                    "amount": str(item.amount.value),
                    "currency": item.amount.currency,
                    "customer_ref": item.customer_ref,
                    "loyalty_code": item.loyalty_code,
                    "occurred_at": when,
                }
            )
        else:
            out.append({"kind": "scan", "barcode": item.barcode, "occurred_at": when})
    return out


def items_from_json(data: list[dict[str, Any]]) -> tuple[PosItem, ...]:
    """Return the items `items_to_json` wrote."""
    items: list[PosItem] = []
    for entry in data:
        when = datetime.fromisoformat(entry["occurred_at"]) if entry["occurred_at"] else None
        if entry["kind"] == "purchase":
            items.append(
                PosPurchase(
                    order_id=entry["order_id"],
                    amount=Money(Decimal(entry["amount"]), entry["currency"]),
                    customer_ref=entry["customer_ref"],
                    loyalty_code=entry["loyalty_code"],
                    occurred_at=when,
                )
            )
        else:
            items.append(PosScan(barcode=entry["barcode"], occurred_at=when))
    return tuple(items)
