"""Erase a customer (GDPR Art. 17): what identifies them goes, their passes are voided.

Kept on purpose: the ledger entries and pass rows, which name only the opaque customer
id (bookkeeping may have to keep points and redemptions), and the tombstone customer
row they point at. Gone: the CRM id, identifiers (email and phone hashes, POS ids),
consents and visit history: the visit state and every store entered/dwelled/exited
event in the outbox, delivered or still owed to a sink. POS deliveries in the inbox
that name the person (their POS customer id, loyalty number or pass barcode) lose
their bodies; pending ones are closed without being acted on. Every pass is voided
and pushed, so phones grey it out. No other event carries personal data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from walletsvc.domain.api_key import Principal, Scope
from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.domain.identifier import IdentifierKind
from walletsvc.domain.wallet_pass import PassState
from walletsvc.services.context import ServiceContext
from walletsvc.services.customers import lock_customer
from walletsvc.services.pass_changes import void_locked
from walletsvc.services.ports import UnitOfWork

POS_SOURCES = "pos:"


async def erase_customer(ctx: ServiceContext, principal: Principal, customer_id: str) -> int:
    """Erase the person behind `customer_id` (and profiles merged into it); return passes voided."""
    principal.require(Scope.CUSTOMERS_WRITE)
    now = ctx.clock()
    async with ctx.uow() as uow:
        customer, program = await lock_customer(uow, principal, customer_id)
        voided = 0
        held = await uow.passes.for_customer(customer.id)
        for wallet_pass in held:
            if wallet_pass.state is not PassState.ACTIVE:
                continue
            locked = await uow.passes.get_for_update(wallet_pass.serial)
            if locked is None or locked.state is not PassState.ACTIVE:
                continue
            await void_locked(ctx, uow, locked, program, customer, "erased")
            voided += 1
        aliases = await uow.customers.aliases(customer.id)
        erased_ids = (customer.id, *aliases)
        traces = await _traces(uow, erased_ids, {p.serial for p in held})
        await uow.inbox.scrub(POS_SOURCES, traces.mentioned_in, now)
        await uow.store_visits.forget(erased_ids, delivered_too=True)
        for erased_id in erased_ids:
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


@dataclass(frozen=True)
class Traces:
    """What a POS delivery may name a person by: ids, loyalty numbers, pass serials."""

    customer_ids: frozenset[str]
    codes: frozenset[str]  # loyalty numbers (external ids) read at a till
    pos_ids: frozenset[str]  # "<adapter>:<vendor customer id>"
    serials: frozenset[str]

    def mentioned_in(self, body: bytes, response: Mapping[str, Any] | None) -> bool:
        """Return whether a stored POS delivery names this person."""
        if response is not None and _names_customer(response, self.customer_ids):
            return True
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return False
        if not isinstance(payload, dict):
            return False
        adapter = payload.get("adapter")
        for item in payload.get("items") or []:
            if not isinstance(item, dict):
                continue
            ref = item.get("customer_ref")
            if ref and f"{adapter}:{ref}" in self.pos_ids:
                return True
            for key in ("loyalty_code", "barcode"):
                code = str(item.get(key) or "").strip()
                if code and (code in self.codes or _serial_of(code) in self.serials):
                    return True
        return False


async def _traces(uow: UnitOfWork, customer_ids: tuple[str, ...], serials: set[str]) -> Traces:
    codes: set[str] = set()
    pos_ids: set[str] = set()
    for erased_id in customer_ids:
        profile = await uow.customers.get(erased_id)
        if profile is not None:
            codes.add(profile.external_id)
        for identifier in await uow.customers.identifiers(erased_id):
            if identifier.kind is IdentifierKind.POS_CUSTOMER:
                pos_ids.add(identifier.value)
    return Traces(frozenset(customer_ids), frozenset(codes), frozenset(pos_ids), frozenset(serials))


def _serial_of(code: str) -> str | None:
    # A pass barcode is W1.<key id>.<serial>.<mac> (domain/barcode.py); the MAC is not
    # checked here: a forged code naming the serial is scrubbed all the same.
    parts = code.split(".")
    return parts[2] if len(parts) == 4 else None


def _names_customer(response: Mapping[str, Any], customer_ids: frozenset[str]) -> bool:
    items = response.get("items")
    if not isinstance(items, list):
        return False
    return any(isinstance(i, dict) and i.get("customer_id") in customer_ids for i in items)
