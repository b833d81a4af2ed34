"""Geofence events from the brand's backend and from Radar: a store visit counts once, and
no coordinates are kept.

The store is Berlin Mitte (52.5200, 13.4050) with a 100 m radius; the phone reports
from 35 m north of it (52.520311, 13.405122), and from Alexanderplatz (about 600 m
away) when it should be outside.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import EXTERNAL_DATABASE, empty_all_tables
from tests.e2e.test_access import make_key, make_program
from tests.helpers import issue_loyalty
from walletsvc.bootstrap import build_container, prepare_database
from walletsvc.domain.event import EventType
from walletsvc.storage.tables import metadata
from walletsvc.web.app import create_app

STORE = "berlin-mitte"
INSIDE = (52.520311, 13.405122)
ALEXANDERPLATZ = (52.521918, 13.413215)
RADAR_TOKEN = "radar-test-token-current-0123456789"
OLD_RADAR_TOKEN = "radar-test-token-previous-0123456789"
STORE_EVENTS = (EventType.STORE_ENTERED, EventType.STORE_DWELLED, EventType.STORE_EXITED)


@pytest.fixture
async def container(make_settings):
    """The wired service with Radar's webhook configured (two tokens, as in a rotation)."""
    settings = make_settings(
        geofence={"radar_token": RADAR_TOKEN, "radar_previous_token": OLD_RADAR_TOKEN}
    )
    built = build_container(settings)
    await prepare_database(built)
    try:
        yield built
    finally:
        if EXTERNAL_DATABASE is not None:
            await empty_all_tables(built)
        await built.close()


async def add_store(client, headers, program="demo", store_id=STORE):
    response = await client.post(
        "/api/v1/stores",
        json={
            "id": store_id,
            "program": program,
            "name": "Berlin Mitte",
            "latitude": 52.5200,
            "longitude": 13.4050,
            "radius_m": 100,
        },
        headers=headers,
    )
    assert response.status == 201, await response.text()


async def add_customer(client, headers, external_id="app-user-1", location=True, program=None):
    body: dict[str, Any] = {"external_id": external_id, "consents": {"location": location}}
    if program is not None:
        body["program"] = program
    response = await client.post("/api/v1/customers", json=body, headers=headers)
    assert response.status in (200, 201), await response.text()
    customer_id: str = (await response.json())["id"]
    return customer_id


def ago(minutes: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


async def report(client, headers, customer_id=None, **fields) -> tuple[int, dict[str, Any]]:
    """Post one geofence event: an enter from inside the store a minute ago unless told."""
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "store_id": STORE,
        "type": "enter",
        "latitude": INSIDE[0],
        "longitude": INSIDE[1],
        "accuracy_m": 15,
        "occurred_at": ago(1),
    }
    if customer_id is not None:
        body["customer_id"] = customer_id
    body.update(fields)
    response = await client.post("/api/v1/geofence-events", json=body, headers=headers)
    return response.status, await response.json()


async def rows(container, sql: str, **params: Any) -> list[Any]:
    async with container.engine.connect() as connection:
        return list((await connection.execute(text(sql), params)).all())


async def store_events(container) -> list[Any]:
    return await rows(
        container,
        "SELECT type, data FROM outbox WHERE type IN (:a, :b, :c) ORDER BY seq",
        a=STORE_EVENTS[0],
        b=STORE_EVENTS[1],
        c=STORE_EVENTS[2],
    )


def data_of(row: Any) -> dict[str, Any]:
    return row.data if isinstance(row.data, dict) else json.loads(row.data)


@pytest.fixture
async def visitor(client, admin) -> str:
    """A customer who allowed location use, and the store."""
    await add_store(client, admin)
    return await add_customer(client, admin)


# The brand's backend: POST /api/v1/geofence-events


async def test_an_enter_inside_the_store_is_accepted(client, admin, container, visitor):
    status, answer = await report(client, admin, visitor)
    assert status == 202, answer
    assert answer == {"accepted": True, "reason": "accepted", "store_id": STORE, "dwell_s": None}
    (event,) = await store_events(container)
    assert event.type == EventType.STORE_ENTERED
    assert data_of(event)["store_id"] == STORE


