"""POS vendor webhooks: accept into the inbox at once, act on them from there.

Accepting is one insert (unique per adapter, terminal and the vendor's event id), so
the vendor gets its 2xx in milliseconds and a retry is a no-op. A worker then takes
each pending row in its own transaction: it finds the customer (a scanned pass or
loyalty number, or a POS customer id linked earlier), records the purchase once per
order (the ledger's business key), and marks the row processed with the outcome.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import structlog

from walletsvc.domain.barcode import decode_barcode
from walletsvc.domain.customer import Customer
from walletsvc.domain.errors import BadSignature, DuplicateKey, InvalidInput
from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.domain.identifier import Identifier, IdentifierKind
from walletsvc.domain.ledger import points_for
from walletsvc.domain.pos import PosItem, PosPurchase, PosScan, items_from_json, items_to_json
from walletsvc.domain.program import Program
from walletsvc.domain.store import Terminal
from walletsvc.services.context import ServiceContext
from walletsvc.services.loyalty import earn_points
from walletsvc.services.ports import PendingInbox, UnitOfWork
from walletsvc.services.worker import run_rounds

log = structlog.get_logger("walletsvc.pos")

SOURCE_PREFIX = "pos:"


async def webhook_terminal(ctx: ServiceContext, terminal_id: str, adapter: str) -> Terminal:
    """Return the terminal a delivery names; unknown ones look like bad signatures."""
    async with ctx.uow() as uow:
        terminal = await uow.terminals.get(terminal_id) if len(terminal_id) <= 64 else None
    if terminal is None or terminal.adapter != adapter:
        raise BadSignature("unknown terminal or bad signature")
    return terminal


async def accept_webhook(
    ctx: ServiceContext,
    terminal: Terminal,
    adapter: str,
    event_id: str,
    fingerprint: str,
    items: tuple[PosItem, ...],
) -> bool:
    """Store a verified delivery for processing; False when it was stored before."""
    payload = {
        "adapter": adapter,
        "terminal_id": terminal.id,
        "store_id": terminal.store_id,
        "program": terminal.program_id,
        "items": items_to_json(items),
    }
    try:
        async with ctx.uow() as uow:
            await uow.inbox.claim(
                f"{SOURCE_PREFIX}{adapter}:{terminal.id}",
                event_id,
                fingerprint,
                ctx.clock(),
                json.dumps(payload).encode(),
            )
            await uow.commit()
    except DuplicateKey:
        return False
    return True


async def process_pending_webhooks(ctx: ServiceContext, limit: int = 100) -> int:
    """Act on up to `limit` accepted deliveries, one transaction each; return how many."""
    done = 0
    while done < limit:
        async with ctx.uow() as uow:
            pending = await uow.inbox.next_pending(SOURCE_PREFIX)
            if pending is None:
                return done
            try:
                outcome = await _apply(ctx, uow, pending)
            except Exception:
                # A delivery that cannot be processed must not block the ones behind it:
                # it is parked as failed (and logged) instead of retried forever.
                log.exception("pos.webhook.failed", source=pending.source)
                await _park(ctx, pending)
                done += 1
                continue
            await uow.inbox.respond(pending.source, pending.external_id, outcome, ctx.clock())
            await uow.commit()
        done += 1
    return done


async def run_webhook_worker(ctx: ServiceContext, stop: asyncio.Event, idle_s: float = 0.5) -> None:
    """Process accepted deliveries until `stop` is set."""

    async def round_() -> bool:
        return await process_pending_webhooks(ctx) > 0

    await run_rounds(round_, stop, idle_s=idle_s, log=log, failure="pos.worker.round_failed")


async def _park(ctx: ServiceContext, pending: PendingInbox) -> None:
    async with ctx.uow() as uow:
        await uow.inbox.respond(
            pending.source, pending.external_id, {"outcome": "failed"}, ctx.clock()
        )
        await uow.commit()


async def _apply(ctx: ServiceContext, uow: UnitOfWork, pending: PendingInbox) -> dict[str, Any]:
    payload = json.loads(pending.body)
    program = await uow.programs.get(payload["program"])
    if program is None:
        return {"outcome": "unknown_program"}
    place = {
        "store_id": payload["store_id"],
        "terminal_id": payload["terminal_id"],
        "pos": payload["adapter"],
        "pos_event_id": pending.external_id,
    }
    results = []
    for item in items_from_json(payload["items"]):
        when = item.occurred_at or pending.received_at
        if isinstance(item, PosScan):
            results.append(await _scan(ctx, uow, program, item, when, place))
        else:
            results.append(await _purchase(ctx, uow, program, item, when, place))
    return {"outcome": "processed", "items": results}


async def _scan(
    ctx: ServiceContext,
    uow: UnitOfWork,
    program: Program,
    scan: PosScan,
    when: datetime,
    place: dict[str, object],
) -> dict[str, Any]:
    customer = await _by_code(ctx, uow, program, scan.barcode)
    if customer is None:
        return {"kind": "scan", "outcome": "unknown_customer"}
    await _event(uow, EventType.PASS_SCANNED, customer, program, when, place, action="identify")
    return {"kind": "scan", "outcome": "identified", "customer_id": customer.id}


async def _purchase(
    ctx: ServiceContext,
    uow: UnitOfWork,
    program: Program,
    purchase: PosPurchase,
    when: datetime,
    place: dict[str, object],
) -> dict[str, Any]:
    adapter = str(place["pos"])
    customer = await _resolve(ctx, uow, program, purchase, adapter)
    result: dict[str, Any] = {"kind": "purchase", "order_id": purchase.order_id}
    if customer is None:
        return {**result, "outcome": "unknown_customer"}
    key = f"pos:{adapter}:{purchase.order_id}"
    if await uow.ledger.has(program.id, key):
        # The vendor reported this sale before under another event (created, then updated).
        return {**result, "outcome": "already_counted", "customer_id": customer.id}
    locked = await uow.customers.get_for_update(customer.id)
    assert locked is not None
    await _event(
        uow,
        EventType.PURCHASE_RECORDED,
        locked,
        program,
        when,
        place,
        order_id=purchase.order_id,
        amount=str(purchase.amount.value),
        currency=purchase.amount.currency,
    )
    points = points_for(purchase.amount, program.points_per_unit)
    if points:
        locked = await earn_points(
            ctx,
            uow,
            program,
            locked,
            points=points,
            business_key=key,
            occurred_at=when,
            source=f"pos:{adapter}",
            context=place,
        )
    return {**result, "outcome": "earned", "customer_id": locked.id, "points": points}


async def _resolve(
    ctx: ServiceContext, uow: UnitOfWork, program: Program, purchase: PosPurchase, adapter: str
) -> Customer | None:
    """Find the buyer: a code read at the till wins, then a POS customer id linked before."""
    pos_id = f"{adapter}:{purchase.customer_ref}" if purchase.customer_ref else None
    linked = (
        await uow.customers.find(program.id, IdentifierKind.POS_CUSTOMER, pos_id)
        if pos_id
        else None
    )
    if purchase.loyalty_code:
        customer = await _by_code(ctx, uow, program, purchase.loyalty_code)
        if customer is not None:
            if pos_id and linked is None:
                # Seen together at a till: from now on the POS customer id alone finds them.
                await uow.customers.link(
                    program.id,
                    customer.id,
                    Identifier(IdentifierKind.POS_CUSTOMER, pos_id, f"pos:{adapter}", ctx.clock()),
                )
            return customer
    return await uow.customers.get(linked) if linked else None


async def _by_code(
    ctx: ServiceContext, uow: UnitOfWork, program: Program, code: str
) -> Customer | None:
    """Return the customer behind a pass barcode, or behind a loyalty number (external id)."""
    try:
        serial = decode_barcode(ctx.barcode_keys, code)
    except InvalidInput:
        customer = await uow.customers.get_by_external_id(program.id, code)
        return customer
    wallet_pass = await uow.passes.get(serial)
    if wallet_pass is None or wallet_pass.program_id != program.id:
        return None
    return await uow.customers.get(wallet_pass.customer_id)


async def _event(
    uow: UnitOfWork,
    event_type: str,
    customer: Customer,
    program: Program,
    when: datetime,
    place: dict[str, object],
    **data: object,
) -> None:
    await uow.outbox.add(
        DomainEvent(
            type=event_type,
            subject=customer.id,
            data={"customer_id": customer.id, "program": program.id, **place, **data},
            occurred_at=when,
        )
    )
