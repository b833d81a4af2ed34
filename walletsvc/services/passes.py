"""Issue passes and hand out their signed bundles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from walletsvc.domain.api_key import Principal, Scope
from walletsvc.domain.customer import Consents, Customer, validate_external_id
from walletsvc.domain.errors import DuplicateKey, InvalidInput, NotFound
from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.domain.google_wallet import GoogleStatus
from walletsvc.domain.identifier import Identifier, IdentifierKind
from walletsvc.domain.link_token import make_link_token, open_link_token
from walletsvc.domain.program import Program
from walletsvc.domain.store import Store
from walletsvc.domain.wallet_pass import (
    Coupon,
    PassKind,
    PassState,
    WalletPass,
    new_authentication_token,
    new_serial,
    next_change_time,
    validate_coupon,
)
from walletsvc.services.context import ServiceContext
from walletsvc.services.customers import add_customer
from walletsvc.services.google_sync import queue_google_sync
from walletsvc.services.pass_render import content_digest, pass_content
from walletsvc.services.ports import UnitOfWork
from walletsvc.services.programs import resolve_program


@dataclass(frozen=True)
class PassRequest:
    """What the caller asks for when issuing a pass."""

    program: str | None
    kind: PassKind
    customer_id: str | None = None
    customer_external_id: str | None = None
    coupon: Coupon | None = None


@dataclass(frozen=True)
class IssuedPass:
    """A pass and the links that put it on a phone."""

    wallet_pass: WalletPass
    created: bool
    add_url: str
    pkpass_url: str
    # Add to Google Wallet; None when the program has no Google issuer.
    google_save_url: str | None = None


@dataclass(frozen=True)
class PkpassBundle:
    """A signed .pkpass and when its content last changed."""

    data: bytes
    wallet_pass: WalletPass


async def issue_pass(ctx: ServiceContext, principal: Principal, request: PassRequest) -> IssuedPass:
    """Issue a pass; a customer has one loyalty card per program, so that one is reused."""
    principal.require(Scope.PASSES_WRITE)
    validate_coupon(request.kind, request.coupon)
    if (request.customer_id is None) == (request.customer_external_id is None):
        raise InvalidInput(
            "give exactly one of customer_id and customer_external_id", field="customer_id"
        )
    if request.customer_external_id is not None:
        validate_external_id(request.customer_external_id)
    try:
        return await _issue_once(ctx, principal, request)
    except DuplicateKey:
        # A concurrent request issued this customer's loyalty card first; the
        # retry finds it and hands it back.
        return await _issue_once(ctx, principal, request)


async def _issue_once(
    ctx: ServiceContext, principal: Principal, request: PassRequest
) -> IssuedPass:
    now = ctx.clock()
    async with ctx.uow() as uow:
        program = await resolve_program(uow, principal, request.program)
        customer, new = await _customer_of(uow, program, request, principal, now)
        # A customer created just now holds no pass yet.
        if request.kind is PassKind.LOYALTY and not new:
            for held in await uow.passes.for_customer(customer.id):
                if held.kind is PassKind.LOYALTY and held.state is PassState.ACTIVE:
                    if await uow.google_objects.status(held.serial) is None:
                        # The program gained a Google issuer after this card was issued.
                        await queue_google_sync(ctx, uow, program, held)
                        await uow.commit()
                    return _issued(ctx, held, program, created=False)
        wallet_pass = WalletPass(
            serial=new_serial(),
            program_id=program.id,
            customer_id=customer.id,
            kind=request.kind,
            authentication_token=new_authentication_token(),
            coupon=request.coupon,
            last_changed_at=next_change_time(None, now),
            created_at=now,
        )
        stores = await uow.stores.for_program(program.id)
        pass_json = ctx.apple.render(pass_content(ctx, program, customer, wallet_pass, stores))
        wallet_pass = replace(wallet_pass, content_hash=content_digest(program, pass_json))
        await uow.passes.add(wallet_pass)
        await queue_google_sync(ctx, uow, program, wallet_pass)
        await uow.customers.link(
            program.id,
            customer.id,
            Identifier(IdentifierKind.PASS_SERIAL, wallet_pass.serial, "issue", now),
        )
        await uow.outbox.add(
            DomainEvent(
                type=EventType.PASS_ISSUED,
                subject=customer.id,
                data={
                    "customer_id": customer.id,
                    "program": program.id,
                    "serial": wallet_pass.serial,
                    "kind": wallet_pass.kind.value,
                },
                occurred_at=now,
            )
        )
        await uow.commit()
    return _issued(ctx, wallet_pass, program, created=True)


async def get_pass(ctx: ServiceContext, principal: Principal, serial: str) -> WalletPass:
    """Return a pass the key may see, or 404."""
    principal.require(Scope.PASSES_READ)
    async with ctx.uow() as uow:
        wallet_pass = await uow.passes.get(serial)
    if wallet_pass is None:
        raise NotFound("no such pass")
    principal.require_program(wallet_pass.program_id)
    return wallet_pass


async def pass_installs(ctx: ServiceContext, serial: str) -> int:
    """Return on how many Apple devices a pass is registered for updates."""
    async with ctx.uow() as uow:
        return await uow.apple_devices.installs(serial)


async def google_status(ctx: ServiceContext, serial: str) -> GoogleStatus | None:
    """Return where the pass's Google object stands, None when it has none."""
    async with ctx.uow() as uow:
        return await uow.google_objects.status(serial)


