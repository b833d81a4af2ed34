"""Geofence claims from phones, and the verdict on each: is this a real store visit?

A claim is what a phone (through the brand's app backend or a provider like Radar)
says happened: it entered, dwelled in or left a store's circle at a point with some
accuracy. The verdict checks consent, freshness, the point against the store's
radius (geodesic distance) and enter/exit flapping, and keeps only the store id and
timings: coordinates never leave this module.

Only a verified dwell (an accepted verdict with a `dwell_s`) or a scan may award
anything; a bare "enter" never does. Awarding is the ledger's business, not this one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from geopy.distance import geodesic

from walletsvc.domain.customer import Consents
from walletsvc.domain.errors import ConfigurationError, InvalidInput
from walletsvc.domain.store import STORE_ID, Store
from walletsvc.domain.wallet_pass import is_serial

EVENT_ID_MAX = 128
CUSTOMER_ID_MAX = 128

DwellSource = Literal["computed", "reported"]


class GeofenceEventKind(StrEnum):
    """What the phone says happened at the store's circle."""

    ENTER = "enter"
    DWELL = "dwell"
    EXIT = "exit"


class Reason(StrEnum):
    """Stable, machine-readable reasons a verdict gives; callers may rely on the strings."""

    ACCEPTED = "accepted"
    NO_LOCATION_CONSENT = "no_location_consent"
    STALE = "stale"
    INACCURATE = "inaccurate"
    OUTSIDE_STORE = "outside_store"
    DEBOUNCED = "debounced"


class StoreEventType:
    """The event types an accepted claim emits (CloudEvents `type`, versioned)."""

    STORE_ENTERED = "com.walletsvc.instore.store_entered.v1"
    STORE_DWELLED = "com.walletsvc.instore.store_dwelled.v1"
    STORE_EXITED = "com.walletsvc.instore.store_exited.v1"


EVENT_TYPE_OF = {
    GeofenceEventKind.ENTER: StoreEventType.STORE_ENTERED,
    GeofenceEventKind.DWELL: StoreEventType.STORE_DWELLED,
    GeofenceEventKind.EXIT: StoreEventType.STORE_EXITED,
}

KINDS = frozenset(kind.value for kind in GeofenceEventKind)
# The phone is inside the store after these; a second enter or dwell is a repeat.
INSIDE = frozenset({GeofenceEventKind.ENTER.value, GeofenceEventKind.DWELL.value})


@dataclass(frozen=True)
class GeofenceClaim:
    """One geofence event as reported; identifies the holder by customer id or pass serial."""

    event_id: str
    store_id: str
    type: str
    latitude: float
    longitude: float
    accuracy_m: float
    occurred_at: datetime
    customer_id: str | None = None
    pass_serial: str | None = None
    dwell_s: int | None = None  # reported time inside, if the reporter measured it


@dataclass(frozen=True)
class AcceptedEvent:
    """The last accepted event for one customer at one store, as the caller stored it.

    `visit_started_at` is the verdict's: when the visit this event belongs to began.
    """

    type: str
    occurred_at: datetime
    visit_started_at: datetime | None = None


@dataclass(frozen=True)
class GeofencePolicy:
    """The windows and caps verification uses; all configurable."""

    max_age: timedelta = timedelta(minutes=5)
    max_clock_skew: timedelta = timedelta(seconds=30)
    max_accuracy_m: float = 200.0
    debounce_window: timedelta = timedelta(minutes=10)
    flap_window: timedelta = timedelta(minutes=10)  # an enter this soon after an exit flaps
    max_visit: timedelta = timedelta(hours=12)  # an older enter is not this exit's visit

    def __post_init__(self) -> None:
        for name in ("max_age", "debounce_window", "flap_window", "max_visit"):
            if getattr(self, name) <= timedelta(0):
                raise ConfigurationError(f"geofence {name} must be positive", field=name)
        if self.max_clock_skew < timedelta(0):
            raise ConfigurationError(
                "geofence max_clock_skew must not be negative", field="max_clock_skew"
            )
        if not (math.isfinite(self.max_accuracy_m) and self.max_accuracy_m > 0):
            raise ConfigurationError(
                "geofence max_accuracy_m must be a positive number", field="max_accuracy_m"
            )


@dataclass(frozen=True)
class Verdict:
    """The answer to a claim: the store id and timings, never coordinates.

    `event_type` is the event to emit (None when refused). `dwell_s` is the verified
    time inside: `computed` from this service's own accepted enter, or `reported`
    by the caller for a claim that passed every check. Whoever awards points does so
    only on an accepted verdict with a `dwell_s`, never on an enter.
    """

    accepted: bool
    reason: str
    store_id: str
    occurred_at: datetime
    event_type: str | None = None
    dwell_s: int | None = None
    dwell_source: DwellSource | None = None
    visit_started_at: datetime | None = None


def validate_claim(claim: GeofenceClaim) -> None:
    """Refuse a claim with a missing or impossible value, naming the field."""
    if not 1 <= len(claim.event_id) <= EVENT_ID_MAX or not claim.event_id.isprintable():
        raise InvalidInput(
            f"event_id must be 1-{EVENT_ID_MAX} printable characters", field="event_id"
        )
    if not STORE_ID.fullmatch(claim.store_id):
        raise InvalidInput("store_id must be 1-64 letters, digits or ._-", field="store_id")
    _validate_holder(claim)
    if claim.type not in KINDS:
        raise InvalidInput("type must be enter, dwell or exit", field="type")
    # Written so that NaN fails too: every comparison with NaN is false.
    if not -90.0 <= claim.latitude <= 90.0:
        raise InvalidInput("latitude must be between -90 and 90", field="latitude")
    if not -180.0 <= claim.longitude <= 180.0:
        raise InvalidInput("longitude must be between -180 and 180", field="longitude")
    if not (math.isfinite(claim.accuracy_m) and claim.accuracy_m > 0):
        raise InvalidInput("accuracy_m must be a number above 0", field="accuracy_m")
    if claim.occurred_at.utcoffset() is None:
        raise InvalidInput("occurred_at must carry a time zone", field="occurred_at")
    if claim.dwell_s is not None and claim.dwell_s < 0:
        raise InvalidInput("dwell_s must not be negative", field="dwell_s")


