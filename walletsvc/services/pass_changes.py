"""Change what passes show, and tell the devices that hold them.

Every change goes through `save_pass`: it re-renders the pass, and only when what the
pass shows really changed does it record a new version (a new Apple update tag and
Last-Modified) and owe a push to each registered device. Wallet logs a warning, and
the customer sees nothing, when told about a pass that did not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from walletsvc.domain.api_key import Principal, Scope
from walletsvc.domain.customer import Customer
from walletsvc.domain.errors import InvalidInput, NotFound
from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.domain.program import Program
from walletsvc.domain.store import Store
from walletsvc.domain.wallet_pass import (
    Coupon,
    PassKind,
    WalletPass,
    next_change_time,
    validate_coupon,
)
from walletsvc.services.context import ServiceContext
from walletsvc.services.google_sync import queue_google_sync
from walletsvc.services.pass_render import content_digest, pass_content
from walletsvc.services.ports import UnitOfWork

_UNSET: object = object()


@dataclass(frozen=True)
class CouponChange:
    """The coupon fields a PATCH may change; fields left out stay as they are."""

    title: str | None = None
    description: str | object | None = _UNSET
    discount: str | object | None = _UNSET
    expires_at: datetime | object | None = _UNSET


async def save_pass(
    ctx: ServiceContext,
    uow: UnitOfWork,
    wallet_pass: WalletPass,
    program: Program,
    customer: Customer,
    stores: Sequence[Store] | None = None,
) -> WalletPass:
    """Store the pass; when its rendering changed, make it a new version and owe pushes."""
    now = ctx.clock()
    if stores is None:
        stores = await uow.stores.for_program(program.id)
    pass_json = ctx.apple.render(pass_content(ctx, program, customer, wallet_pass, stores))
    digest = content_digest(program, pass_json)
    if digest != wallet_pass.content_hash:
        wallet_pass = replace(
            wallet_pass,
            version=wallet_pass.version + 1,
            content_hash=digest,
            last_changed_at=next_change_time(wallet_pass.last_changed_at, now),
        )
        await uow.apple_devices.queue_pushes(wallet_pass.serial, now + ctx.push_delay)
        await queue_google_sync(ctx, uow, program, wallet_pass)
        await uow.outbox.add(
            DomainEvent(
                type=EventType.PASS_UPDATED,
                subject=customer.id,
                data={
                    "customer_id": customer.id,
                    "program": program.id,
                    "serial": wallet_pass.serial,
                    "version": wallet_pass.version,
                },
                occurred_at=now,
            )
        )
    await uow.passes.update(wallet_pass)
    return wallet_pass


async def refresh_customer_passes(
    ctx: ServiceContext, uow: UnitOfWork, program: Program, customer: Customer
) -> list[WalletPass]:
    """Re-render every pass of a customer after their balance or tier changed."""
    return [
        await save_pass(ctx, uow, held, program, customer)
        for held in await uow.passes.for_customer(customer.id)
    ]


async def change_coupon(
    ctx: ServiceContext, principal: Principal, serial: str, change: CouponChange
) -> WalletPass:
    """Change a coupon's offer; both wallets show the new one."""
    principal.require(Scope.PASSES_WRITE)
    async with ctx.uow() as uow:
        wallet_pass, program, customer = await _locked(uow, principal, serial)
        if wallet_pass.kind is not PassKind.COUPON or wallet_pass.coupon is None:
            raise InvalidInput(
                "only a coupon's offer can be changed here; a loyalty card shows the balance "
                "and tier set through the loyalty API",
                field="coupon",
            )
        coupon = _changed_coupon(wallet_pass.coupon, change)
        validate_coupon(wallet_pass.kind, coupon)
        wallet_pass = await save_pass(
            ctx, uow, replace(wallet_pass, coupon=coupon), program, customer
        )
        await uow.commit()
    return wallet_pass


async def void_pass(
    ctx: ServiceContext, principal: Principal, serial: str, reason: str
) -> WalletPass:
    """Void a pass; Wallet greys it out and a voided barcode no longer scans."""
    principal.require(Scope.PASSES_WRITE)
    async with ctx.uow() as uow:
        wallet_pass, program, customer = await _locked(uow, principal, serial)
        wallet_pass = await void_locked(ctx, uow, wallet_pass, program, customer, reason)
        await uow.commit()
    return wallet_pass


async def void_locked(
    ctx: ServiceContext,
    uow: UnitOfWork,
    wallet_pass: WalletPass,
    program: Program,
    customer: Customer,
    reason: str,
) -> WalletPass:
    """Void a pass the caller holds locked, inside its transaction, with the event."""
    wallet_pass = await save_pass(ctx, uow, wallet_pass.voided(reason), program, customer)
    await uow.outbox.add(
        DomainEvent(
            type=EventType.PASS_VOIDED,
            subject=customer.id,
            data={
                "customer_id": customer.id,
                "program": program.id,
                "serial": wallet_pass.serial,
                "reason": reason,
            },
            occurred_at=ctx.clock(),
        )
    )
    return wallet_pass


async def _locked(
    uow: UnitOfWork, principal: Principal, serial: str
) -> tuple[WalletPass, Program, Customer]:
    wallet_pass = await uow.passes.get_for_update(serial)
    if wallet_pass is None:
        raise NotFound("no such pass")
    principal.require_program(wallet_pass.program_id)
    program = await uow.programs.get(wallet_pass.program_id)
    customer = await uow.customers.get(wallet_pass.customer_id)
    if program is None or customer is None:
        raise NotFound("no such pass")
    return wallet_pass, program, customer


def _changed_coupon(coupon: Coupon, change: CouponChange) -> Coupon:
    updates: dict[str, object] = {}
    if change.title is not None:
        updates["title"] = change.title
    for name in ("description", "discount", "expires_at"):
        value = getattr(change, name)
        if value is not _UNSET:
            updates[name] = value
    return replace(coupon, **updates)  # type: ignore[arg-type]


async def refresh_program_passes(ctx: ServiceContext, program_id: str, batch: int = 200) -> int:
    """Re-render every pass of a program (after a design change); return how many changed.

    Works in batches of one transaction each, so a large program neither holds locks for
    long nor starts over after an interruption: a pass already refreshed renders the
    same and is left alone the second time.
    """
    changed = 0
    after: str | None = None
    while True:
        async with ctx.uow() as uow:
            program = await uow.programs.get(program_id)
            if program is None:
                raise NotFound("no such program")
            page = await uow.passes.for_program(program_id, after, batch)
            stores = await uow.stores.for_program(program_id)
            for listed in page:
                wallet_pass = await uow.passes.get_for_update(listed.serial)
                customer = await uow.customers.get(listed.customer_id)
                if wallet_pass is None or customer is None:
                    continue
                saved = await save_pass(ctx, uow, wallet_pass, program, customer, stores)
                changed += saved.version != wallet_pass.version
            await uow.commit()
        if len(page) < batch:
            return changed
        after = page[-1].serial
