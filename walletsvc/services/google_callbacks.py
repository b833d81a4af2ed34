"""Google Wallet's save and delete callbacks: verified, once per nonce, then counted.

A refused callback (forged, expired, replayed with other bytes, mis-addressed,
malformed) changes nothing but a counter of refusals per reason, and is logged as
`google.callback.rejected` with that reason only. The same callback again is a
redelivery: answered as the first time, applied once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from walletsvc.domain.errors import Conflict, DomainError, DuplicateKey, NotFound
from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.domain.google_wallet import CallbackEvent, GoogleCallback, serial_of
from walletsvc.services.context import ServiceContext

log = structlog.get_logger("walletsvc.google")

SOURCE = "google:callback"


class CallbackVerifier(Protocol):
    """Checks a callback's signature chain, address and expiry."""

    def verify(self, body: bytes, now: datetime) -> GoogleCallback: ...


@dataclass(frozen=True)
class CallbackOutcome:
    serial: str
    event: CallbackEvent
    installs: int
    repeated: bool = False  # a redelivery, answered as the first time


async def record_google_callback(
    ctx: ServiceContext, verifier: CallbackVerifier, issuer_id: str, body: bytes
) -> CallbackOutcome:
    """Act on a verified callback once: count the install or removal and emit its event."""
    now = ctx.clock()
    try:
        callback = verifier.verify(body, now)
        serial = serial_of(callback.object_id, issuer_id)
        if serial is None:
            raise NotFound("the object is not one of our issuer's", reason="unknown_object")
        return await _record(ctx, callback, serial, hashlib.sha256(body).hexdigest(), now)
    except DomainError as error:
        async with ctx.uow() as uow:
            await uow.callback_rejections.add(SOURCE, error.reason)
            await uow.commit()
        log.warning("google.callback.rejected", reason=error.reason)
        raise


async def _record(
    ctx: ServiceContext, callback: GoogleCallback, serial: str, fingerprint: str, now: datetime
) -> CallbackOutcome:
    try:
        async with ctx.uow() as uow:
            wallet_pass = await uow.passes.get(serial)
            if wallet_pass is None:
                raise NotFound("no such pass", reason="unknown_object")
            await uow.inbox.claim(SOURCE, callback.nonce, fingerprint, now, None)
            saved = callback.event is CallbackEvent.SAVE
            await uow.google_objects.count_install(serial, 1 if saved else -1)
            status = await uow.google_objects.status(serial)
            installs = status.installs if status is not None else 0
            await uow.inbox.respond(
                SOURCE, callback.nonce, {"serial": serial, "event": callback.event.value}, now
            )
            await uow.outbox.add(
                DomainEvent(
                    type=EventType.PASS_INSTALLED if saved else EventType.PASS_REMOVED,
                    subject=wallet_pass.customer_id,
                    data={
                        "customer_id": wallet_pass.customer_id,
                        "program": wallet_pass.program_id,
                        "serial": serial,
                        "platform": "google",
                    },
                    occurred_at=now,
                )
            )
            await uow.commit()
    except DuplicateKey as error:
        return await _repeated(ctx, callback, serial, fingerprint, error)
    log.info("google.callback.accepted", serial=serial, kind=callback.event.value)
    return CallbackOutcome(serial, callback.event, installs)


async def _repeated(
    ctx: ServiceContext,
    callback: GoogleCallback,
    serial: str,
    fingerprint: str,
    error: DuplicateKey,
) -> CallbackOutcome:
    """Answer a nonce seen before: the same bytes again are Google redelivering.

    Google may send a callback more than once; it is answered as the first time and
    applied once. Other bytes under a used nonce are not a redelivery: refused.
    """
    async with ctx.uow() as uow:
        first = await uow.inbox.get(SOURCE, callback.nonce)
        status = await uow.google_objects.status(serial)
    if first is None or first.fingerprint != fingerprint:
        raise Conflict(
            "this callback's nonce was seen before with another message",
            reason="callback_replayed",
        ) from error
    log.info("google.callback.repeated", serial=serial, kind=callback.event.value)
    installs = status.installs if status is not None else 0
    return CallbackOutcome(serial, callback.event, installs, repeated=True)
