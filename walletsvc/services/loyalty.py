"""Points and tiers: what every path that moves points (scans, POS, the engine, reviews) shares.

The caller holds the customer row locked (`get_for_update`), so concurrent movements
for one customer add up instead of overwriting each other, and one unit of work holds
the ledger entry, the cached balance, the tier, the events, the tier feed row and the
pass updates: all of them commit, or none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from walletsvc.domain.customer import Customer
from walletsvc.domain.errors import Conflict
from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.domain.ledger import EntryKind, LedgerEntry
from walletsvc.domain.program import Program
from walletsvc.domain.tier import TierUpdate, upgraded_tier
from walletsvc.services.context import ServiceContext
from walletsvc.services.pass_changes import refresh_customer_passes
from walletsvc.services.ports import UnitOfWork

__all__ = ["change_tier", "earn_points", "move_points", "upgraded_tier"]

_EVENT_OF = {
    EntryKind.EARN: EventType.POINTS_EARNED,
    EntryKind.SPEND: EventType.POINTS_SPENT,
    EntryKind.ADJUST: EventType.POINTS_ADJUSTED,
    EntryKind.EXPIRE: EventType.POINTS_EXPIRED,
}


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
    """Append an earn entry, move the balance and tier, update the passes; return the customer."""
    return await move_points(
        ctx,
        uow,
        program,
        customer,
        kind=EntryKind.EARN,
        points=points,
        business_key=business_key,
        occurred_at=occurred_at,
        source=source,
        context=context,
    )


async def move_points(
    ctx: ServiceContext,
    uow: UnitOfWork,
    program: Program,
    customer: Customer,
    *,
    kind: EntryKind,
    points: int,
    business_key: str,
    occurred_at: datetime,
    source: str,
    context: Mapping[str, object],
) -> Customer:
    """Append one ledger entry and apply it: balance, tier upgrade, events, passes.

    `points` is signed: positive adds, negative takes. A balance never goes below zero.
    """
    balance = customer.points_balance + points
    if balance < 0:
        raise Conflict(
            f"the balance is {customer.points_balance} points, {-points} cannot be taken",
            reason="insufficient_points",
            field="points",
        )
    now = ctx.clock()
    await uow.ledger.append(
        LedgerEntry(
            program_id=program.id,
            customer_id=customer.id,
            kind=kind,
            points=points,
            business_key=business_key,
            occurred_at=occurred_at,
            source=source,
        ),
        now,
    )
    shared = {"customer_id": customer.id, "program": program.id, **context}
    await uow.outbox.add(
        DomainEvent(
            type=_EVENT_OF[kind],
            subject=customer.id,
            data={**shared, "points": points, "balance": balance},
            occurred_at=occurred_at,
        )
    )
    tier = upgraded_tier(program, customer.tier, balance, customer.tier_floor)
    moved = replace(customer, points_balance=balance, updated_at=now)
    return await change_tier(
        ctx, uow, program, moved, tier, reason=kind.value, occurred_at=occurred_at, context=context
    )


async def change_tier(
    ctx: ServiceContext,
    uow: UnitOfWork,
    program: Program,
    customer: Customer,
    tier: str,
    *,
    reason: str,
    occurred_at: datetime,
    context: Mapping[str, object] | None = None,
) -> Customer:
    """Save the customer with `tier`; a change is an event and a feed row. Passes follow.

    `customer` carries the balance (and floor) to save; its `tier` is the old one.
    """
    now = ctx.clock()
    if tier != customer.tier:
        data = {
            "customer_id": customer.id,
            "program": program.id,
            **(context or {}),
            "old_tier": customer.tier,
            "new_tier": tier,
            "balance": customer.points_balance,
            "reason": reason,
        }
        await uow.outbox.add(
            DomainEvent(
                type=EventType.TIER_CHANGED, subject=customer.id, data=data, occurred_at=occurred_at
            )
        )
        await uow.tier_feed.append(
            TierUpdate(
                program_id=program.id,
                customer_id=customer.id,
                old_tier=customer.tier,
                new_tier=tier,
                balance=customer.points_balance,
                reason=reason,
                occurred_at=occurred_at,
            ),
            now,
        )
    customer = replace(customer, tier=tier, updated_at=now)
    await uow.customers.update(customer)
    # The balance and tier show on every pass the customer holds: each is re-rendered
    # and, where it changed, pushed.
    await refresh_customer_passes(ctx, uow, program, customer)
    return customer
