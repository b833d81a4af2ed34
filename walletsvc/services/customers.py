"""Create, update and read customer profiles."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime

from walletsvc.domain.api_key import Principal, Scope
from walletsvc.domain.customer import Consents, Customer, validate_external_id
from walletsvc.domain.errors import Conflict, DuplicateKey, NotFound
from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.domain.identifier import (
    Identifier,
    IdentifierKind,
    hash_identifier,
    normalize_email,
    normalize_phone,
)
from walletsvc.domain.program import Program
from walletsvc.domain.wallet_pass import WalletPass
from walletsvc.services.context import ServiceContext
from walletsvc.services.ports import UnitOfWork
from walletsvc.services.programs import resolve_program


@dataclass(frozen=True)
class CustomerDraft:
    """What the brand's backend sends about a customer."""

    external_id: str
    program: str | None = None
    email: str | None = None
    phone: str | None = None
    consents: Consents | None = None  # None: keep what is recorded


@dataclass(frozen=True)
class CustomerProfile:
    """A customer with their identifiers and passes."""

    customer: Customer
    identifiers: list[Identifier]
    passes: list[WalletPass]


def new_customer_id() -> str:
    """Return a fresh customer id."""
    return "cus_" + secrets.token_hex(10)


async def upsert_customer(
    ctx: ServiceContext, principal: Principal, draft: CustomerDraft
) -> tuple[Customer, bool]:
    """Create the customer or update it by external id; return it and whether it is new."""
    principal.require(Scope.CUSTOMERS_WRITE)
    validate_external_id(draft.external_id)
    hashed = _hashed_identifiers(ctx, draft)
    try:
        return await _upsert_once(ctx, principal, draft, hashed)
    except DuplicateKey:
        # Another request created the same external id between our read and our
        # insert; it is there now, so this attempt becomes an update.
        return await _upsert_once(ctx, principal, draft, hashed)


async def _upsert_once(
    ctx: ServiceContext,
    principal: Principal,
    draft: CustomerDraft,
    hashed: list[Identifier],
) -> tuple[Customer, bool]:
    now = ctx.clock()
    async with ctx.uow() as uow:
        program = await resolve_program(uow, principal, draft.program)
        existing = await uow.customers.get_by_external_id(program.id, draft.external_id)
        if existing is None:
            customer = await add_customer(
                uow, program, draft.external_id, draft.consents or Consents(), now
            )
            created = True
        else:
            customer = existing
            created = False
            if draft.consents is not None and draft.consents != existing.consents:
                customer = replace(existing, consents=draft.consents, updated_at=now)
                await uow.customers.update(customer)
                if existing.consents.location and not draft.consents.location:
                    # Withdrawn: nothing more about where they were leaves, from now on.
                    # The update above holds the customer's row lock, which a geofence
                    # claim takes too, so none is accepted after this commits.
                    await uow.store_visits.forget([customer.id], delivered_too=False)
                await uow.outbox.add(
                    DomainEvent(
                        type=EventType.CONSENTS_CHANGED,
                        subject=customer.id,
                        data={
                            "customer_id": customer.id,
                            "program": program.id,
                            "location": draft.consents.location,
                            "marketing": draft.consents.marketing,
                        },
                        occurred_at=now,
                    )
                )
        await _link_hashed(uow, program.id, customer.id, hashed)
        await uow.commit()
    return customer, created


async def add_customer(
    uow: UnitOfWork, program: Program, external_id: str, consents: Consents, now: datetime
) -> Customer:
    """Add a new customer, its external-id link and its created event to the unit of work."""
    customer = Customer(
        id=new_customer_id(),
        program_id=program.id,
        external_id=external_id,
        consents=consents,
        points_balance=0,
        tier=program.tier_for(0),
        created_at=now,
        updated_at=now,
    )
    await uow.customers.add(customer)
    await uow.customers.link(
        program.id, customer.id, Identifier(IdentifierKind.EXTERNAL_ID, external_id, "api", now)
    )
    await uow.outbox.add(
        DomainEvent(
            type=EventType.CUSTOMER_CREATED,
            subject=customer.id,
            data={"customer_id": customer.id, "program": program.id},
            occurred_at=now,
        )
    )
    return customer


def _hashed_identifiers(ctx: ServiceContext, draft: CustomerDraft) -> list[Identifier]:
    now = ctx.clock()
    found = []
    if draft.email is not None:
        value = hash_identifier(
            ctx.identifier_pepper, IdentifierKind.EMAIL_HASH, normalize_email(draft.email)
        )
        found.append(Identifier(IdentifierKind.EMAIL_HASH, value, "api", now))
    if draft.phone is not None:
        value = hash_identifier(
            ctx.identifier_pepper, IdentifierKind.PHONE_HASH, normalize_phone(draft.phone)
        )
        found.append(Identifier(IdentifierKind.PHONE_HASH, value, "api", now))
    return found


async def _link_hashed(
    uow: UnitOfWork, program_id: str, customer_id: str, identifiers: list[Identifier]
) -> None:
    for identifier in identifiers:
        owner = await uow.customers.find(program_id, identifier.kind, identifier.value)
        if owner == customer_id:
            continue
        if owner is not None:
            field = "email" if identifier.kind is IdentifierKind.EMAIL_HASH else "phone"
            raise Conflict(
                f"this {field} is linked to another customer of the program",
                reason="identifier_taken",
                field=field,
            )
        await uow.customers.link(program_id, customer_id, identifier)


async def get_customer_profile(
    ctx: ServiceContext, principal: Principal, customer_id: str
) -> CustomerProfile:
    """Return a customer's profile, or 404 when it is unknown or another program's."""
    principal.require(Scope.CUSTOMERS_READ)
    async with ctx.uow() as uow:
        customer = await uow.customers.get(customer_id)
        if customer is not None and customer.merged_into is not None:
            # A merged profile's id stays valid: it answers with the profile it joined.
            customer = await uow.customers.get(customer.merged_into)
        if customer is None:
            raise NotFound("no such customer")
        principal.require_program(customer.program_id)
        identifiers = await uow.customers.identifiers(customer.id)
        passes = await uow.passes.for_customer(customer.id)
    return CustomerProfile(customer, identifiers, passes)


async def lock_customer(
    uow: UnitOfWork, principal: Principal, customer_id: str
) -> tuple[Customer, Program]:
    """Return the customer (following a merge to the survivor) row-locked, and its program."""
    customer = await uow.customers.get_for_update(customer_id)
    if customer is not None and customer.merged_into is not None:
        customer = await uow.customers.get_for_update(customer.merged_into)
    if customer is None:
        raise NotFound("no such customer")
    principal.require_program(customer.program_id)
    program = await uow.programs.get(customer.program_id)
    if program is None:  # pragma: no cover - customers reference their program
        raise NotFound("no such customer")
    return customer, program
