"""A pass scanned at a till: what the terminal asks for and what it gets back."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from walletsvc.domain.errors import InvalidInput
from walletsvc.domain.ledger import Money

SCAN_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")
ORDER_ID = re.compile(r"[A-Za-z0-9._:/#-]{1,100}")


class ScanAction(StrEnum):
    """What the till does with the pass."""

    IDENTIFY = "identify"  # who is this? nothing changes
    PURCHASE = "purchase"  # points for the amount
    REDEEM = "redeem"  # use a single-use coupon


@dataclass(frozen=True)
class ScanRequest:
    """One scan as the terminal reported it."""

    scan_id: str
    barcode: str
    action: ScanAction
    occurred_at: datetime
    amount: Money | None = None
    order_id: str | None = None

    def fingerprint(self) -> str:
        """Return a digest of what was asked, to tell a retry from a reused scan id."""
        canonical = json.dumps(
            {
                "barcode": self.barcode,
                "action": self.action.value,
                "occurred_at": self.occurred_at.isoformat(),
                "amount": [str(self.amount.value), self.amount.currency] if self.amount else None,
                "order_id": self.order_id,
            },
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ScanResult:
    """What the till is told; a repeated scan id gets exactly this again."""

    customer_id: str
    serial: str
    action: str
    points_earned: int
    balance: int
    tier: str
    coupon: dict[str, object] | None = None
    replayed: bool = False  # True: a repeat of an earlier scan, answered as it was


def validate_scan(scan: ScanRequest) -> None:
    """Refuse a scan whose fields cannot be acted on, naming the field."""
    if not SCAN_ID.fullmatch(scan.scan_id):
        raise InvalidInput(
            "scan_id must be 1-100 characters of letters, digits and ._:-", field="scan_id"
        )
    if scan.order_id is not None and not ORDER_ID.fullmatch(scan.order_id):
        raise InvalidInput("order_id has characters a POS order id does not", field="order_id")
    if scan.action is ScanAction.PURCHASE and scan.amount is None:
        raise InvalidInput("a purchase needs an amount", field="amount")
    if scan.action is not ScanAction.PURCHASE and scan.amount is not None:
        raise InvalidInput("only a purchase carries an amount", field="amount")
    if scan.occurred_at.tzinfo is None:
        raise InvalidInput("occurred_at needs a time zone", field="occurred_at")
