"""Apple's PassKit web service: the calls Wallet makes about the passes on a device.

https://developer.apple.com/documentation/walletpasses/adding-a-web-service-to-update-passes
and PROTOCOLS.md section 2, which lists what other servers get wrong.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

from walletsvc.domain.apple_device import (
    ChangedPasses,
    clean_log_messages,
    validate_device_library_id,
    validate_push_token,
)
from walletsvc.domain.customer import Customer
from walletsvc.domain.errors import Unauthorized
from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.domain.program import Program
from walletsvc.domain.wallet_pass import WalletPass
from walletsvc.services.context import ServiceContext
from walletsvc.services.passes import PkpassBundle, signed_pass
from walletsvc.services.ports import UnitOfWork

AUTH_SCHEME = "ApplePass "
# Compared against when the serial is unknown, so a miss takes as long as a wrong token.
_DECOY_TOKEN = "x" * 43
MAX_STORED_LOGS = 10_000


@dataclass(frozen=True)
class LatestPass:
    """The pass Wallet asked for, or None with its last change when Wallet's copy is current."""

    bundle: PkpassBundle | None
    last_modified: datetime


async def register_device(
    ctx: ServiceContext,
    device_id: str,
    pass_type_id: str,
    serial: str,
    authorization: str | None,
    body: object,
) -> bool:
    """Register a pass on a device for updates; True when the registration is new (201)."""
    validate_device_library_id(device_id)
    now = ctx.clock()
    async with ctx.uow() as uow:
        wallet_pass = await _authorized(uow, pass_type_id, serial, authorization)
        push_token = validate_push_token(body.get("pushToken") if isinstance(body, dict) else None)
        created = await uow.apple_devices.register(device_id, push_token, pass_type_id, serial, now)
        if created:
            await uow.outbox.add(_install_event(EventType.PASS_INSTALLED, wallet_pass, now))
        await uow.commit()
    return created


async def unregister_device(
    ctx: ServiceContext, device_id: str, pass_type_id: str, serial: str, authorization: str | None
) -> None:
    """Stop updates of a pass on a device; unregistering twice is fine."""
    validate_device_library_id(device_id)
    now = ctx.clock()
    async with ctx.uow() as uow:
        wallet_pass = await _authorized(uow, pass_type_id, serial, authorization)
        if await uow.apple_devices.unregister(device_id, pass_type_id, serial):
            await uow.outbox.add(_install_event(EventType.PASS_REMOVED, wallet_pass, now))
        await uow.commit()


async def changed_passes(
    ctx: ServiceContext, device_id: str, pass_type_id: str, since: int | None
) -> ChangedPasses:
    """Return the device's passes of a type changed after the tag; the device id is the secret."""
    validate_device_library_id(device_id)
    async with ctx.uow() as uow:
        return await uow.apple_devices.changed(device_id, pass_type_id, since)


async def latest_pass(
    ctx: ServiceContext,
    pass_type_id: str,
    serial: str,
    authorization: str | None,
    if_modified_since: datetime | None,
) -> LatestPass:
    """Return the current signed pass, or say Wallet's copy (as of the HTTP-date) is current."""
    # Every device calls this after every push: one query, and signing only on a cache miss.
    async with ctx.uow() as uow:
        found = await uow.passes.get_with_holder(serial) if len(serial) <= 64 else None
        wallet_pass, program, customer = _check_token(found, pass_type_id, authorization)
        assert wallet_pass.last_changed_at is not None
        last_modified = wallet_pass.last_changed_at.replace(microsecond=0)
        if if_modified_since is not None and last_modified <= if_modified_since:
            return LatestPass(None, last_modified)
        stores = await uow.stores.for_program(program.id)
    bundle = await signed_pass(ctx, wallet_pass, program, customer, stores)
    return LatestPass(bundle, last_modified)


async def record_device_logs(ctx: ServiceContext, body: object) -> int:
    """Keep what Wallet reports about problems with our web service; return how many lines."""
    logs = body.get("logs") if isinstance(body, dict) else None
    messages = clean_log_messages(logs)
    async with ctx.uow() as uow:
        await uow.apple_devices.add_logs(messages, ctx.clock())
        await uow.apple_devices.prune_logs(MAX_STORED_LOGS)
        await uow.commit()
    return len(messages)


async def _authorized(
    uow: UnitOfWork, pass_type_id: str, serial: str, authorization: str | None
) -> WalletPass:
    """Return the pass if the header carries its token; unknown serials look like bad tokens."""
    found = await uow.passes.get_with_holder(serial) if len(serial) <= 64 else None
    return _check_token(found, pass_type_id, authorization)[0]


def _check_token(
    found: tuple[WalletPass, Program, Customer] | None,
    pass_type_id: str,
    authorization: str | None,
) -> tuple[WalletPass, Program, Customer]:
    given = ""
    if authorization is not None and authorization.startswith(AUTH_SCHEME):
        given = authorization[len(AUTH_SCHEME) :].strip()
    expected = found[0].authentication_token if found is not None else _DECOY_TOKEN
    # Compared in constant time, and always compared, so a miss takes as long as a hit.
    matches = hmac.compare_digest(given.encode(), expected.encode())
    # The token is bound to (pass type, serial): another pass's valid token opens nothing.
    if found is None or not matches or not given:
        raise Unauthorized("missing or wrong ApplePass token for this pass", reason="bad_token")
    if found[1].apple.pass_type_identifier != pass_type_id:
        raise Unauthorized("missing or wrong ApplePass token for this pass", reason="bad_token")
    return found


def _install_event(event_type: str, wallet_pass: WalletPass, now: datetime) -> DomainEvent:
    return DomainEvent(
        type=event_type,
        subject=wallet_pass.customer_id,
        data={
            "customer_id": wallet_pass.customer_id,
            "program": wallet_pass.program_id,
            "serial": wallet_pass.serial,
            "platform": "apple",
        },
        occurred_at=now,
    )
