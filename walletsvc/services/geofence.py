"""Record a geofence claim: judge it once and keep only what an accepted visit needs.

A claim is judged by `verify_claim` against the store, the customer's consent and
the last accepted event of the same customer at the same store, read under a row
lock. With consent, one transaction writes the inbox row (a repeated event id
answers as the first time), and for an accepted claim the new last event and one
outbox event carrying the store id and timings. Coordinates are dropped once judged:
no row and no event holds them, and the inbox fingerprint leaves them out.

Without location consent nothing is kept but a count per program and reason: no
inbox row, no event id, no time. A repeat of such a claim is judged again and gets
the same answer, since the refusal depends only on the consent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from walletsvc.domain.api_key import Principal, Scope
from walletsvc.domain.customer import Customer
from walletsvc.domain.errors import Conflict, DuplicateKey, NotFound
from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.domain.geofence import (
    AcceptedEvent,
    GeofenceClaim,
    GeofenceEventKind,
    Reason,
    Verdict,
    validate_claim,
    verify_claim,
)
from walletsvc.domain.store import Store
from walletsvc.services.context import ServiceContext
from walletsvc.services.ports import InboxRecord, UnitOfWork

EVENT_TYPE = {
    GeofenceEventKind.ENTER: EventType.STORE_ENTERED,
    GeofenceEventKind.DWELL: EventType.STORE_DWELLED,
    GeofenceEventKind.EXIT: EventType.STORE_EXITED,
}
# A clash means a copy of the claim, or the first claim of the same customer at the
# same store, committed first; the next attempt sees what it wrote.
ATTEMPTS = 3


@dataclass(frozen=True)
class Reporter:
    """Who reports claims: an API key, or a provider whose webhook was verified."""

    source: str  # the inbox source: event ids are unique per source and program
    principal: Principal | None = None  # None: a provider, which may name any program's store
    by_external_id: bool = False  # a customer id may also be the brand's own id


def api_reporter(principal: Principal) -> Reporter:
    """Return the reporter for claims sent to the geofence API with `principal`'s key."""
    return Reporter(source="geofence:api", principal=principal)


def provider_reporter(slug: str) -> Reporter:
    """Return the reporter for claims from a provider's verified webhook (`radar`)."""
    # The brand's app tells the provider who the user is, mostly by the brand's own id.
    return Reporter(source=f"geofence:{slug}", by_external_id=True)


async def record_geofence_claim(
    ctx: ServiceContext, reporter: Reporter, claim: GeofenceClaim
) -> Verdict:
    """Judge a claim once and return the verdict; a repeated event id answers as the first."""
    if reporter.principal is not None:
        reporter.principal.require(Scope.GEOFENCE_WRITE)
    validate_claim(claim)
    # One zone, so equal instants look equal in fingerprints, rows and events.
    claim = replace(claim, occurred_at=claim.occurred_at.astimezone(UTC))
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await _record_once(ctx, reporter, claim)
        except DuplicateKey:
            if attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


async def _record_once(ctx: ServiceContext, reporter: Reporter, claim: GeofenceClaim) -> Verdict:
    now = ctx.clock()
    async with ctx.uow() as uow:
        store = await _store(uow, reporter, claim.store_id)
        key = f"{store.program_id}:{claim.event_id}"
        seen = await uow.inbox.get(reporter.source, key)
        if seen is not None:
            return _answer_of(seen, claim)
        customer = await _holder(uow, reporter, store, claim)
        # Locked, and read again under the lock: a consent withdrawn in a transaction
        # that commits first is seen here, and one that commits later waits for this
        # claim and then drops what it wrote (services/customers.py).
        customer = await uow.customers.get_for_update(customer.id) or customer
        if not customer.consents.location:
            await uow.geofence_refusals.add(store.program_id, Reason.NO_LOCATION_CONSENT)
            await uow.commit()
            return verify_claim(claim, store, customer.consents, now, None, ctx.geofence)
        await uow.inbox.claim(reporter.source, key, _fingerprint(claim), now, None)
        last = await uow.store_visits.get_for_update(customer.id, store.id)
        verdict = verify_claim(claim, store, customer.consents, now, last, ctx.geofence)
        if verdict.accepted:
            await _keep(uow, reporter, customer, store, claim, verdict, now)
        await uow.inbox.respond(reporter.source, key, _response_of(verdict), now)
        await uow.commit()
    return verdict


