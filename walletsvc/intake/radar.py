"""Radar geofence webhooks: check the signature, then turn events into geofence claims.

Radar's webhook page (https://radar.com/documentation/integrations/webhooks): the
`X-Radar-Signature` header is the hex HMAC-SHA1 of the `X-Radar-Signing-Id` header
value, keyed with the webhook's security token; the body is a JSON object with an
`event` (single delivery) or an `events` array (multiple delivery) and a `user`.

The signature does not cover the body, so a captured pair of headers would carry
any body. What stands in for that: the caller records each signing id once (inbox)
and each event `_id` once; requests whose geofence events Radar created
(`actualCreatedAt`) outside a short window are refused as stale; and every claim
still goes through `verify_claim`, which checks the point against the store.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from walletsvc.domain.errors import (
    BadSignature,
    ConfigurationError,
    InvalidInput,
    MalformedWebhook,
    StaleTimestamp,
)
from walletsvc.domain.geofence import GeofenceClaim, validate_claim
from walletsvc.domain.store import STORE_ID

SIGNATURE_HEADER = "X-Radar-Signature"
SIGNING_ID_HEADER = "X-Radar-Signing-Id"
SIGNING_ID = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII: it becomes a dedupe key
HEX_SHA1 = re.compile(r"[0-9a-fA-F]{40}")
EVENT_ID = re.compile(r"[\x21-\x7e]{1,128}")
MAX_EVENTS = 100  # Radar chunks multiple deliveries into fives; anything far above is not Radar
MAX_TIMESTAMP_CHARS = 64
MAX_DURATION_MIN = 366 * 24 * 60

KIND_OF_TYPE = {
    "user.entered_geofence": "enter",
    "user.dwelled_in_geofence": "dwell",
    "user.exited_geofence": "exit",
}
# Radar's fraud checks (user.fraud, Enterprise plan); any of these set refuses the event.
FRAUD_FLAGS = ("mocked", "proxy", "jumped", "compromised", "sharing", "inaccurate", "blocked")
# Where a claim field came from, so an error names what the sender can find in its body.
RADAR_FIELD = {
    "event_id": "_id",
    "store_id": "geofence.externalId",
    "customer_id": "user.userId",
    "latitude": "location.coordinates",
    "longitude": "location.coordinates",
    "accuracy_m": "locationAccuracy",
    "occurred_at": "createdAt",
    "dwell_s": "duration",
}


class SkipReason(StrEnum):
    """Why a well-formed Radar event becomes no claim; stable strings for counters and logs."""

    UNSUPPORTED_TYPE = "unsupported_type"
    TEST_EVENT = "test_event"
    REPLAYED = "replayed"
    OTHER_GEOFENCE = "other_geofence"
    FRAUD_FLAGGED = "fraud_flagged"
    LOW_CONFIDENCE = "low_confidence"
    NO_CUSTOMER = "no_customer"


@dataclass(frozen=True)
class RadarPolicy:
    """What the Radar adapter accepts; all configurable."""

    min_confidence: int = 2  # Radar's 1 low, 2 medium, 3 high; a missing one counts as 0
    max_age: timedelta = timedelta(minutes=5)
    max_clock_skew: timedelta = timedelta(seconds=30)
    live_only: bool = True  # refuse events from Radar's Test environment
    store_tag: str | None = None  # only geofences with this tag are stores, if set

    def __post_init__(self) -> None:
        if not 0 <= self.min_confidence <= 3:
            raise ConfigurationError(
                "radar min_confidence must be between 0 and 3", field="min_confidence"
            )
        if self.max_age <= timedelta(0) or self.max_clock_skew < timedelta(0):
            raise ConfigurationError("radar time windows must be positive", field="max_age")


@dataclass(frozen=True)
class SkippedEvent:
    """A Radar event that became no claim, and why; no coordinates."""

    event_id: str
    radar_type: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class RadarBatch:
    """The claims one webhook request carries, and the events it skipped."""

    claims: tuple[GeofenceClaim, ...]
    skipped: tuple[SkippedEvent, ...]


class RadarWebhook:
    """Radar's geofence webhook: verify the headers, parse the body into claims."""

    name = "radar"

    def __init__(self, secrets: Sequence[str], policy: RadarPolicy | None = None) -> None:
        keys = tuple(secret.encode() for secret in secrets if secret)
        if not keys:
            raise ConfigurationError("the Radar webhook needs a security token", field="secrets")
        self._keys = keys
        self.policy = policy or RadarPolicy()

    def verify(self, headers: Mapping[str, str]) -> str:
        """Return the request's signing id if its signature is good, else refuse it.

        Any of the configured tokens may have signed (two during rotation). The caller
        must store the signing id and refuse one seen before: the body is unsigned.
        """
        signing_id = _header(headers, SIGNING_ID_HEADER)
        signature = _header(headers, SIGNATURE_HEADER)
        if signing_id is None or signature is None:
            raise BadSignature("the Radar signature headers are missing")
        signature = signature.strip().lower()
        if not SIGNING_ID.fullmatch(signing_id) or not HEX_SHA1.fullmatch(signature):
            raise BadSignature("the Radar signature headers are malformed")
        message = signing_id.encode()
        # Every key is tried, so the time taken does not tell which one matched.
        matches = [
            hmac.compare_digest(hmac.new(key, message, hashlib.sha1).hexdigest(), signature)
            for key in self._keys
        ]
        if not any(matches):
            raise BadSignature("the Radar signature does not match")
        return signing_id

    def parse(self, body: bytes, now: datetime) -> RadarBatch:
        """Return the geofence claims in a verified body; refuse a stale or malformed one.

        Raises StaleTimestamp, or MalformedWebhook (an InvalidInput) naming the field.
        `now` must be time-zone aware.
        """
        document = _load(body)
        events = _events(document)
        fallback_user = _optional_object(document, "user", "user")
        claims: list[GeofenceClaim] = []
        skipped: list[SkippedEvent] = []
        for index, event in enumerate(events):
            outcome = self._parse_event(event, f"events[{index}]", fallback_user, now)
            if isinstance(outcome, SkippedEvent):
                skipped.append(outcome)
            else:
                claims.append(outcome)
        return RadarBatch(claims=tuple(claims), skipped=tuple(skipped))

    def _parse_event(
        self, event: object, path: str, fallback_user: dict[str, Any] | None, now: datetime
    ) -> GeofenceClaim | SkippedEvent:
        if not isinstance(event, dict):
            raise MalformedWebhook("each event must be a JSON object", field=path)
        event_id = event.get("_id")
        if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
            raise MalformedWebhook("_id must be 1-128 printable characters", field=f"{path}._id")
        radar_type = event.get("type")
        if not isinstance(radar_type, str):
            raise MalformedWebhook("type must be a string", field=f"{path}.type")
        kind = KIND_OF_TYPE.get(radar_type)

        def skip(reason: SkipReason, detail: str = "") -> SkippedEvent:
            return SkippedEvent(event_id, radar_type[:64], reason, detail)

        if kind is None:
            return skip(SkipReason.UNSUPPORTED_TYPE)
        occurred_at = _timestamp(event, "createdAt", path)
        # Radar's own clock, where given: the phone's (createdAt) may be off or replayed.
        created_by_radar = (
            _timestamp(event, "actualCreatedAt", path)
            if event.get("actualCreatedAt") is not None
            else occurred_at
        )
        self._check_fresh(created_by_radar, now, path)

        if self.policy.live_only and event.get("live") is False:
            return skip(SkipReason.TEST_EVENT)
        if _flag(event, "replayed", path):
            return skip(SkipReason.REPLAYED)
        geofence = _optional_object(event, "geofence", f"{path}.geofence")
        if geofence is None:
            raise MalformedWebhook("a geofence event needs its geofence", field=f"{path}.geofence")
        store_id = geofence.get("externalId")
        tag = self.policy.store_tag
        if tag is not None and geofence.get("tag") != tag:
            return skip(SkipReason.OTHER_GEOFENCE, "tag")
        if not isinstance(store_id, str) or not STORE_ID.fullmatch(store_id):
            return skip(SkipReason.OTHER_GEOFENCE, "externalId")
        user = _optional_object(event, "user", f"{path}.user") or fallback_user or {}
        flags = _fraud_flags(event, user, fallback_user, path)
        if flags:
            return skip(SkipReason.FRAUD_FLAGGED, ",".join(flags))
        confidence = _confidence(event, path)
        if confidence < self.policy.min_confidence:
            return skip(SkipReason.LOW_CONFIDENCE, str(confidence))
        customer_id = user.get("userId")
        if not isinstance(customer_id, str) or not customer_id:
            return skip(SkipReason.NO_CUSTOMER)

        longitude, latitude = _coordinates(event, path)
        claim = GeofenceClaim(
            event_id=event_id,
            store_id=store_id,
            type=kind,
            latitude=latitude,
            longitude=longitude,
            accuracy_m=_number(event, "locationAccuracy", path),
            occurred_at=occurred_at,
            customer_id=customer_id,
            dwell_s=_dwell_s(event, path) if kind != "enter" else None,
        )
        try:
            validate_claim(claim)
        except InvalidInput as error:
            field = RADAR_FIELD.get(error.field or "", error.field or "")
            raise MalformedWebhook(error.detail, field=f"{path}.{field}") from None
        return claim

    def _check_fresh(self, created_at: datetime, now: datetime, path: str) -> None:
        age = now - created_at
        if age > self.policy.max_age or -age > self.policy.max_clock_skew:
            raise StaleTimestamp(
                "the Radar event is too old or from the future: maybe a replay",
                field=f"{path}.actualCreatedAt",
            )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    # A plain dict is case-sensitive; aiohttp's headers are not.
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _load(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise MalformedWebhook("the body is not JSON", field="body") from None
    if not isinstance(document, dict):
        raise MalformedWebhook("the body must be a JSON object", field="body")
    return document


def _events(document: dict[str, Any]) -> list[object]:
    if "events" in document:
        events = document["events"]
        if not isinstance(events, list):
            raise MalformedWebhook("events must be an array", field="events")
    elif "event" in document:
        events = [document["event"]]
    else:
        raise MalformedWebhook("the body has neither event nor events", field="events")
    if len(events) > MAX_EVENTS:
        raise MalformedWebhook(f"at most {MAX_EVENTS} events in one request", field="events")
    return events


def _optional_object(parent: dict[str, Any], key: str, path: str) -> dict[str, Any] | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MalformedWebhook(f"{key} must be a JSON object", field=path)
    return value


def _timestamp(event: dict[str, Any], key: str, path: str) -> datetime:
    value = event.get(key)
    if not isinstance(value, str) or len(value) > MAX_TIMESTAMP_CHARS:
        raise MalformedWebhook(f"{key} must be an ISO 8601 time", field=f"{path}.{key}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedWebhook(f"{key} must be an ISO 8601 time", field=f"{path}.{key}") from None
    if parsed.utcoffset() is None:
        raise MalformedWebhook(f"{key} must carry a time zone", field=f"{path}.{key}")
    return parsed


def _flag(parent: dict[str, Any], key: str, path: str) -> bool:
    value = parent.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise MalformedWebhook(f"{key} must be true or false", field=f"{path}.{key}")
    return value


def _fraud_flags(
    event: dict[str, Any], user: dict[str, Any], fallback_user: dict[str, Any] | None, path: str
) -> tuple[str, ...]:
    # The event's own fraud object, its user's, and the request's user: any one set counts.
    sources = [
        _optional_object(event, "fraud", f"{path}.fraud"),
        _optional_object(user, "fraud", f"{path}.user.fraud"),
        _optional_object(fallback_user or {}, "fraud", "user.fraud"),
    ]
    return tuple(
        flag
        for flag in FRAUD_FLAGS
        if any(source is not None and source.get(flag) is True for source in sources)
    )


def _confidence(event: dict[str, Any], path: str) -> int:
    value = event.get("confidence", 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3:
        raise MalformedWebhook("confidence must be 0, 1, 2 or 3", field=f"{path}.confidence")
    return value


def _float(value: object, field: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise MalformedWebhook("must be a number", field=field)
    try:
        return float(value)
    except OverflowError:  # a JSON integer has no size limit; a float has
        raise MalformedWebhook("the number is out of range", field=field) from None


def _number(event: dict[str, Any], key: str, path: str) -> float:
    return _float(event.get(key), f"{path}.{key}")


def _coordinates(event: dict[str, Any], path: str) -> tuple[float, float]:
    """Return (longitude, latitude): GeoJSON order, as Radar sends them."""
    location = _optional_object(event, "location", f"{path}.location") or {}
    pair = location.get("coordinates")
    field = f"{path}.location.coordinates"
    if not isinstance(pair, list) or len(pair) != 2:
        raise MalformedWebhook("location.coordinates must be [longitude, latitude]", field=field)
    return _float(pair[0], field), _float(pair[1], field)


def _dwell_s(event: dict[str, Any], path: str) -> int | None:
    """Return Radar's `duration` (minutes inside, on exits) in seconds, if it gave one."""
    if event.get("duration") is None:
        return None
    minutes = _number(event, "duration", path)
    # Written so that NaN fails too.
    if not 0 <= minutes <= MAX_DURATION_MIN:
        raise MalformedWebhook("duration must be minutes, 0 or more", field=f"{path}.duration")
    return round(minutes * 60) or None
