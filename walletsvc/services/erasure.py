"""Erase a customer (GDPR Art. 17): what identifies them goes, their passes are voided.

Kept on purpose: the ledger entries and pass rows, which name only the opaque customer
id (bookkeeping may have to keep points and redemptions), and the tombstone customer
row they point at. Gone: the CRM id, identifiers (email and phone hashes, POS ids),
consents and visit history. Every pass is voided and pushed, so phones grey it out;
events never carried personal data, so none is left behind in the outbox.
"""

from __future__ import annotations

from walletsvc.domain.api_key import Principal, Scope
from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.domain.wallet_pass import PassState
from walletsvc.services.context import ServiceContext
from walletsvc.services.customers import lock_customer
from walletsvc.services.pass_changes import void_locked


async def erase_customer(ctx: ServiceContext, principal: Principal, customer_id: str) -> int:
    """Erase the person behind `customer_id` (and profiles merged into it); return passes voided."""
    principal.require(Scope.CUSTOMERS_WRITE)
    now = ctx.clock()
    async with ctx.uow() as uow:
        customer, program = await lock_customer(uow, principal, customer_id)
        voided = 0
        for held in await uow.passes.for_customer(customer.id):
            if held.state is not PassState.ACTIVE:
                continue
            locked = await uow.passes.get_for_update(held.serial)
            if locked is None or locked.state is not PassState.ACTIVE:
                continue
            await void_locked(ctx, uow, locked, program, customer, "erased")
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
