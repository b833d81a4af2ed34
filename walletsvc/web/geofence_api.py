"""POST /api/v1/geofence-events: the brand's app backend reports a geofence event."""

from __future__ import annotations

from aiohttp import web

from walletsvc.domain.api_key import Principal
from walletsvc.domain.geofence import GeofenceClaim
from walletsvc.services.geofence import api_reporter, record_geofence_claim
from walletsvc.web.api import router
from walletsvc.web.geofence_schemas import GeofenceEventIn, GeofenceVerdictOut
from walletsvc.web.keys import CONTAINER
from walletsvc.web.router import json_response


@router.route(
    "POST",
    "/api/v1/geofence-events",
    summary=(
        "Report a geofence enter, dwell or exit (scope geofence:write); the answer says "
        "whether it counts as a store visit. A repeated event_id answers as the first time."
    ),
    tag="store",
    body=GeofenceEventIn,
    responses={202: GeofenceVerdictOut, 409: None},
)
async def post_geofence_event(
    request: web.Request, principal: Principal, body: GeofenceEventIn
) -> web.Response:
    claim = GeofenceClaim(
        event_id=body.event_id,
        store_id=body.store_id,
        type=body.type,
        latitude=body.latitude,
        longitude=body.longitude,
        accuracy_m=body.accuracy_m,
        occurred_at=body.occurred_at,
        customer_id=body.customer_id,
        pass_serial=body.pass_serial,
        dwell_s=body.dwell_s,
    )
    verdict = await record_geofence_claim(
        request.app[CONTAINER].ctx, api_reporter(principal), claim
    )
    return json_response(
        GeofenceVerdictOut(
            accepted=verdict.accepted,
            reason=verdict.reason,
            store_id=verdict.store_id,
            dwell_s=verdict.dwell_s,
        ),
        status=202,
    )