async def test_a_point_outside_the_store_is_refused(client, admin, container, visitor):
    status, answer = await report(
        client, admin, visitor, latitude=ALEXANDERPLATZ[0], longitude=ALEXANDERPLATZ[1]
    )
    assert status == 202
    assert (answer["accepted"], answer["reason"]) == (False, "outside_store")
    assert await store_events(container) == []


async def test_an_old_event_is_refused_as_stale(client, admin, container, visitor):
    status, answer = await report(client, admin, visitor, occurred_at=ago(10))
    assert (status, answer["accepted"], answer["reason"]) == (202, False, "stale")
    assert await store_events(container) == []


async def test_without_location_consent_nothing_is_stored_but_the_counter(client, admin, container):
    await add_store(client, admin)
    customer = await add_customer(client, admin, "no-location", location=False)
    event_id = "evt-no-consent"
    first = await report(client, admin, customer, event_id=event_id)
    again = await report(client, admin, customer, event_id=event_id)
    assert (
        first
        == again
        == (
            202,
            {
                "accepted": False,
                "reason": "no_location_consent",
                "store_id": STORE,
                "dwell_s": None,
            },
        )
    )
    assert await rows(container, "SELECT * FROM inbox") == []
    assert await rows(container, "SELECT * FROM store_visits") == []
    assert await store_events(container) == []
    # Each refusal counts; nothing says whose, where or when.
    assert [tuple(row) for row in await rows(container, "SELECT * FROM geofence_refusals")] == [
        ("demo", "no_location_consent", 2)
    ]


async def test_flapping_at_the_edge_of_the_circle_is_debounced(client, admin, container, visitor):
    entered = await report(client, admin, visitor, type="enter", occurred_at=ago(4))
    left = await report(client, admin, visitor, type="exit", occurred_at=ago(3.5))
    back = await report(client, admin, visitor, type="enter", occurred_at=ago(3))
    again = await report(client, admin, visitor, type="exit", occurred_at=ago(2.5))
    assert [answer["reason"] for _, answer in (entered, left, back, again)] == [
        "accepted",
        "accepted",
        "debounced",
        "debounced",
    ]
    assert [row.type for row in await store_events(container)] == [
        EventType.STORE_ENTERED,
        EventType.STORE_EXITED,
    ]


async def test_a_second_enter_while_inside_is_debounced(client, admin, visitor):
    assert (await report(client, admin, visitor, occurred_at=ago(3)))[1]["accepted"]
    _, answer = await report(client, admin, visitor, occurred_at=ago(2))
    assert (answer["accepted"], answer["reason"]) == (False, "debounced")


async def test_dwell_is_computed_from_the_enter_and_the_exit(client, admin, container, visitor):
    await report(client, admin, visitor, type="enter", occurred_at=ago(4))
    # The phone's own figure loses to the visit this service saw begin.
    status, answer = await report(
        client, admin, visitor, type="exit", occurred_at=ago(1), dwell_s=9_999
    )
    assert status == 202
    assert answer["accepted"] and 179 <= answer["dwell_s"] <= 181
    exited = (await store_events(container))[-1]
    assert exited.type == EventType.STORE_EXITED
    data = data_of(exited)
    assert (data["dwell_s"], data["dwell_source"]) == (answer["dwell_s"], "computed")
    (visit,) = await rows(container, "SELECT type, dwell_s FROM store_visits")
    assert tuple(visit) == ("exit", answer["dwell_s"])


async def test_a_reported_dwell_counts_when_the_enter_was_not_seen(client, admin, visitor):
    status, answer = await report(client, admin, visitor, type="dwell", dwell_s=600)
    assert (status, answer["accepted"], answer["dwell_s"]) == (202, True, 600)


async def test_the_same_event_id_twice_answers_the_same_and_counts_once(
    client, admin, container, visitor
):
    fields = {"event_id": "evt-1", "occurred_at": ago(1)}
    first = await report(client, admin, visitor, **fields)
    again = await report(client, admin, visitor, **fields)
    assert first == again
    assert first[1]["accepted"] is True
    assert len(await store_events(container)) == 1
    reused = await report(client, admin, visitor, event_id="evt-1", type="exit")
    assert reused[0] == 409 and reused[1]["reason"] == "event_id_reused"


