"""Radar's geofence webhook: signature over the signing id, freshness, trust, parsing."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from walletsvc.domain.customer import Consents
from walletsvc.domain.errors import (
    BadSignature,
    ConfigurationError,
    InvalidInput,
    StaleTimestamp,
    Unauthorized,
)
from walletsvc.domain.geofence import GeofencePolicy, verify_claim
from walletsvc.domain.store import Store
from walletsvc.intake.radar import RadarPolicy, RadarWebhook, SkipReason

TOKEN = "radar-token-current"
OLD_TOKEN = "radar-token-previous"
NOW = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
STORE = Store(
    id="berlin-mitte",
    program_id="coffee",
    name="Berlin Mitte",
    latitude=52.52,
    longitude=13.405,
    radius_m=100.0,
)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def radar_event(
    type: str = "user.entered_geofence", at: datetime = NOW, **changes: Any
) -> dict[str, Any]:
    """Return an event shaped like Radar's webhook sample, in Berlin Mitte."""
    event: dict[str, Any] = {
        "_id": "56db1f4613012711002229f6",
        "type": type,
        "createdAt": iso(at),
        "actualCreatedAt": iso(at),
        "live": True,
        "user": {"userId": "cus_1", "deviceId": "C305F2DB-56DC-404F-B6C1-BC52F0B680D8"},
        "geofence": {"tag": "store", "externalId": "berlin-mitte", "description": "Mitte"},
        "location": {"type": "Point", "coordinates": [13.4053, 52.5201]},
        "locationAccuracy": 12,
        "confidence": 3,
        "foreground": True,
        "replayed": False,
    }
    event.update(changes)
    return event


def body(*events: dict[str, Any], user: dict[str, Any] | None = None) -> bytes:
    document: dict[str, Any] = {"events": list(events)} if len(events) != 1 else {}
    if len(events) == 1:
        document["event"] = events[0]
    document["user"] = user or {"_id": "56db1f4613012711002229f4", "userId": "cus_1"}
    return json.dumps(document).encode()


def signed(signing_id: str = "sig-0001", token: str = TOKEN) -> dict[str, str]:
    digest = hmac.new(token.encode(), signing_id.encode(), hashlib.sha1).hexdigest()
    return {"X-Radar-Signing-Id": signing_id, "X-Radar-Signature": digest}


@pytest.fixture
def radar() -> RadarWebhook:
    return RadarWebhook([TOKEN, OLD_TOKEN])


# Signature


def test_a_good_signature_gives_back_the_signing_id(radar: RadarWebhook) -> None:
    assert radar.verify(signed("sig-0001")) == "sig-0001"


def test_header_names_are_matched_whatever_their_case(radar: RadarWebhook) -> None:
    headers = {key.lower(): value.upper() for key, value in signed("sig-0002").items()}
    headers["x-radar-signing-id"] = "sig-0002"
    assert radar.verify(headers) == "sig-0002"


def test_the_previous_token_is_accepted_during_rotation(radar: RadarWebhook) -> None:
    assert radar.verify(signed("sig-0003", token=OLD_TOKEN)) == "sig-0003"


def test_a_signature_from_an_unknown_token_is_refused(radar: RadarWebhook) -> None:
    with pytest.raises(BadSignature) as caught:
        radar.verify(signed(token="someone-else"))
    assert caught.value.reason == "bad_signature"
    assert isinstance(caught.value, Unauthorized)


def test_a_signature_for_another_signing_id_is_refused(radar: RadarWebhook) -> None:
    headers = signed("sig-0004")
    headers["X-Radar-Signing-Id"] = "sig-0005"
    with pytest.raises(BadSignature):
        radar.verify(headers)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Radar-Signing-Id": "sig-0001"},
        {"X-Radar-Signature": "0" * 40},
        {"X-Radar-Signing-Id": "sig-0001", "X-Radar-Signature": "not hex at all"},
        {"X-Radar-Signing-Id": "sig-0001", "X-Radar-Signature": "é" * 40},
        {"X-Radar-Signing-Id": "", "X-Radar-Signature": "0" * 40},
        {"X-Radar-Signing-Id": "sig with spaces", "X-Radar-Signature": "0" * 40},
        {"X-Radar-Signing-Id": "s" * 201, "X-Radar-Signature": "0" * 40},
    ],
)
def test_missing_or_malformed_headers_are_a_bad_signature(
    radar: RadarWebhook, headers: dict[str, str]
) -> None:
    with pytest.raises(BadSignature):
        radar.verify(headers)


def test_a_webhook_without_a_token_cannot_be_built() -> None:
    with pytest.raises(ConfigurationError):
        RadarWebhook(["", ""])


# Parsing


def test_a_valid_entry_becomes_one_claim(radar: RadarWebhook) -> None:
    batch = radar.parse(body(radar_event()), NOW)
    assert batch.skipped == ()
    (claim,) = batch.claims
    assert claim.event_id == "56db1f4613012711002229f6"
    assert claim.store_id == "berlin-mitte"
    assert claim.customer_id == "cus_1"
    assert claim.type == "enter"
    # GeoJSON order in, latitude and longitude out.
    assert (claim.latitude, claim.longitude) == (52.5201, 13.4053)
    assert claim.accuracy_m == 12.0
    assert claim.occurred_at == NOW
    assert claim.dwell_s is None


