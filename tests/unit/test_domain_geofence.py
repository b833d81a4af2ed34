"""Geofence claims: consent, freshness, the point against the store, flapping, dwell."""

from __future__ import annotations

import math
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from geopy.distance import geodesic
from hypothesis import given, settings
from hypothesis import strategies as st

from walletsvc.domain.customer import Consents
from walletsvc.domain.errors import ConfigurationError, InvalidInput
from walletsvc.domain.geofence import (
    AcceptedEvent,
    GeofenceClaim,
    GeofencePolicy,
    Reason,
    StoreEventType,
    Verdict,
    verify_claim,
)
from walletsvc.domain.store import Store

CENTRE = (52.5200, 13.4050)  # Berlin Mitte
STORE = Store(
    id="berlin-mitte",
    program_id="coffee",
    name="Berlin Mitte",
    latitude=CENTRE[0],
    longitude=CENTRE[1],
    radius_m=100.0,
)
NOW = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
CONSENTED = Consents(location=True)
POLICY = GeofencePolicy()


def point(metres: float, bearing: float = 90.0) -> tuple[float, float]:
    """Return the point `metres` from the store centre along `bearing` (geodesic)."""
    destination = geodesic(meters=metres).destination(CENTRE, bearing=bearing)
    return destination.latitude, destination.longitude


AT_50_M = point(50)
AT_150_M = point(150, bearing=200)
AT_5_KM = point(5_000, bearing=315)