async def test_copies_arriving_at_once_count_once(client, admin, container, visitor):
    fields = {"event_id": "evt-burst", "occurred_at": ago(1)}
    answers = await asyncio.gather(*(report(client, admin, visitor, **fields) for _ in range(8)))
    expected = {"accepted": True, "reason": "accepted", "store_id": STORE, "dwell_s": None}
    assert answers == [(202, expected)] * 8
    assert len(await store_events(container)) == 1


async def test_events_carry_the_store_id_and_no_coordinates_are_kept(
    client, admin, container, visitor
):
    await report(client, admin, visitor, type="enter", occurred_at=ago(3))
    await report(client, admin, visitor, type="exit", occurred_at=ago(2))
    events = await store_events(container)
    assert len(events) == 2
    for event in events:
        data = data_of(event)
        assert data["store_id"] == STORE
        assert not {"latitude", "longitude", "accuracy_m", "location"} & set(data)
    # Not in the outbox, the inbox, the visits or anywhere else.
    for table in metadata.sorted_tables:
        for row in await rows(container, f"SELECT * FROM {table.name}"):
            dumped = str(tuple(row))
            assert "52.520311" not in dumped and "13.405122" not in dumped, table.name


async def test_a_pass_serial_names_its_holder(client, admin, container, visitor):
    issued = await issue_loyalty(client, admin, "app-user-1")
    status, answer = await report(client, admin, pass_serial=issued["serial"])
    assert (status, answer["accepted"]) == (202, True)
    (event,) = await store_events(container)
    assert data_of(event)["customer_id"] == visitor


async def test_unknown_stores_and_customers_are_404(client, admin, visitor):
    status, problem = await report(client, admin, visitor, store_id="nowhere")
    assert (status, problem["reason"]) == (404, "unknown_store")
    status, problem = await report(client, admin, "cus_does_not_exist")
    assert (status, problem["reason"]) == (404, "unknown_customer")


async def test_a_key_of_another_program_gets_404(client, admin, visitor):
    await make_program(client, admin, "other")
    other_key = await make_key(client, admin, ["geofence:write"], program="other")
    status, problem = await report(client, other_key, visitor)
    assert (status, problem["reason"]) == (404, "unknown_store")
    # Its own store, but a customer of the demo program: still nobody it knows.
    await add_store(client, admin, program="other", store_id="other-mitte")
    status, problem = await report(client, other_key, visitor, store_id="other-mitte")
    assert (status, problem["reason"]) == (404, "unknown_customer")
    own = await add_customer(client, admin, "other-user", program="other")
    status, answer = await report(client, other_key, own, store_id="other-mitte")
    assert (status, answer["accepted"]) == (202, True)


async def test_a_key_without_the_geofence_scope_is_forbidden(client, admin, visitor):
    reader = await make_key(client, admin, ["customers:read"])
    status, problem = await report(client, reader, visitor)
    assert (status, problem["reason"]) == (403, "missing_scope")


async def test_malformed_events_are_refused_naming_the_field(client, admin, visitor):
    status, problem = await report(client, admin, visitor, latitude=91)
    assert (status, problem["field"]) == (422, "latitude")
    status, problem = await report(client, admin, visitor, occurred_at="2026-01-01T10:00:00")
    assert (status, problem["field"]) == (422, "occurred_at")
    status, problem = await report(client, admin)  # neither customer_id nor pass_serial
    assert (status, problem["field"]) == (422, "customer_id")
    status, problem = await report(client, admin, visitor, pass_serial="0" * 26)
    assert status == 422


# Radar: POST /webhooks/geofence/radar