def test_a_parsed_claim_passes_verification_at_the_store(radar: RadarWebhook) -> None:
    (claim,) = radar.parse(body(radar_event()), NOW).claims
    verdict = verify_claim(claim, STORE, Consents(location=True), NOW, None, GeofencePolicy())
    assert verdict.accepted


def test_multiple_delivery_maps_all_three_geofence_types(radar: RadarWebhook) -> None:
    events = [
        radar_event("user.entered_geofence", _id="e1"),
        radar_event("user.dwelled_in_geofence", _id="e2"),
        radar_event("user.exited_geofence", _id="e3", duration=12.5),
    ]
    claims = radar.parse(body(*events), NOW).claims
    assert [(c.event_id, c.type) for c in claims] == [
        ("e1", "enter"),
        ("e2", "dwell"),
        ("e3", "exit"),
    ]
    assert claims[2].dwell_s == 750  # Radar's duration is in minutes


def test_the_user_of_the_request_stands_in_for_a_missing_event_user(radar: RadarWebhook) -> None:
    event = radar_event()
    del event["user"]
    (claim,) = radar.parse(body(event, user={"userId": "cus_9"}), NOW).claims
    assert claim.customer_id == "cus_9"


def test_an_unknown_event_type_is_skipped_not_refused(radar: RadarWebhook) -> None:
    # Radar sends place, region and trip events too; they carry nothing for stores.
    place = {"_id": "p1", "type": "user.entered_place", "createdAt": "whenever"}
    batch = radar.parse(body(place, radar_event(_id="g1")), NOW)
    assert [c.event_id for c in batch.claims] == ["g1"]
    (skipped,) = batch.skipped
    assert (skipped.event_id, skipped.radar_type, skipped.reason) == (
        "p1",
        "user.entered_place",
        "unsupported_type",
    )


@pytest.mark.parametrize(
    "created_by_radar",
    [NOW - timedelta(minutes=5, seconds=1), NOW - timedelta(days=2), NOW + timedelta(minutes=1)],
)
def test_a_stale_request_is_refused(radar: RadarWebhook, created_by_radar: datetime) -> None:
    event = radar_event(at=created_by_radar)
    with pytest.raises(StaleTimestamp) as caught:
        radar.parse(body(event), NOW)
    assert caught.value.reason == "stale_timestamp"
    assert isinstance(caught.value, Unauthorized)


def test_radar_clock_decides_freshness_not_the_phone(radar: RadarWebhook) -> None:
    old_on_phone = radar_event(createdAt=iso(NOW - timedelta(hours=1)))
    (claim,) = radar.parse(body(old_on_phone), NOW).claims
    # Not stale here; verify_claim judges the phone's time on its own.
    assert claim.occurred_at == NOW - timedelta(hours=1)


def test_without_actual_created_at_the_created_at_is_checked(radar: RadarWebhook) -> None:
    event = radar_event(at=NOW - timedelta(minutes=10))
    del event["actualCreatedAt"]
    with pytest.raises(StaleTimestamp):
        radar.parse(body(event), NOW)


def test_a_replayed_event_is_skipped(radar: RadarWebhook) -> None:
    replayed = radar_event(replayed=True, createdAt=iso(NOW - timedelta(hours=2)))
    batch = radar.parse(body(replayed), NOW)
    assert batch.claims == ()
    assert [s.reason for s in batch.skipped] == ["replayed"]


@pytest.mark.parametrize("confidence", [0, 1, None])
def test_low_confidence_is_skipped(radar: RadarWebhook, confidence: int | None) -> None:
    event = radar_event(confidence=confidence)
    if confidence is None:
        del event["confidence"]
    batch = radar.parse(body(event), NOW)
    assert batch.claims == ()
    (skipped,) = batch.skipped
    assert skipped.reason == SkipReason.LOW_CONFIDENCE == "low_confidence"


def test_the_minimum_confidence_is_configurable() -> None:
    lenient = RadarWebhook([TOKEN], RadarPolicy(min_confidence=1))
    assert len(lenient.parse(body(radar_event(confidence=1)), NOW).claims) == 1
    with pytest.raises(ConfigurationError):
        RadarPolicy(min_confidence=4)


@pytest.mark.parametrize(
    ("where", "flags", "detail"),
    [
        ("event_user", {"mocked": True}, "mocked"),
        ("event_user", {"proxy": True, "mocked": True}, "mocked,proxy"),
        ("request_user", {"jumped": True}, "jumped"),
        ("event", {"compromised": True}, "compromised"),
        ("request_user", {"blocked": True, "passed": False}, "blocked"),
    ],
)
def test_fraud_flagged_events_are_skipped_with_the_flags(
    radar: RadarWebhook, where: str, flags: dict[str, bool], detail: str
) -> None:
    event = radar_event()
    user: dict[str, Any] = {"userId": "cus_1"}
    if where == "event_user":
        event["user"]["fraud"] = flags
    elif where == "event":
        event["fraud"] = flags
    else:
        user["fraud"] = flags
    batch = radar.parse(body(event, user=user), NOW)
    assert batch.claims == ()
    (skipped,) = batch.skipped
    assert (skipped.reason, skipped.detail) == ("fraud_flagged", detail)