def claim(
    type: str = "enter",
    where: tuple[float, float] = AT_50_M,
    accuracy_m: float = 10.0,
    at: datetime = NOW,
    **changes: object,
) -> GeofenceClaim:
    base = GeofenceClaim(
        event_id=f"evt-{type}-{at.timestamp():.0f}",
        store_id=STORE.id,
        type=type,
        latitude=where[0],
        longitude=where[1],
        accuracy_m=accuracy_m,
        occurred_at=at,
        customer_id="cus_1",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def verify(
    c: GeofenceClaim,
    *,
    now: datetime = NOW,
    last: AcceptedEvent | None = None,
    consents: Consents = CONSENTED,
    policy: GeofencePolicy = POLICY,
) -> Verdict:
    return verify_claim(c, STORE, consents, now, last, policy)


def test_the_fixture_points_lie_where_their_names_say() -> None:
    for where, metres in ((AT_50_M, 50), (AT_150_M, 150), (AT_5_KM, 5_000)):
        assert geodesic(CENTRE, where).m == pytest.approx(metres, abs=0.01)


def test_enter_50_m_from_the_centre_is_accepted() -> None:
    verdict = verify(claim())
    assert verdict.accepted
    assert verdict.reason == Reason.ACCEPTED == "accepted"
    assert verdict.event_type == StoreEventType.STORE_ENTERED
    assert verdict.store_id == STORE.id
    assert verdict.occurred_at == NOW
    assert verdict.visit_started_at == NOW
    assert verdict.dwell_s is None


def test_without_location_consent_nothing_else_is_looked_at() -> None:
    # Coordinates and everything else are nonsense: the consent answer still comes first.
    nonsense = claim(where=(float("nan"), 999.0), accuracy_m=-1, type="teleport")
    verdict = verify(nonsense, consents=Consents(location=False, marketing=True))
    assert not verdict.accepted
    assert verdict.reason == "no_location_consent"
    assert verdict.event_type is None


@pytest.mark.parametrize(
    ("accuracy_m", "reason"),
    [
        (10.0, "outside_store"),  # 150 - 10 = 140 m > 100 m
        (45.0, "outside_store"),  # 105 m: still out
        (55.0, "accepted"),  # 95 m: the accuracy circle reaches into the store
        (200.0, "accepted"),  # the cap itself is allowed
    ],
)
def test_accuracy_can_tip_a_point_150_m_away_in_or_out(accuracy_m: float, reason: str) -> None:
    assert verify(claim(where=AT_150_M, accuracy_m=accuracy_m)).reason == reason


def test_a_point_5_km_away_is_outside_whatever_accuracy_within_the_cap() -> None:
    assert verify(claim(where=AT_5_KM, accuracy_m=200.0)).reason == "outside_store"


@pytest.mark.parametrize("where", [AT_50_M, AT_5_KM])
def test_accuracy_worse_than_the_cap_is_refused_as_inaccurate(where: tuple[float, float]) -> None:
    verdict = verify(claim(where=where, accuracy_m=200.5))
    assert (verdict.accepted, verdict.reason) == (False, "inaccurate")


def test_the_accuracy_cap_is_configurable() -> None:
    strict = GeofencePolicy(max_accuracy_m=50.0)
    assert verify(claim(accuracy_m=60.0), policy=strict).reason == "inaccurate"


@pytest.mark.parametrize(
    ("age", "reason"),
    [
        (timedelta(minutes=5), "accepted"),
        (timedelta(minutes=5, seconds=1), "stale"),
        (timedelta(days=3), "stale"),
        (timedelta(seconds=-30), "accepted"),  # within the clock skew
        (timedelta(seconds=-31), "stale"),  # from the future
        (timedelta(days=-1), "stale"),
    ],
)
def test_freshness_window_and_clock_skew(age: timedelta, reason: str) -> None:
    assert verify(claim(at=NOW - age)).reason == reason


def test_staleness_is_judged_before_the_point() -> None:
    assert verify(claim(where=AT_5_KM, at=NOW - timedelta(hours=1))).reason == "stale"


def run(
    sequence: list[tuple[str, float]], policy: GeofencePolicy = POLICY, **claim_changes: object
) -> list[Verdict]:
    """Verify events (type, minutes after NOW) in order, remembering the accepted ones."""
    last: AcceptedEvent | None = None
    verdicts = []
    for type, minutes in sequence:
        at = NOW + timedelta(minutes=minutes)
        verdict = verify(claim(type, at=at, **claim_changes), now=at, last=last, policy=policy)
        if verdict.accepted:
            last = AcceptedEvent(type, verdict.occurred_at, verdict.visit_started_at)
        verdicts.append(verdict)
    return verdicts


def reasons(verdicts: list[Verdict]) -> list[str]:
    return [verdict.reason for verdict in verdicts]


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        ([("enter", 0), ("enter", 5)], ["accepted", "debounced"]),
        ([("enter", 0), ("enter", 9.9)], ["accepted", "debounced"]),
        ([("enter", 0), ("enter", 10)], ["accepted", "accepted"]),
        ([("exit", 0), ("exit", 3)], ["accepted", "debounced"]),
        ([("exit", 0), ("exit", 12)], ["accepted", "accepted"]),
        ([("enter", 0), ("dwell", 5), ("dwell", 8)], ["accepted", "accepted", "debounced"]),
        ([("enter", 0), ("dwell", 5), ("enter", 7)], ["accepted", "accepted", "debounced"]),
        ([("enter", 0), ("exit", 1)], ["accepted", "accepted"]),
        # Flapping at the edge of the circle: in, out, in, out, in within minutes.
        (
            [("enter", 0), ("exit", 2), ("enter", 4), ("exit", 6), ("enter", 8), ("enter", 13)],
            ["accepted", "accepted", "debounced", "debounced", "debounced", "accepted"],
        ),
        # An enter long enough after the exit is a new visit.
        ([("enter", 0), ("exit", 20), ("enter", 31)], ["accepted", "accepted", "accepted"]),
        # Older than what was accepted already: it cannot change anything.
        ([("enter", 10), ("exit", 5)], ["accepted", "debounced"]),
    ],
)
def test_debounce_sequences(sequence: list[tuple[str, float]], expected: list[str]) -> None:
    assert reasons(run(sequence)) == expected


def test_debounce_and_flap_windows_are_configurable() -> None:
    quick = GeofencePolicy(debounce_window=timedelta(minutes=1), flap_window=timedelta(minutes=1))
    sequence = [("enter", 0), ("enter", 2), ("exit", 4), ("enter", 6)]
    assert reasons(run(sequence, quick)) == ["accepted"] * 4


