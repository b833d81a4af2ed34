"""Erase a customer (GDPR Art. 17): what identifies them goes, their passes are voided.

Kept on purpose: the ledger entries and pass rows, which name only the opaque customer
id (bookkeeping may have to keep points and redemptions), and the tombstone customer
row they point at. Gone: the CRM id, identifiers (email and phone hashes, POS ids),
consents and visit history. Every pass is voided and pushed, so phones grey it out;
events never carried personal data, so none is left behind in the outbox.
"""

from __future__ import annotations

from walletsvc.domain.api_key import Principal, Scope
from walletsvc.domain.errors import NotFound
from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.domain.wallet_pass import PassState
from walletsvc.services.context import ServiceContext
from walletsvc.services.pass_changes import save_pass


async def erase_customer(ctx: ServiceContext, principal: Principal, customer_id: str) -> int:
    """Erase the person behind `customer_id` (and profiles merged into it); return passes voided."""
    principal.require(Scope.CUSTOMERS_WRITE)
    now = ctx.clock()
    async with ctx.uow() as uow:
        customer = await uow.customers.get_for_update(customer_id)
        if customer is not None and customer.merged_into is not None:
            customer = await uow.customers.get_for_update(customer.merged_into)
        if customer is None:
            raise NotFound("no such customer")
        principal.require_program(customer.program_id)
        program = await uow.programs.get(customer.program_id)
        if program is None:  # pragma: no cover - customers reference their program
            raise NotFound("no such customer")
        voided = 0
        for held in await uow.passes.for_customer(customer.id):
            if held.state is not PassState.ACTIVE:
                continue
            locked = await uow.passes.get_for_update(held.serial)
            if locked is None or locked.state is not PassState.ACTIVE:
                continue
            await save_pass(ctx, uow, locked.voided("erased"), program, customer)
            await uow.outbox.add(
                DomainEvent(
                    type=EventType.PASS_VOIDED,
                    subject=customer.id,
                    data={
                        "customer_id": customer.id,
                        "program": program.id,
                        "serial": held.serial,
                        "reason": "erased",
                    },
                    occurred_at=now,
                )
            )
            voided += 1
        aliases = await uow.customers.aliases(customer.id)
        for erased_id in (customer.id, *aliases):
            await uow.customers.erase(erased_id, now)
        await uow.outbox.add(
            DomainEvent(
                type=EventType.CUSTOMER_ERASED,
                subject=customer.id,
                data={
                    "customer_id": customer.id,
                    "program": program.id,
                    "merged_customer_ids": sorted(aliases),
                    "passes_voided": voided,
                },
                occurred_at=now,
            )
        )
        await uow.commit()
    return voided
