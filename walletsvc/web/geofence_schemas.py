"""Bodies of the geofence API and the geofence provider webhooks (API.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from walletsvc.web.schemas import In, Out


class GeofenceEventIn(In):
    event_id: Annotated[str, Field(min_length=1, max_length=128)]
    store_id: Annotated[str, Field(min_length=1, max_length=64)]
    customer_id: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        default=None, description="give this or pass_serial"
    )
    pass_serial: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    type: Literal["enter", "dwell", "exit"]
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]
    accuracy_m: Annotated[float, Field(gt=0, le=1_000_000, description="radius in metres")]
    occurred_at: AwareDatetime
    dwell_s: Annotated[int, Field(ge=0, le=366 * 86_400)] | None = Field(
        default=None,
        description="seconds inside as the phone measured them (dwell and exit); used only "
        "when this service did not see the visit begin",
    )


class GeofenceVerdictOut(Out):
    accepted: bool
    reason: str = Field(
        description="accepted, no_location_consent, stale, inaccurate, outside_store or debounced"
    )
    store_id: str
    dwell_s: int | None = Field(description="verified seconds inside, on an accepted dwell or exit")


class GeofenceDeliveryOut(Out):
    accepted: int
    refused: int
    skipped: int = Field(description="events that are no store visit (other types, low confidence)")
    reasons: dict[str, int] = Field(
        description="how many events were refused or skipped, by reason"
    )
