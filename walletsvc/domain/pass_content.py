"""Everything a pass shows, gathered once for both wallets' renderers."""

from __future__ import annotations

from dataclasses import dataclass

from walletsvc.domain.customer import Customer
from walletsvc.domain.program import Program
from walletsvc.domain.wallet_pass import WalletPass


@dataclass(frozen=True)
class PassContent:
    """The program, the holder's loyalty state, the pass and its barcode message."""

    program: Program
    customer: Customer
    wallet_pass: WalletPass
    barcode_message: str
