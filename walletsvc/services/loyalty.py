"""Points and tiers: what every earning path (scans, POS webhooks) does the same way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from walletsvc.domain.customer import Customer
from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.domain.ledger import EntryKind, LedgerEntry
from walletsvc.domain.program import Program
from walletsvc.services.context import ServiceContext
from walletsvc.services.pass_changes import refresh_customer_passes
from walletsvc.services.ports import UnitOfWork


async def earn_points(
    ctx: ServiceContext,
    uow: UnitOfWork,
    program: Program,
    customer: Customer,
    *,
    points: int,
    business_key: str,
    occurred_at: datetime,
    source: str,
    context: Mapping[str, object],
) -> Customer:
    """Append an earn entry, move the balance and tier, update the passes; return the customer.

    The caller holds the customer row locked (`get_for_update`), so concurrent earns
    for one customer add up instead of overwriting each other.
    """
    now = ctx.clock()
    await uow.ledger.append(
        LedgerEntry(
            program_id=program.id,
            customer_id=customer.id,
            kind=EntryKind.EARN,
            points=points,
            business_key=business_key,
            occurred_at=occurred_at,
            source=source,
        ),
        now,
    )
    balance = customer.points_balance + points
    tier = upgraded_tier(program, customer.tier, balance)
    shared = {"customer_id": customer.id, "program": program.id, **context}
    await uow.outbox.add(
        DomainEvent(
            type=EventType.POINTS_EARNED,
            subject=customer.id,
            data={**shared, "points": points, "balance": balance},
            occurred_at=occurred_at,
        )
    )
    if tier != customer.tier:
        await uow.outbox.add(
            DomainEvent(
                type=EventType.TIER_CHANGED,
                subject=customer.id,
                data={**shared, "old_tier": customer.tier, "new_tier": tier, "balance": balance},
                occurred_at=occurred_at,
            )
        )
    customer = replace(customer, points_balance=balance, tier=tier, updated_at=now)
    await uow.customers.update(customer)
    # The balance and tier show on every pass the customer holds: each is re-rendered
    # and, where it changed, pushed.
    await refresh_customer_passes(ctx, uow, program, customer)
    return customer


def upgraded_tier(program: Program, current: str, balance: int) -> str:
    """Return the tier after an earn: upgrades happen at once, downgrades never here."""
    names = [tier.name for tier in program.tiers]
    reached = program.tier_for(balance)
    if current in names and names.index(current) >= names.index(reached):
        return current
    return reached
