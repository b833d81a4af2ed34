"""`GET /metrics`: Prometheus text format for this process, plus shared counts.

Counters and histograms (requests, APNs and Google replies, signatures) are this
process's; scrape every process. Queue depths, event backlog, refusals, passes and
tiers come from the database at scrape time, so every process reports the same
shared figures for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest

from walletsvc.domain.api_key import Principal, Scope
from walletsvc.domain.errors import Forbidden
from walletsvc.web.api import router
from walletsvc.web.keys import CONTAINER

APNS_QUEUE = Gauge("walletsvc_apns_push_queue", "Pushes owed to devices")
GOOGLE_QUEUE = Gauge("walletsvc_google_objects", "Google Wallet objects by sync state", ["state"])
POS_BACKLOG = Gauge("walletsvc_pos_webhooks_unprocessed", "POS webhooks accepted, not yet applied")
EVENTS_PENDING = Gauge("walletsvc_event_deliveries_pending", "Events owed to a sink", ["sink"])
EVENTS_DEAD = Gauge("walletsvc_event_deliveries_dead", "Dead letters per sink", ["sink"])
SINK_GONE = Gauge("walletsvc_event_sink_gone", "1 when a sink answered 410 Gone", ["sink"])
CALLBACKS_REFUSED = Gauge(
    "walletsvc_callbacks_refused", "Inbound callbacks refused, ever", ["source", "reason"]
)
GEOFENCE_REFUSED = Gauge(
    "walletsvc_geofence_claims_refused", "Geofence claims refused, ever", ["program", "reason"]
)
PASSES = Gauge(
    "walletsvc_passes", "Passes by program, kind and state", ["program", "kind", "state"]
)
TIERS = Gauge("walletsvc_customers", "Customers by program and tier", ["program", "tier"])
POOL_IN_USE = Gauge("walletsvc_db_connections_in_use", "Database connections checked out")
POOL_SIZE = Gauge("walletsvc_db_pool_size", "Database connections the pool keeps")


@router.route(
    "GET",
    "/metrics",
    summary="Prometheus metrics (scope metrics:read)",
    tag="operations",
    responses={200: "text/plain"},
)
async def metrics(request: web.Request, principal: Principal) -> web.Response:
    principal.require(Scope.METRICS_READ)
    if principal.program_id is not None:
        # The figures span every program; a key of one program must not read the others'.
        raise Forbidden("metrics span every program; use a key not bound to one")
    container = request.app[CONTAINER]
    assert container.stats is not None
    snapshot = await container.stats.snapshot()
    APNS_QUEUE.set(snapshot.apns_queue)
    _fill(GOOGLE_QUEUE, {(k,): v for k, v in snapshot.google_queue.items()})
    POS_BACKLOG.set(snapshot.pos_webhooks_unprocessed)
    _fill(CALLBACKS_REFUSED, snapshot.callback_rejections)
    _fill(GEOFENCE_REFUSED, snapshot.geofence_refusals)
    _fill(PASSES, snapshot.passes)
    _fill(TIERS, snapshot.tiers)
    if container.event_store is not None:
        events = container.settings.events
        names = [hook.name for hook in events.webhooks] + (
            [events.nats.name] if events.nats.url else []
        )
        states = await container.event_store.states(names)
        _fill(EVENTS_PENDING, {(s.name,): s.pending for s in states})
        _fill(EVENTS_DEAD, {(s.name,): s.dead for s in states})
        _fill(SINK_GONE, {(s.name,): int(s.gone_at is not None) for s in states})
    pool = container.engine.pool
    checked_out = getattr(pool, "checkedout", None)
    if callable(checked_out):
        POOL_IN_USE.set(checked_out())
    size = getattr(pool, "size", None)
    if callable(size):
        POOL_SIZE.set(size())
    return web.Response(
        body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def _fill(gauge: Gauge, values: Mapping[Any, int]) -> None:
    """Set a labelled gauge to exactly these series: ones that vanished are dropped."""
    gauge.clear()
    for labels, value in values.items():
        gauge.labels(*labels).set(value)
