"""POST /webhooks/geofence/radar: Radar's geofence events, verified, then judged one by one.

The signature is checked on the headers before the body is read; the store named by
each geofence's externalId decides the program, since Radar's payload has none.
"""

from __future__ import annotations

import hashlib

import structlog
from aiohttp import web

from walletsvc.domain.errors import NotFound
from walletsvc.services.geofence_deliveries import record_geofence_delivery
from walletsvc.web.api import router
from walletsvc.web.geofence_schemas import GeofenceDeliveryOut
from walletsvc.web.keys import CONTAINER
from walletsvc.web.refusals import count_replay
from walletsvc.web.router import json_response

log = structlog.get_logger("walletsvc.web.geofence_webhooks")


@router.route(
    "POST",
    "/webhooks/geofence/radar",
    summary=(
        "Radar's geofence webhook (headers X-Radar-Signing-Id and X-Radar-Signature); "
        "answers with how many events were accepted, refused and skipped"
    ),
    tag="store",
    responses={200: GeofenceDeliveryOut, 401: None, 422: None},
    auth=False,
    surface="geofence_webhook",
)
async def post_radar_webhook(request: web.Request) -> web.Response:
    container = request.app[CONTAINER]
    radar = container.radar
    if radar is None:
        raise NotFound("the Radar webhook is not configured", reason="provider_not_configured")
    signing_id = radar.verify(request.headers)
    raw = await request.read()
    ctx = container.ctx
    batch = radar.parse(raw, ctx.clock())
    summary = await record_geofence_delivery(
        ctx,
        radar.name,
        signing_id,
        hashlib.sha256(raw).hexdigest(),
        batch.claims,
        [skipped.reason for skipped in batch.skipped],
    )
    if summary.replayed:
        count_replay("geofence_webhook")
    log.info(
        "geofence.radar.delivery",
        accepted=summary.accepted,
        refused=summary.refused,
        skipped=summary.skipped,
    )
    return json_response(
        GeofenceDeliveryOut(
            accepted=summary.accepted,
            refused=summary.refused,
            skipped=summary.skipped,
            reasons=summary.reasons,
        )
    )
