"""What the brand's loyalty engine does: set balances and tier floors, post entries, read tiers."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from walletsvc.domain.api_key import Principal, Scope
from walletsvc.domain.customer import Customer
from walletsvc.domain.errors import Conflict, DuplicateKey, InvalidInput
from walletsvc.domain.ledger import MAX_POINTS_PER_ENTRY, EntryKind
from walletsvc.domain.program import Program
from walletsvc.domain.tier import TierUpdate, require_tier, upgraded_tier
from walletsvc.services.context import ServiceContext
from walletsvc.services.customers import lock_customer
from walletsvc.services.loyalty import change_tier, move_points
from walletsvc.services.ports import UnitOfWork

BUSINESS_KEY = re.compile(r"^[A-Za-z0-9._:@/-]{1,150}$")
MAX_BALANCE = 10**12
MAX_PAGE = 500


@dataclass(frozen=True)
class EntryRequest:
    """A ledger entry the brand's backend posts: a reward bought, a goodwill adjustment."""

    kind: EntryKind
    points: int  # positive; a spend takes them, an earn adds them, an adjust is signed
    business_key: str
    occurred_at: datetime | None = None


async def set_loyalty(
    ctx: ServiceContext,
    principal: Principal,
    customer_id: str,
    *,
    points: int | None,
    tier: str | None,
) -> Customer:
    """Make `points` the balance (an adjust entry for the difference) and `tier` the floor.

    The engine's tier is applied now and reviews never go below it; what the balance
    reaches is still an upgrade. Setting what is already set changes nothing.
    """
    principal.require(Scope.LOYALTY_WRITE)
    if points is None and tier is None:
        raise InvalidInput("give points, tier or both", field="points")
    if points is not None and not 0 <= points <= MAX_BALANCE:
        raise InvalidInput(f"points must be between 0 and {MAX_BALANCE}", field="points")
    now = ctx.clock()
    async with ctx.uow() as uow:
        customer, program = await lock_customer(uow, principal, customer_id)
        context = {"source": "engine"}
        if points is not None and points != customer.points_balance:
            customer = await move_points(
                ctx,
                uow,
                program,
                customer,
                kind=EntryKind.ADJUST,
                points=points - customer.points_balance,
                business_key=f"engine:{uuid.uuid4()}",
                occurred_at=now,
                source="engine",
                context=context,
            )
        if tier is not None:
            floor = require_tier(program, tier)
            new_tier = upgraded_tier(program, floor, customer.points_balance, floor)
            if floor != customer.tier_floor or new_tier != customer.tier:
                customer = await change_tier(
                    ctx,
                    uow,
                    program,
                    replace(customer, tier_floor=floor),
                    new_tier,
                    reason="engine",
                    occurred_at=now,
                    context=context,
                )
        await uow.commit()
    return customer


async def record_entry(
    ctx: ServiceContext, principal: Principal, customer_id: str, request: EntryRequest
) -> tuple[Customer, bool]:
    """Append an entry once per business key; return the customer and whether it was new."""
    principal.require(Scope.LOYALTY_WRITE)
    signed = _signed_points(request)
    if not BUSINESS_KEY.fullmatch(request.business_key):
        raise InvalidInput(
            "business_key must be 1-150 letters, digits or ._:@/-", field="business_key"
        )
    now = ctx.clock()
    key = f"api:{request.business_key}"
    try:
        async with ctx.uow() as uow:
            customer, program = await lock_customer(uow, principal, customer_id)
            if await _seen(uow, program, key, customer, request.kind, signed):
                return customer, False
            customer = await move_points(
                ctx,
                uow,
                program,
                customer,
                kind=request.kind,
                points=signed,
                business_key=key,
                occurred_at=request.occurred_at or now,
                source="api",
                context={"source": "api", "business_key": request.business_key},
            )
            await uow.commit()
        return customer, True
    except DuplicateKey:
        # A concurrent request with this key committed first: answer as it did.
        async with ctx.uow() as uow:
            customer, program = await lock_customer(uow, principal, customer_id)
            if not await _seen(uow, program, key, customer, request.kind, signed):
                raise  # pragma: no cover - the key exists, so _seen found it or refused
        return customer, False


async def tier_updates(
    ctx: ServiceContext, principal: Principal, after: int, limit: int
) -> list[TierUpdate]:
    """Return tier changes after the cursor, oldest first, of the programs the key sees."""
    principal.require(Scope.LOYALTY_READ)
    if after < 0:
        raise InvalidInput("after must be a cursor from an earlier page, or 0", field="after")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    async with ctx.uow() as uow:
        return await uow.tier_feed.page(after, limit, principal.program_id)


def _signed_points(request: EntryRequest) -> int:
    if request.kind is EntryKind.EXPIRE:
        raise InvalidInput("expiry entries are made by walletsvc's own schedule", field="kind")
    if request.kind is EntryKind.ADJUST:
        if request.points == 0 or abs(request.points) > MAX_POINTS_PER_ENTRY:
            raise InvalidInput(
                f"an adjustment is a non-zero number of points up to {MAX_POINTS_PER_ENTRY}",
                field="points",
            )
        return request.points
    if not 1 <= request.points <= MAX_POINTS_PER_ENTRY:
        raise InvalidInput(f"points must be between 1 and {MAX_POINTS_PER_ENTRY}", field="points")
    return -request.points if request.kind is EntryKind.SPEND else request.points


async def _seen(
    uow: UnitOfWork,
    program: Program,
    key: str,
    customer: Customer,
    kind: EntryKind,
    points: int,
) -> bool:
    """Return whether this entry exists; refuse a key reused for a different entry."""
    entry = await uow.ledger.find(program.id, key)
    if entry is None:
        return False
    if (entry.customer_id, entry.kind, entry.points) != (customer.id, kind, points):
        raise Conflict(
            "this business_key was used for a different entry", reason="business_key_reused"
        )
    return True