async def _store(uow: UnitOfWork, reporter: Reporter, store_id: str) -> Store:
    store = await uow.stores.get(store_id)
    bound = reporter.principal.program_id if reporter.principal else None
    # Another program's store looks exactly like a missing one to a bound key.
    if store is None or bound not in (None, store.program_id):
        raise NotFound("no such store", reason="unknown_store", field="store_id")
    return store


async def _holder(
    uow: UnitOfWork, reporter: Reporter, store: Store, claim: GeofenceClaim
) -> Customer:
    """Return the customer the claim names, within the store's program."""
    customer: Customer | None = None
    field = "customer_id"
    if claim.pass_serial is not None:
        field = "pass_serial"
        wallet_pass = await uow.passes.get(claim.pass_serial)
        if wallet_pass is not None and wallet_pass.program_id == store.program_id:
            customer = await uow.customers.get(wallet_pass.customer_id)
    elif claim.customer_id is not None:
        customer = await uow.customers.get(claim.customer_id)
        not_ours = customer is None or customer.program_id != store.program_id
        if not_ours and reporter.by_external_id:
            customer = await uow.customers.get_by_external_id(store.program_id, claim.customer_id)
    if customer is None or customer.program_id != store.program_id:
        raise NotFound(
            "no such customer in the store's program", reason="unknown_customer", field=field
        )
    return customer


async def _keep(
    uow: UnitOfWork,
    reporter: Reporter,
    customer: Customer,
    store: Store,
    claim: GeofenceClaim,
    verdict: Verdict,
    now: datetime,
) -> None:
    """Write the accepted claim as the last event and its outbox event: no coordinates."""
    kind = GeofenceEventKind(claim.type)
    await uow.store_visits.upsert(
        customer.id,
        store.id,
        AcceptedEvent(claim.type, claim.occurred_at, verdict.visit_started_at),
        verdict.dwell_s,
        now,
    )
    await uow.outbox.add(
        DomainEvent(
            type=EVENT_TYPE[kind],
            subject=customer.id,
            data={
                "customer_id": customer.id,
                "program": store.program_id,
                "store_id": store.id,
                "type": kind.value,
                "event_id": claim.event_id,
                "source": reporter.source,
                "occurred_at": claim.occurred_at.isoformat(),
                "dwell_s": verdict.dwell_s,
                "dwell_source": verdict.dwell_source,
            },
            occurred_at=claim.occurred_at,
        )
    )


def _fingerprint(claim: GeofenceClaim) -> str:
    """Return a digest of the claim that tells a retry from a reused event id.

    Coordinates and accuracy are left out: near a known store they are few enough
    to be found again from a digest of them.
    """
    canonical = json.dumps(
        {
            "store_id": claim.store_id,
            "customer_id": claim.customer_id,
            "pass_serial": claim.pass_serial,
            "type": claim.type,
            "occurred_at": claim.occurred_at.isoformat(),
            "dwell_s": claim.dwell_s,
        },
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _response_of(verdict: Verdict) -> dict[str, Any]:
    return {
        "accepted": verdict.accepted,
        "reason": str(verdict.reason),
        "store_id": verdict.store_id,
        "occurred_at": verdict.occurred_at.isoformat(),
        "event_type": verdict.event_type,
        "dwell_s": verdict.dwell_s,
        "dwell_source": verdict.dwell_source,
        "visit_started_at": _iso(verdict.visit_started_at),
    }


def _answer_of(seen: InboxRecord, claim: GeofenceClaim) -> Verdict:
    if seen.fingerprint != _fingerprint(claim):
        raise Conflict(
            "this event_id was already used for a different event", reason="event_id_reused"
        )
    response = seen.response
    if response is None:  # pragma: no cover - the answer is written with the claim
        raise Conflict("the event is being recorded; retry", reason="event_in_progress")
    started = response.get("visit_started_at")
    return Verdict(
        accepted=bool(response["accepted"]),
        reason=str(response["reason"]),
        store_id=str(response["store_id"]),
        occurred_at=datetime.fromisoformat(response["occurred_at"]),
        event_type=response.get("event_type"),
        dwell_s=response.get("dwell_s"),
        dwell_source=response.get("dwell_source"),
        visit_started_at=datetime.fromisoformat(started) if started else None,
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
