"""Everything a pass shows, gathered once for both wallets' renderers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from walletsvc.domain.customer import Customer
from walletsvc.domain.program import Program
from walletsvc.domain.store import Store
from walletsvc.domain.wallet_pass import Coupon, PassKind, WalletPass

# Stand-ins for a sample pass: shaped like the real ones, never stored or shown.
_SAMPLE_SERIAL = "0" * 26
_SAMPLE_TOKEN = "sample-authentication-token-0000000000000"
_SAMPLE_BARCODE = "W1.sample.00000000000000000000000000.AAAAAAAAAAAAAAAA"
_SAMPLE_MOMENT = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class PassContent:
    """The program, the holder's loyalty state, the pass and its barcode message.

    `stores` are the program's stores the pass may list as locations and
    `home_store_id` the holder's home store among them, when known: the renderer picks
    the stores nearest to it.
    """

    program: Program
    customer: Customer
    wallet_pass: WalletPass
    barcode_message: str
    stores: tuple[Store, ...] = ()
    home_store_id: str | None = None


def sample_contents(program: Program) -> tuple[PassContent, ...]:
    """Return sample passes of every kind and tier, to check a design before it is used."""
    samples = [
        _sample(program, PassKind.LOYALTY, tier.name, tier.min_points, None)
        for tier in program.tiers
    ]
    coupon = Coupon(
        title="Sample offer",
        description="Sample details",
        discount="10 %",
        expires_at=_SAMPLE_MOMENT + timedelta(days=30),
    )
    first = program.tiers[0] if program.tiers else None
    samples.append(_sample(program, PassKind.COUPON, first.name if first else "", 0, coupon))
    return tuple(samples)


def _sample(
    program: Program, kind: PassKind, tier: str, points: int, coupon: Coupon | None
) -> PassContent:
    customer = Customer(
        id="sample",
        program_id=program.id,
        external_id="sample",
        points_balance=points,
        tier=tier,
    )
    wallet_pass = WalletPass(
        serial=_SAMPLE_SERIAL,
        program_id=program.id,
        customer_id=customer.id,
        kind=kind,
        authentication_token=_SAMPLE_TOKEN,
        coupon=coupon,
        last_changed_at=_SAMPLE_MOMENT,
        created_at=_SAMPLE_MOMENT,
    )
    return PassContent(program, customer, wallet_pass, _SAMPLE_BARCODE)
