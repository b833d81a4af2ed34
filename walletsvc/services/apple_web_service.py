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
from walletsvc.domain.errors import Unauthorized
from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.domain.wallet_pass import WalletPass
from walletsvc.services.context import ServiceContext
from walletsvc.services.passes import PkpassBundle, pkpass_for_serial
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
    async with ctx.uow() as uow:
        wallet_pass = await _authorized(uow, pass_type_id, serial, authorization)
    assert wallet_pass.last_changed_at is not None
    last_modified = wallet_pass.last_changed_at.replace(microsecond=0)
    if if_modified_since is not None and last_modified <= if_modified_since:
        return LatestPass(None, last_modified)
    bundle = await pkpass_for_serial(ctx, serial)
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
    given = ""
    if authorization is not None and authorization.startswith(AUTH_SCHEME):
        given = authorization[len(AUTH_SCHEME) :].strip()
    wallet_pass = await uow.passes.get(serial) if len(serial) <= 64 else None
    program = await uow.programs.get(wallet_pass.program_id) if wallet_pass else None
    # The token is bound to (pass type, serial): another pass's valid token opens nothing.
    bound = (
        wallet_pass is not None
        and program is not None
        and program.apple.pass_type_identifier == pass_type_id
    )
    expected = wallet_pass.authentication_token if wallet_pass is not None else _DECOY_TOKEN
    matches = hmac.compare_digest(given.encode(), expected.encode())
    if not (bound and matches and given) or wallet_pass is None:
        raise Unauthorized("missing or wrong ApplePass token for this pass", reason="bad_token")
    return wallet_pass


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
