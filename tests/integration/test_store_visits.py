"""Geofence storage: one accepted visit under concurrency, counters that outlive the process."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from walletsvc.bootstrap import build_container
from walletsvc.domain.customer import Consents
from walletsvc.domain.event import EventType
from walletsvc.domain.geofence import AcceptedEvent, GeofenceClaim, StoreEventType
from walletsvc.domain.store import Store
from walletsvc.services.api_keys import bootstrap_principal
from walletsvc.services.customers import CustomerDraft, upsert_customer
from walletsvc.services.geofence import api_reporter, record_geofence_claim
from walletsvc.services.stores import add_store

BERLIN_MITTE = Store(
    id="berlin-mitte",
    program_id="demo",
    name="Berlin Mitte",
    latitude=52.5200,
    longitude=13.4050,
    radius_m=100.0,
)


async def visitor(container, external_id: str = "app-user-1", location: bool = True) -> str:
    """Add the store (once) and a customer; return the customer's id."""
    ctx = container.ctx
    async with ctx.uow() as uow:
        known = await uow.stores.get(BERLIN_MITTE.id)
    if known is None:
        await add_store(ctx, bootstrap_principal(), BERLIN_MITTE)
    customer, _ = await upsert_customer(
        ctx,
        bootstrap_principal(),
        CustomerDraft(external_id=external_id, consents=Consents(location=location)),
    )
    return customer.id


def enter(customer_id: str, event_id: str, minutes_ago: float = 1.0) -> GeofenceClaim:
    return GeofenceClaim(
        event_id=event_id,
        store_id=BERLIN_MITTE.id,
        type="enter",
        latitude=52.520311,
        longitude=13.405122,
        accuracy_m=15.0,
        occurred_at=datetime.now(UTC) - timedelta(minutes=minutes_ago),
        customer_id=customer_id,
    )


async def count(container, sql: str) -> int:
    async with container.engine.connect() as connection:
        return int((await connection.execute(text(sql))).scalar_one())


async def enter_at_once(container, customer_id: str, copies: int) -> list[str]:
    reporter = api_reporter(bootstrap_principal())
    verdicts = await asyncio.gather(
        *(
            record_geofence_claim(container.ctx, reporter, enter(customer_id, f"evt-{n}"))
            for n in range(copies)
        )
    )
    return sorted(verdict.reason for verdict in verdicts)


async def test_store_event_types_are_the_geofence_verdicts_types():
    assert (EventType.STORE_ENTERED, EventType.STORE_DWELLED, EventType.STORE_EXITED) == (
        StoreEventType.STORE_ENTERED,
        StoreEventType.STORE_DWELLED,
        StoreEventType.STORE_EXITED,
    )


async def test_a_burst_of_enters_is_accepted_once(container):
    customer_id = await visitor(container)
    assert await enter_at_once(container, customer_id, 5) == ["accepted"] + ["debounced"] * 4
    assert await count(container, "SELECT count(*) FROM store_visits") == 1


@pytest.mark.postgres
@pytest.mark.parametrize("earlier_visit", [False, True], ids=["first-visit", "returning"])
async def test_concurrent_enters_for_one_customer_and_store_are_accepted_once(
    container, earlier_visit
):
    customer_id = await visitor(container)
    if earlier_visit:
        # A row exists, so the enters queue on its lock rather than on the primary key.
        long_ago = datetime.now(UTC) - timedelta(minutes=30)
        async with container.ctx.uow() as uow:
            await uow.store_visits.upsert(
                customer_id, BERLIN_MITTE.id, AcceptedEvent("exit", long_ago), None, long_ago
            )
            await uow.commit()
    assert await enter_at_once(container, customer_id, 20) == ["accepted"] + ["debounced"] * 19
    entered = await count(
        container, f"SELECT count(*) FROM outbox WHERE type = '{EventType.STORE_ENTERED}'"
    )
    assert entered == 1
    assert await count(container, "SELECT count(*) FROM store_visits") == 1


async def test_the_last_visit_reads_back_in_utc(container):
    customer_id = await visitor(container)
    occurred = datetime(2026, 11, 22, 11, 0, tzinfo=UTC)
    started = occurred - timedelta(minutes=20)
    async with container.ctx.uow() as uow:
        await uow.store_visits.upsert(
            customer_id, BERLIN_MITTE.id, AcceptedEvent("dwell", occurred, started), 1200, occurred
        )
        await uow.commit()
    async with container.ctx.uow() as uow:
        last = await uow.store_visits.get_for_update(customer_id, BERLIN_MITTE.id)
        assert await uow.store_visits.get_for_update(customer_id, "elsewhere") is None
    assert last == AcceptedEvent("dwell", occurred, started)
    assert last.occurred_at.utcoffset() == timedelta(0)


async def test_refusals_for_lack_of_consent_are_counted_across_restarts(container, make_settings):
    customer_id = await visitor(container, "no-location", location=False)
    reporter = api_reporter(bootstrap_principal())
    for n in range(3):
        verdict = await record_geofence_claim(container.ctx, reporter, enter(customer_id, f"e{n}"))
        assert verdict.reason == "no_location_consent"
    # Another process on the same database sees the same count.
    restarted = build_container(make_settings())
    try:
        async with restarted.ctx.uow() as uow:
            total = await uow.geofence_refusals.total("demo", "no_location_consent")
    finally:
        await restarted.close()
    assert total == 3


async def test_geofence_settings_reach_the_policy_and_the_radar_webhook(make_settings):
    built = build_container(
        make_settings(
            geofence={
                "debounce_window_s": 120,
                "flap_window_s": 300,
                "max_accuracy_m": 50,
                "radar_token": "radar-token",
                "radar_min_confidence": 3,
            }
        )
    )
    try:
        policy = built.ctx.geofence
        assert (policy.debounce_window, policy.flap_window, policy.max_accuracy_m) == (
            timedelta(minutes=2),
            timedelta(minutes=5),
            50.0,
        )
        assert built.radar is not None and built.radar.policy.min_confidence == 3
    finally:
        await built.close()
    plain = build_container(make_settings())
    try:
        assert plain.radar is None
        assert plain.ctx.geofence.debounce_window == timedelta(minutes=10)
    finally:
        await plain.close()