def radar_event(user_id: str, event_id: str | None = None, **changes: Any) -> dict[str, Any]:
    """Return a geofence event shaped like Radar's webhook sample, from inside the store."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event: dict[str, Any] = {
        "_id": event_id or uuid.uuid4().hex[:24],
        "type": "user.entered_geofence",
        "createdAt": now,
        "actualCreatedAt": now,
        "live": True,
        "user": {"userId": user_id, "deviceId": "C305F2DB-56DC-404F-B6C1-BC52F0B680D8"},
        "geofence": {"tag": "store", "externalId": STORE, "description": "Berlin Mitte"},
        "location": {"type": "Point", "coordinates": [INSIDE[1], INSIDE[0]]},
        "locationAccuracy": 12,
        "confidence": 3,
        "replayed": False,
    }
    event.update(changes)
    return event


async def deliver(
    client, *events: dict[str, Any], signing_id: str | None = None, token: str = RADAR_TOKEN
) -> tuple[int, dict[str, Any]]:
    signing_id = signing_id or uuid.uuid4().hex
    signature = hmac.new(token.encode(), signing_id.encode(), hashlib.sha1).hexdigest()
    body = json.dumps({"events": list(events)}).encode()
    response = await client.post(
        "/webhooks/geofence/radar",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Radar-Signing-Id": signing_id,
            "X-Radar-Signature": signature,
        },
    )
    return response.status, await response.json()


async def test_a_signed_radar_delivery_is_accepted(client, container, visitor):
    status, summary = await deliver(client, radar_event(visitor))
    assert (status, summary) == (200, {"accepted": 1, "refused": 0, "skipped": 0, "reasons": {}})
    (event,) = await store_events(container)
    assert event.type == EventType.STORE_ENTERED
    assert data_of(event)["source"] == "geofence:radar"


async def test_radar_may_name_the_customer_by_the_brands_own_id(client, container, visitor):
    status, summary = await deliver(client, radar_event("app-user-1"))
    assert (status, summary["accepted"]) == (200, 1)
    (event,) = await store_events(container)
    assert data_of(event)["customer_id"] == visitor


async def test_a_bad_radar_signature_is_refused(client, container, visitor):
    status, problem = await deliver(client, radar_event(visitor), token="not-the-token")
    assert (status, problem["reason"]) == (401, "bad_signature")
    assert await rows(container, "SELECT * FROM inbox") == []
    assert await store_events(container) == []


async def test_the_previous_radar_token_still_works(client, visitor):
    status, summary = await deliver(client, radar_event(visitor), token=OLD_RADAR_TOKEN)
    assert (status, summary["accepted"]) == (200, 1)


async def test_a_radar_retry_gets_the_first_answer_and_a_reused_signature_is_refused(
    client, container, visitor
):
    event = radar_event(visitor)
    first = await deliver(client, event, signing_id="sig-1")
    retry = await deliver(client, event, signing_id="sig-1")
    assert first == retry == (200, {"accepted": 1, "refused": 0, "skipped": 0, "reasons": {}})
    # The body is not signed: other bytes under a used signing id are a replay.
    forged = await deliver(
        client, radar_event(visitor, type="user.exited_geofence"), signing_id="sig-1"
    )
    assert (forged[0], forged[1]["reason"]) == (401, "signature_reused")
    assert len(await store_events(container)) == 1


async def test_one_delivery_reports_each_event_on_its_own(client, admin, container, visitor):
    refuser = await add_customer(client, admin, "no-location", location=False)
    status, summary = await deliver(
        client,
        radar_event(visitor),
        radar_event(visitor, geofence={"externalId": "nowhere"}),
        radar_event(refuser),
        radar_event(visitor, confidence=1),
        radar_event(visitor, type="user.entered_place"),
    )
    assert status == 200
    assert summary == {
        "accepted": 1,
        "refused": 2,
        "skipped": 2,
        "reasons": {
            "low_confidence": 1,
            "no_location_consent": 1,
            "unknown_store": 1,
            "unsupported_type": 1,
        },
    }


async def test_a_stale_radar_delivery_is_refused(client, visitor):
    old = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    status, problem = await deliver(
        client, radar_event(visitor, createdAt=old, actualCreatedAt=old)
    )
    assert (status, problem["reason"]) == (401, "stale_timestamp")


async def test_without_a_token_the_radar_webhook_is_not_there(make_settings, aiohttp_client):
    built = build_container(make_settings())
    await prepare_database(built)
    try:
        client = await aiohttp_client(create_app(built))
        status, problem = await deliver(client, radar_event("cus_x"))
        assert (status, problem["reason"]) == (404, "provider_not_configured")
    finally:
        if EXTERNAL_DATABASE is not None:
            await empty_all_tables(built)
        await built.close()