def _validate_holder(claim: GeofenceClaim) -> None:
    if (claim.customer_id is None) == (claim.pass_serial is None):
        raise InvalidInput("give exactly one of customer_id and pass_serial", field="customer_id")
    if claim.customer_id is not None and not (
        1 <= len(claim.customer_id) <= CUSTOMER_ID_MAX and claim.customer_id.isprintable()
    ):
        raise InvalidInput(
            f"customer_id must be 1-{CUSTOMER_ID_MAX} printable characters", field="customer_id"
        )
    if claim.pass_serial is not None and not is_serial(claim.pass_serial):
        raise InvalidInput("pass_serial is not a pass serial", field="pass_serial")


def verify_claim(
    claim: GeofenceClaim,
    store: Store,
    consents: Consents,
    now: datetime,
    last_accepted: AcceptedEvent | None,
    policy: GeofencePolicy | None = None,
) -> Verdict:
    """Return whether a claim is a real visit to `store`, and what to emit if so.

    `last_accepted` is the previous accepted event for the same customer and store.
    Without location consent nothing else is looked at. Raises InvalidInput for a
    malformed claim; `now` must be time-zone aware.
    """
    policy = policy or GeofencePolicy()
    if not consents.location:
        return _refuse(claim, Reason.NO_LOCATION_CONSENT)
    validate_claim(claim)
    _require_aware(now, "now")
    if last_accepted is not None:
        _require_aware(last_accepted.occurred_at, "last_accepted.occurred_at")
    if claim.store_id != store.id:
        raise InvalidInput("the claim names another store", field="store_id")
    if _is_stale(claim.occurred_at, now, policy):
        return _refuse(claim, Reason.STALE)
    if claim.accuracy_m > policy.max_accuracy_m:
        return _refuse(claim, Reason.INACCURATE)
    if _outside(claim, store):
        return _refuse(claim, Reason.OUTSIDE_STORE)
    kind = GeofenceEventKind(claim.type)
    if last_accepted is not None and _is_repeat(kind, claim.occurred_at, last_accepted, policy):
        return _refuse(claim, Reason.DEBOUNCED)
    return _accept(claim, kind, last_accepted, policy)


def _refuse(claim: GeofenceClaim, reason: Reason) -> Verdict:
    return Verdict(
        accepted=False, reason=reason, store_id=claim.store_id, occurred_at=claim.occurred_at
    )


def _require_aware(value: datetime, name: str) -> None:
    # The caller's own values, not the claim's: a naive one is a bug, not bad input.
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be time-zone aware")


def _is_stale(occurred_at: datetime, now: datetime, policy: GeofencePolicy) -> bool:
    # Differences only: adding a window to a datetime near its limits would overflow.
    age = now - occurred_at
    return age > policy.max_age or -age > policy.max_clock_skew


def _outside(claim: GeofenceClaim, store: Store) -> bool:
    # The reported circle only has to touch the store's: the point may be anywhere in it.
    distance_m = geodesic((store.latitude, store.longitude), (claim.latitude, claim.longitude)).m
    return bool(distance_m - claim.accuracy_m > store.radius_m)


def _is_repeat(
    kind: GeofenceEventKind, occurred_at: datetime, last: AcceptedEvent, policy: GeofencePolicy
) -> bool:
    gap = occurred_at - last.occurred_at
    if gap < timedelta(0):
        return True  # older than what was already accepted: it cannot change anything
    previous = last.type
    if kind is GeofenceEventKind.ENTER:
        if previous in INSIDE:
            return gap < policy.debounce_window
        return previous == GeofenceEventKind.EXIT and gap < policy.flap_window
    return previous == kind and gap < policy.debounce_window


def _accept(
    claim: GeofenceClaim,
    kind: GeofenceEventKind,
    last: AcceptedEvent | None,
    policy: GeofencePolicy,
) -> Verdict:
    started = _visit_start(kind, claim.occurred_at, last, policy)
    dwell_s: int | None = None
    source: DwellSource | None = None
    if kind is not GeofenceEventKind.ENTER:
        if started is not None:
            dwell_s, source = int((claim.occurred_at - started).total_seconds()), "computed"
        elif claim.dwell_s is not None:
            dwell_s, source = claim.dwell_s, "reported"
    return Verdict(
        accepted=True,
        reason=Reason.ACCEPTED,
        store_id=claim.store_id,
        occurred_at=claim.occurred_at,
        event_type=EVENT_TYPE_OF[kind],
        dwell_s=dwell_s,
        dwell_source=source,
        visit_started_at=started,
    )


def _visit_start(
    kind: GeofenceEventKind,
    occurred_at: datetime,
    last: AcceptedEvent | None,
    policy: GeofencePolicy,
) -> datetime | None:
    """Return when the visit this event belongs to began, if this service saw it begin."""
    if kind is GeofenceEventKind.ENTER:
        return occurred_at
    if last is None or last.type not in INSIDE:
        return None
    started = last.occurred_at if last.type == GeofenceEventKind.ENTER else last.visit_started_at
    if started is None or not timedelta(0) <= occurred_at - started <= policy.max_visit:
        return None
    return started