def test_a_debounced_claim_emits_nothing() -> None:
    verdict = run([("enter", 0), ("enter", 1)])[1]
    assert (verdict.accepted, verdict.event_type, verdict.dwell_s) == (False, None, None)


def test_dwell_is_computed_from_the_accepted_enter_and_the_exit() -> None:
    enter, exit_ = run([("enter", 0), ("exit", 25)])
    assert exit_.event_type == StoreEventType.STORE_EXITED
    assert exit_.dwell_s == 25 * 60
    assert exit_.dwell_source == "computed"
    assert exit_.visit_started_at == enter.occurred_at


def test_a_computed_dwell_wins_over_a_reported_one() -> None:
    exit_ = run([("enter", 0), ("exit", 25)], dwell_s=9_999)[1]
    assert (exit_.dwell_s, exit_.dwell_source) == (25 * 60, "computed")


def test_dwell_events_carry_the_visit_start_to_the_exit() -> None:
    enter, dwell, exit_ = run([("enter", 0), ("dwell", 10), ("exit", 30)])
    assert dwell.event_type == StoreEventType.STORE_DWELLED
    assert (dwell.dwell_s, dwell.dwell_source) == (600, "computed")
    assert dwell.visit_started_at == enter.occurred_at
    assert (exit_.dwell_s, exit_.dwell_source) == (1_800, "computed")


def test_without_a_seen_enter_the_reported_dwell_is_used() -> None:
    verdict = verify(claim("exit", dwell_s=900))
    assert (verdict.accepted, verdict.dwell_s, verdict.dwell_source) == (True, 900, "reported")
    assert verdict.visit_started_at is None


def test_an_exit_without_enter_or_report_has_no_dwell() -> None:
    verdict = verify(claim("exit"))
    assert verdict.accepted
    assert (verdict.dwell_s, verdict.dwell_source) == (None, None)


def test_an_enter_never_carries_a_dwell_even_a_reported_one() -> None:
    verdict = verify(claim("enter", dwell_s=600))
    assert (verdict.dwell_s, verdict.dwell_source) == (None, None)


def test_an_enter_older_than_the_longest_visit_does_not_make_the_dwell() -> None:
    last = AcceptedEvent("enter", NOW - timedelta(hours=13), NOW - timedelta(hours=13))
    verdict = verify(claim("exit"), last=last)
    assert verdict.accepted
    assert verdict.dwell_s is None