@dataclass(frozen=True)
class LinkedPass:
    """What a customer's link opens: the pass, its program and its holder."""

    wallet_pass: WalletPass
    program: Program
    customer: Customer
    pkpass_url: str
    add_url: str  # the page itself, which a QR code on a desktop hands to a phone
    # Save to Google Wallet; None when the program has no Google issuer.
    google_save_url: str | None = None


async def open_link(ctx: ServiceContext, token: str) -> LinkedPass:
    """Return the pass a customer's add link opens; forged and expired links are refused."""
    serial = open_link_token(ctx.link_keys, token, ctx.clock())
    async with ctx.uow() as uow:
        wallet_pass = await uow.passes.get(serial)
        program = await uow.programs.get(wallet_pass.program_id) if wallet_pass else None
        customer = await uow.customers.get(wallet_pass.customer_id) if wallet_pass else None
    if wallet_pass is None or program is None or customer is None:
        raise NotFound("no such pass", reason="link_invalid")
    # The download carries the token that was opened, so visiting the page never
    # extends a link's life past the expiry it was issued with.
    page = f"{ctx.public_url}/add/{token}"
    google = ctx.google.save_url(program, wallet_pass) if ctx.google is not None else None
    return LinkedPass(wallet_pass, program, customer, f"{page}/pass.pkpass", page, google)


async def pkpass_for_link(ctx: ServiceContext, token: str) -> PkpassBundle:
    """Return the signed bundle a customer's download link opens."""
    serial = open_link_token(ctx.link_keys, token, ctx.clock())
    return await pkpass_for_serial(ctx, serial)


async def pkpass_for_key(ctx: ServiceContext, principal: Principal, serial: str) -> PkpassBundle:
    """Return the signed bundle of a pass the key may read."""
    await get_pass(ctx, principal, serial)
    return await pkpass_for_serial(ctx, serial)


async def pkpass_for_serial(ctx: ServiceContext, serial: str) -> PkpassBundle:
    """Render and sign the current version of a pass."""
    async with ctx.uow() as uow:
        found = await uow.passes.get_with_holder(serial)
        if found is None:
            raise NotFound("no such pass")
        wallet_pass, program, _ = found
        # The holder as a living customer: an erased one's link opens nothing.
        customer = await uow.customers.get(wallet_pass.customer_id)
        stores = await uow.stores.for_program(wallet_pass.program_id)
    if customer is None:
        raise NotFound("no such pass")
    return await signed_pass(ctx, wallet_pass, program, customer, stores)


async def signed_pass(
    ctx: ServiceContext,
    wallet_pass: WalletPass,
    program: Program,
    customer: Customer,
    stores: Sequence[Store],
) -> PkpassBundle:
    """Return the signed bundle of what the pass shows now, signing only what is not cached."""
    # Rendered on every call, not looked up by the pass row's content_hash: keying the
    # cache by the stored hash once served a card without the balance just set
    # (tests/e2e/test_loyalty.py, a SQLite run), so the stored hash can lag what the
    # pass shows; until that is understood, what is served is what it shows now.
    pass_json = ctx.apple.render(pass_content(ctx, program, customer, wallet_pass, stores))

    async def sign() -> bytes:
        assets: dict[str, bytes] = {}
        # The artwork is read once per design version, not with every signature.
        if ctx.apple.needs_assets(program):
            async with ctx.uow() as uow:
                assets = await uow.programs.assets(program.id)
        return await ctx.apple.package(program, pass_json, assets)

    key = (wallet_pass.serial, content_digest(program, pass_json))
    return PkpassBundle(await ctx.pass_cache.get_or_make(key, sign), wallet_pass)


def add_url(ctx: ServiceContext, wallet_pass: WalletPass) -> str:
    """Return the customer's add-to-wallet link for a pass."""
    return f"{ctx.public_url}/add/{_link(ctx, wallet_pass)}"


def pkpass_url(ctx: ServiceContext, wallet_pass: WalletPass) -> str:
    """Return the signed, expiring download link of a pass's .pkpass."""
    return f"{ctx.public_url}/add/{_link(ctx, wallet_pass)}/pass.pkpass"


def _link(ctx: ServiceContext, wallet_pass: WalletPass) -> str:
    return make_link_token(ctx.link_keys[0], wallet_pass.serial, ctx.clock() + ctx.link_ttl)


def _issued(
    ctx: ServiceContext, wallet_pass: WalletPass, program: Program, *, created: bool
) -> IssuedPass:
    # The link names the object only (skinny JWT); the queued insert makes it exist.
    google = ctx.google.save_url(program, wallet_pass) if ctx.google is not None else None
    return IssuedPass(
        wallet_pass=wallet_pass,
        created=created,
        add_url=add_url(ctx, wallet_pass),
        pkpass_url=pkpass_url(ctx, wallet_pass),
        google_save_url=google,
    )


async def _customer_of(
    uow: UnitOfWork, program: Program, request: PassRequest, principal: Principal, now: datetime
) -> tuple[Customer, bool]:
    """Return the customer the pass is for, and whether it was created here."""
    if request.customer_id is not None:
        customer = await uow.customers.get(request.customer_id)
    else:
        assert request.customer_external_id is not None
        external_id = request.customer_external_id
        customer = await uow.customers.get_by_external_id(program.id, external_id)
        if customer is None:
            # A customer the brand has not created yet is created with the pass, in the
            # same transaction; that takes the right to create customers.
            principal.require(Scope.CUSTOMERS_WRITE)
            return await add_customer(uow, program, external_id, Consents(), now), True
    if customer is None or customer.program_id != program.id:
        raise NotFound("no such customer in this program", field="customer_id")
    return customer, False