def test_clean_fraud_flags_let_the_event_through(radar: RadarWebhook) -> None:
    event = radar_event()
    event["user"]["fraud"] = {"verified": True, "passed": True, "mocked": False, "proxy": False}
    assert len(radar.parse(body(event), NOW).claims) == 1


def test_test_environment_events_are_skipped(radar: RadarWebhook) -> None:
    batch = radar.parse(body(radar_event(live=False)), NOW)
    assert [s.reason for s in batch.skipped] == ["test_event"]
    allowing = RadarWebhook([TOKEN], RadarPolicy(live_only=False))
    assert len(allowing.parse(body(radar_event(live=False)), NOW).claims) == 1


def test_geofences_that_are_not_stores_are_skipped(radar: RadarWebhook) -> None:
    not_a_store_id = radar_event(geofence={"tag": "store", "externalId": "Store #123"})
    assert [s.reason for s in radar.parse(body(not_a_store_id), NOW).skipped] == ["other_geofence"]
    only_stores = RadarWebhook([TOKEN], RadarPolicy(store_tag="store"))
    parking = radar_event(geofence={"tag": "parking", "externalId": "berlin-mitte"})
    assert [s.reason for s in only_stores.parse(body(parking), NOW).skipped] == ["other_geofence"]


def test_an_event_without_a_user_id_is_skipped(radar: RadarWebhook) -> None:
    event = radar_event(user={"deviceId": "C305F2DB"})
    batch = radar.parse(body(event, user={"deviceId": "C305F2DB"}), NOW)
    assert [s.reason for s in batch.skipped] == ["no_customer"]


def test_skipped_events_carry_no_coordinates(radar: RadarWebhook) -> None:
    (skipped,) = radar.parse(body(radar_event(confidence=1)), NOW).skipped
    assert "52.5" not in repr(skipped) and "13.4" not in repr(skipped)


def change(path: str, value: Any) -> bytes:
    """Return a one-event body with `path` (dotted, in the event) set, or deleted if ...."""
    event = copy.deepcopy(radar_event())
    *parents, last = path.split(".")
    target = event
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return body(event)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"not json", "body"),
        (b"\xff\xfe", "body"),
        (b"[1, 2]", "body"),
        (b'{"user": {}}', "events"),
        (b'{"events": {"_id": "x"}}', "events"),
        (b'{"events": [42]}', "events[0]"),
        (
            b'{"event": {"_id": "x", "type": "user.entered_geofence", "locationAccuracy": NaN}}',
            "body",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "body"),
        (change("_id", ...), "events[0]._id"),
        (change("_id", ""), "events[0]._id"),
        (change("type", 7), "events[0].type"),
        (change("createdAt", ...), "events[0].createdAt"),
        (change("createdAt", "yesterday"), "events[0].createdAt"),
        (change("createdAt", "2025-06-02T10:00:00"), "events[0].createdAt"),
        (change("actualCreatedAt", 1717322400), "events[0].actualCreatedAt"),
        (change("replayed", "no"), "events[0].replayed"),
        (change("geofence", ...), "events[0].geofence"),
        (change("geofence", "berlin-mitte"), "events[0].geofence"),
        (change("user.fraud", "none"), "events[0].user.fraud"),
        (change("confidence", "high"), "events[0].confidence"),
        (change("confidence", True), "events[0].confidence"),
        (change("confidence", 7), "events[0].confidence"),
        (change("location", ...), "events[0].location.coordinates"),
        (change("location.coordinates", [13.4]), "events[0].location.coordinates"),
        (change("location.coordinates", ["13.4", "52.5"]), "events[0].location.coordinates"),
        (change("location.coordinates", [13.4, 10**400]), "events[0].location.coordinates"),
        (change("location.coordinates", [13.4, 95.0]), "events[0].location.coordinates"),
        (change("location.coordinates", [200.0, 52.5]), "events[0].location.coordinates"),
        (change("locationAccuracy", ...), "events[0].locationAccuracy"),
        (change("locationAccuracy", 0), "events[0].locationAccuracy"),
        (change("locationAccuracy", True), "events[0].locationAccuracy"),
        (change("user.userId", "x" * 200), "events[0].user.userId"),
    ],
)
def test_malformed_bodies_are_refused_naming_the_field(
    radar: RadarWebhook, raw: bytes, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        radar.parse(raw, NOW)
    assert caught.value.field == field
    assert caught.value.reason == "malformed_webhook"


def test_a_malformed_duration_on_an_exit_is_refused(radar: RadarWebhook) -> None:
    for duration in (-1, "ten", 1e308):
        with pytest.raises(InvalidInput) as caught:
            radar.parse(body(radar_event("user.exited_geofence", duration=duration)), NOW)
        assert caught.value.field == "events[0].duration"