def test_the_verdict_never_carries_coordinates() -> None:
    names = {f.name for f in fields(Verdict)}
    assert names == {
        "accepted",
        "reason",
        "store_id",
        "occurred_at",
        "event_type",
        "dwell_s",
        "dwell_source",
        "visit_started_at",
    }
    c = claim(where=AT_150_M, accuracy_m=55.0)
    for verdict in (verify(c), verify(replace(c, accuracy_m=10.0))):
        for f in fields(Verdict):
            value = getattr(verdict, f.name)
            assert value not in (c.latitude, c.longitude, c.accuracy_m)
        assert f"{c.latitude}"[:7] not in repr(verdict)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"latitude": 90.0001}, "latitude"),
        ({"latitude": -90.0001}, "latitude"),
        ({"latitude": float("nan")}, "latitude"),
        ({"longitude": 180.0001}, "longitude"),
        ({"longitude": float("-inf")}, "longitude"),
        ({"accuracy_m": 0.0}, "accuracy_m"),
        ({"accuracy_m": -5.0}, "accuracy_m"),
        ({"accuracy_m": float("nan")}, "accuracy_m"),
        ({"accuracy_m": float("inf")}, "accuracy_m"),
        ({"type": "visit"}, "type"),
        ({"type": "ENTER"}, "type"),
        ({"occurred_at": datetime(2025, 6, 2, 10, 0)}, "occurred_at"),
        ({"dwell_s": -1}, "dwell_s"),
        ({"event_id": ""}, "event_id"),
        ({"store_id": "berlin mitte"}, "store_id"),
        ({"store_id": "hamburg"}, "store_id"),  # not the store being checked
        ({"customer_id": None}, "customer_id"),  # neither holder
        ({"pass_serial": "X" * 40}, "customer_id"),  # both holders
        ({"customer_id": None, "pass_serial": "not-a-serial"}, "pass_serial"),
    ],
)
def test_malformed_claims_are_refused_naming_the_field(
    changes: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        verify(replace(claim(), **changes))  # type: ignore[arg-type]
    assert caught.value.field == field


def test_edges_of_the_coordinate_ranges_are_valid() -> None:
    for where in ((90.0, 180.0), (-90.0, -180.0)):
        assert verify(claim(where=where)).reason == "outside_store"


@pytest.mark.parametrize(
    "changes",
    [
        {"max_age": timedelta(0)},
        {"debounce_window": timedelta(minutes=-1)},
        {"max_clock_skew": timedelta(seconds=-1)},
        {"max_accuracy_m": 0.0},
        {"max_accuracy_m": float("nan")},
    ],
)
def test_an_unusable_policy_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        GeofencePolicy(**changes)  # type: ignore[arg-type]


ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12))])
ANY_TIME = st.datetimes(timezones=st.none() | ZONES)
AWARE_TIME = st.datetimes(timezones=ZONES)
ANY_TYPE = st.sampled_from(["enter", "dwell", "exit"]) | st.text(max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    latitude=ANY_FLOAT,
    longitude=ANY_FLOAT,
    accuracy_m=ANY_FLOAT,
    type=ANY_TYPE,
    occurred_at=ANY_TIME,
    now=AWARE_TIME,
    dwell_s=st.none() | st.integers(),
    last=st.none() | st.builds(AcceptedEvent, ANY_TYPE, AWARE_TIME, st.none() | AWARE_TIME),
    consent=st.booleans(),
)
def test_any_inputs_give_a_verdict_or_invalid_input(
    latitude: float,
    longitude: float,
    accuracy_m: float,
    type: str,
    occurred_at: datetime,
    now: datetime,
    dwell_s: int | None,
    last: AcceptedEvent | None,
    consent: bool,
) -> None:
    c = replace(
        claim(),
        latitude=latitude,
        longitude=longitude,
        accuracy_m=accuracy_m,
        type=type,
        occurred_at=occurred_at,
        dwell_s=dwell_s,
    )
    try:
        verdict = verify(c, now=now, last=last, consents=Consents(location=consent))
    except InvalidInput as error:
        assert error.field
        return
    assert isinstance(verdict, Verdict)
    assert verdict.reason in set(Reason)
    assert verdict.accepted == (verdict.reason == "accepted")
    if verdict.accepted:
        # Only a point whose accuracy circle reaches the store gets through.
        distance = geodesic(CENTRE, (latitude, longitude)).m
        assert distance - accuracy_m <= STORE.radius_m
        assert math.isfinite(accuracy_m) and 0 < accuracy_m <= POLICY.max_accuracy_m
        assert verdict.dwell_s is None or verdict.dwell_s >= 0


@settings(max_examples=200, deadline=None)
@given(
    metres=st.floats(min_value=0, max_value=20_000),
    bearing=st.floats(min_value=0, max_value=360),
    accuracy_m=st.floats(min_value=0.1, max_value=200),
)
def test_a_point_is_inside_exactly_when_its_accuracy_circle_reaches_the_store(
    metres: float, bearing: float, accuracy_m: float
) -> None:
    where = point(metres, bearing)
    # Away from the boundary, where float rounding could go either way.
    if abs(metres - accuracy_m - STORE.radius_m) < 0.01:
        return
    verdict = verify(claim(where=where, accuracy_m=accuracy_m))
    inside = metres - accuracy_m <= STORE.radius_m
    assert verdict.reason == ("accepted" if inside else "outside_store")
