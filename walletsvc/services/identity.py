"""One profile per person: link identifiers to it, and merge two profiles found to be one.

A merge keeps the older profile (the earlier `created_at`, then the smaller id) and
turns the younger into an alias (`merged_into`): its identifiers, passes and ledger
entries move over, its balance is added, the higher tier is kept, and an identity
merged event goes out. Both rows are locked in id order first, so two merges racing
over the same pair cannot deadlock or merge twice.
"""

from __future__ import annotations

from dataclasses import replace

from walletsvc.domain.api_key import Principal, Scope
from walletsvc.domain.customer import Customer
from walletsvc.domain.errors import InvalidInput, NotFound
from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.domain.identifier import (
    Identifier,
    IdentifierKind,
    hash_identifier,
    normalize_email,
    normalize_phone,
)
from walletsvc.domain.program import Program
from walletsvc.domain.tier import higher, upgraded_tier
from walletsvc.domain.wallet_pass import PassKind, PassState
from walletsvc.services.context import ServiceContext
from walletsvc.services.loyalty import change_tier
from walletsvc.services.pass_changes import save_pass
from walletsvc.services.ports import UnitOfWork

LINKABLE = {
    "email": IdentifierKind.EMAIL_HASH,
    "phone": IdentifierKind.PHONE_HASH,
    "pos_customer": IdentifierKind.POS_CUSTOMER,
}
_MAX_HOPS = 8


async def link_identifier(
    ctx: ServiceContext, principal: Principal, customer_id: str, kind: str, value: str, source: str
) -> tuple[Customer, bool]:
    """Attach an identifier to a profile; return the surviving profile and whether it merged.

    Only an API key that may write customers of this program gets here: nobody else
    can attach an identifier to a profile.
    """
    principal.require(Scope.CUSTOMERS_WRITE)
    identifier_kind = LINKABLE.get(kind)
    if identifier_kind is None:
        raise InvalidInput(f"kind must be one of {', '.join(sorted(LINKABLE))}", field="kind")
    stored = _stored_value(ctx, identifier_kind, value)
    now = ctx.clock()
    async with ctx.uow() as uow:
        customer = await resolve_customer(uow, customer_id)
        if customer is None:
            raise NotFound("no such customer")
        principal.require_program(customer.program_id)
        program = await uow.programs.get(customer.program_id)
        assert program is not None
        owner_id = await uow.customers.find(program.id, identifier_kind, stored)
        owner = await resolve_customer(uow, owner_id) if owner_id else None
        merged = False
        if owner is None:
            await uow.customers.link(
                program.id, customer.id, Identifier(identifier_kind, stored, source, now)
            )
            await uow.outbox.add(
                DomainEvent(
                    type=EventType.IDENTITY_LINKED,
                    subject=customer.id,
                    data={
                        "customer_id": customer.id,
                        "program": program.id,
                        "kind": identifier_kind.value,
                        "source": source,
                    },
                    occurred_at=now,
                )
            )
        elif owner.id != customer.id:
            customer = await merge_customers(ctx, uow, program, customer.id, owner.id, source)
            merged = True
        await uow.commit()
    return customer, merged


async def resolve_customer(uow: UnitOfWork, customer_id: str) -> Customer | None:
    """Return the profile an id stands for, following merges to the surviving one."""
    customer = await uow.customers.get(customer_id)
    for _ in range(_MAX_HOPS):
        if customer is None or customer.merged_into is None:
            return customer
        customer = await uow.customers.get(customer.merged_into)
    raise NotFound("merge chain too long")  # pragma: no cover - merges are one hop deep


async def merge_customers(
    ctx: ServiceContext,
    uow: UnitOfWork,
    program: Program,
    first_id: str,
    second_id: str,
    source: str,
) -> Customer:
    """Merge two profiles of one person inside the caller's transaction; return the survivor."""
    now = ctx.clock()
    await uow.customers.lock_merges(program.id)
    # Resolved again now that merges take turns: a racing merge may have made either an
    # alias of another profile, and points must move only between surviving profiles.
    survivors = sorted({await _survivor(uow, first_id), await _survivor(uow, second_id)})
    locked = []
    for customer_id in survivors:
        # Locked as well, so an earn running beside the merge cannot lose its points.
        customer = await uow.customers.get_for_update(customer_id)
        assert customer is not None and customer.merged_into is None
        locked.append(customer)
    if len(locked) == 1:
        return locked[0]
    older, younger = sorted(locked, key=lambda c: (c.created_at, c.id))
    await _retire_second_loyalty_card(ctx, uow, program, older, younger)
    await uow.customers.move_records(younger.id, older.id)
    balance = older.points_balance + younger.points_balance
    # The person keeps the higher of the two tiers and the higher of the two floors.
    floor = higher(program, older.tier_floor or "", younger.tier_floor) or None
    tier = upgraded_tier(program, higher(program, older.tier, younger.tier), balance, floor)
    younger = replace(younger, points_balance=0, merged_into=older.id, updated_at=now)
    await uow.customers.update(younger)
    await uow.outbox.add(
        DomainEvent(
            type=EventType.IDENTITY_MERGED,
            subject=older.id,
            data={
                "customer_id": older.id,
                "merged_customer_id": younger.id,
                "program": program.id,
                "source": source,
                "balance": balance,
                "tier": tier,
            },
            occurred_at=now,
        )
    )
    older = replace(older, points_balance=balance, tier_floor=floor, updated_at=now)
    older = await change_tier(ctx, uow, program, older, tier, reason="merge", occurred_at=now)
    return older


async def _survivor(uow: UnitOfWork, customer_id: str) -> str:
    customer = await uow.customers.get_fresh(customer_id)
    for _ in range(_MAX_HOPS):
        if customer is None:
            raise NotFound("no such customer")
        if customer.merged_into is None:
            return customer.id
        customer = await uow.customers.get_fresh(customer.merged_into)
    raise NotFound("merge chain too long")  # pragma: no cover - merges are one hop deep


async def _retire_second_loyalty_card(
    ctx: ServiceContext, uow: UnitOfWork, program: Program, older: Customer, younger: Customer
) -> None:
    """Void the younger profile's loyalty card when the older has one: one card per person."""
    cards = [
        held
        for held in await uow.passes.for_customer(older.id)
        if held.kind is PassKind.LOYALTY and held.state is PassState.ACTIVE
    ]
    if not cards:
        return
    for held in await uow.passes.for_customer(younger.id):
        if held.kind is PassKind.LOYALTY and held.state is PassState.ACTIVE:
            locked = await uow.passes.get_for_update(held.serial)
            assert locked is not None
            await save_pass(ctx, uow, locked.voided("merged into another card"), program, younger)


def _stored_value(ctx: ServiceContext, kind: IdentifierKind, value: str) -> str:
    """Return what is kept for an identifier: emails and phones only as keyed hashes."""
    if kind is IdentifierKind.EMAIL_HASH:
        return hash_identifier(ctx.identifier_pepper, kind, normalize_email(value))
    if kind is IdentifierKind.PHONE_HASH:
        return hash_identifier(ctx.identifier_pepper, kind, normalize_phone(value))
    adapter, _, remote = value.partition(":")
    if not adapter or not remote or len(value) > 200 or not value.isprintable():
        raise InvalidInput(
            "a POS customer id is '<adapter>:<the vendor's customer id>'", field="value"
        )
    return value
