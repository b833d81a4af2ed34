"""Record a pass scanned at a till: exactly once, with all its effects in one transaction.

The inbox row (unique per program and scan_id), the ledger entry, the customer's
balance and tier, the pass change (and the pushes it owes) and the outbox events
commit together or not at all. A repeated scan_id answers what the first got; twenty
copies arriving at once are serialised by the inbox's unique index.
"""

from __future__ import annotations

from dataclasses import asdict, replace

from walletsvc.domain.barcode import decode_barcode
from walletsvc.domain.customer import Customer
from walletsvc.domain.errors import Conflict, DuplicateKey, InvalidInput, NotFound, Unauthorized
from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.domain.ledger import points_for
from walletsvc.domain.program import Program
from walletsvc.domain.scan import ScanAction, ScanRequest, ScanResult, validate_scan
from walletsvc.domain.store import Terminal
from walletsvc.domain.wallet_pass import PassKind, PassState, WalletPass
from walletsvc.services.context import ServiceContext
from walletsvc.services.loyalty import earn_points
from walletsvc.services.pass_changes import save_pass
from walletsvc.services.ports import UnitOfWork
from walletsvc.services.stores import OWN_ADAPTER


async def scanning_terminal(ctx: ServiceContext, terminal_id: str) -> Terminal:
    """Return the terminal whose secret signs this scan; unknown ones look like bad signatures."""
    async with ctx.uow() as uow:
        terminal = await uow.terminals.get(terminal_id) if len(terminal_id) <= 64 else None
    if terminal is None or terminal.adapter != OWN_ADAPTER:
        raise Unauthorized("unknown terminal or bad signature", reason="bad_signature")
    return terminal


async def record_scan(ctx: ServiceContext, terminal: Terminal, scan: ScanRequest) -> ScanResult:
    """Apply a verified scan once and return what the till is told."""
    validate_scan(scan)
    serial = decode_barcode(ctx.barcode_keys, scan.barcode)
    source = f"scan:{terminal.program_id}"
    try:
        return await _record_once(ctx, terminal, scan, serial, source)
    except DuplicateKey:
        # A copy of this scan committed first; answer exactly as it was answered.
        return await _replay(ctx, source, scan)


async def _record_once(
    ctx: ServiceContext, terminal: Terminal, scan: ScanRequest, serial: str, source: str
) -> ScanResult:
    now = ctx.clock()
    async with ctx.uow() as uow:
        # No look before the claim: a repeat, committed or in flight, fails on the
        # inbox's unique index (DuplicateKey) and is answered by _replay. Repeats are
        # rare; a look would cost every scan a round trip.
        await uow.inbox.claim(source, scan.scan_id, scan.fingerprint(), now, None)
        wallet_pass = await uow.passes.get_for_update(serial)
        if wallet_pass is None or wallet_pass.program_id != terminal.program_id:
            raise NotFound("no pass with this barcode in this program", reason="unknown_barcode")
        if wallet_pass.state is not PassState.ACTIVE:
            raise Conflict(
                f"the pass is {wallet_pass.state.value}", reason=f"pass_{wallet_pass.state.value}"
            )
        program = await uow.programs.get(wallet_pass.program_id)
        customer = await uow.customers.get_for_update(wallet_pass.customer_id)
        if program is None or customer is None:
            raise NotFound("no pass with this barcode in this program", reason="unknown_barcode")
        result = await _apply(ctx, uow, terminal, scan, wallet_pass, program, customer)
        answer = {k: v for k, v in asdict(result).items() if k != "replayed"}
        await uow.inbox.respond(source, scan.scan_id, answer, now)
        await uow.commit()
    return result


async def _apply(
    ctx: ServiceContext,
    uow: UnitOfWork,
    terminal: Terminal,
    scan: ScanRequest,
    wallet_pass: WalletPass,
    program: Program,
    customer: Customer,
) -> ScanResult:
    events = _Events(uow, customer, program, scan, terminal)
    await events.add(EventType.PASS_SCANNED, serial=wallet_pass.serial, action=scan.action.value)
    earned = 0
    coupon: dict[str, object] | None = None
    if scan.action is ScanAction.PURCHASE:
        assert scan.amount is not None
        earned = points_for(scan.amount, program.points_per_unit)
        await events.add(
            EventType.PURCHASE_RECORDED,
            order_id=scan.order_id,
            amount=str(scan.amount.value),
            currency=scan.amount.currency,
        )
        if earned:
            customer = await earn_points(
                ctx,
                uow,
                program,
                customer,
                points=earned,
                business_key=f"scan:{scan.scan_id}",
                occurred_at=scan.occurred_at,
                source="scan",
                context=events.context,
            )
    elif scan.action is ScanAction.REDEEM:
        if wallet_pass.kind is not PassKind.COUPON or wallet_pass.coupon is None:
            raise InvalidInput("only a coupon can be redeemed", field="barcode")
        redeemed = replace(wallet_pass, state=PassState.REDEEMED, void_reason="redeemed")
        await save_pass(ctx, uow, redeemed, program, customer)
        coupon = {"title": wallet_pass.coupon.title, "discount": wallet_pass.coupon.discount}
        await events.add(EventType.COUPON_REDEEMED, serial=wallet_pass.serial)
    return ScanResult(
        customer_id=customer.id,
        serial=wallet_pass.serial,
        action=scan.action.value,
        points_earned=earned,
        balance=customer.points_balance,
        tier=customer.tier,
        coupon=coupon,
    )


class _Events:
    """Builds the scan's events with what they all share."""

    def __init__(
        self,
        uow: UnitOfWork,
        customer: Customer,
        program: Program,
        scan: ScanRequest,
        terminal: Terminal,
    ) -> None:
        self._uow = uow
        self._customer = customer
        self._program = program
        self._scan = scan
        self._terminal = terminal

    @property
    def context(self) -> dict[str, object]:
        """Return what every event of this scan says about where it happened."""
        return {
            "store_id": self._terminal.store_id,
            "terminal_id": self._terminal.id,
            "scan_id": self._scan.scan_id,
        }

    async def add(self, event_type: str, **data: object) -> None:
        await self._uow.outbox.add(
            DomainEvent(
                type=event_type,
                subject=self._customer.id,
                data={
                    "customer_id": self._customer.id,
                    "program": self._program.id,
                    **self.context,
                    **data,
                },
                occurred_at=self._scan.occurred_at,
            )
        )


async def _replay(ctx: ServiceContext, source: str, scan: ScanRequest) -> ScanResult:
    async with ctx.uow() as uow:
        seen = await uow.inbox.get(source, scan.scan_id)
    if seen is None:  # pragma: no cover - the duplicate we clashed with was committed
        raise Conflict("the scan is being recorded; retry", reason="scan_in_progress")
    return _answer_of(seen.fingerprint, seen.response, scan)


def _answer_of(fingerprint: str, response: object, scan: ScanRequest) -> ScanResult:
    if fingerprint != scan.fingerprint():
        raise Conflict(
            "this scan_id was already used for a different scan", reason="scan_id_reused"
        )
    if not isinstance(response, dict):  # pragma: no cover - responses are written with claims
        raise Conflict("the scan is being recorded; retry", reason="scan_in_progress")
    return replace(ScanResult(**response), replayed=True)
