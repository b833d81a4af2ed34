"""Liveness, readiness and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text

from walletsvc.web import schemas as s
from walletsvc.web.api import router
from walletsvc.web.keys import CONTAINER, EVENT_RELAY
from walletsvc.web.router import json_response, openapi_document

OPENAPI = web.AppKey("openapi", dict)


@router.route(
    "GET",
    "/healthz",
    summary="The process is up",
    tag="operations",
    responses={200: s.HealthOut},
    auth=False,
)
async def healthz(request: web.Request) -> web.Response:
    return json_response(s.HealthOut(status="ok"))


@router.route(
    "GET",
    "/readyz",
    summary="The database and the event sinks can be reached",
    tag="operations",
    responses={200: s.HealthOut, 503: s.HealthOut},
    auth=False,
)
async def readyz(request: web.Request) -> web.Response:
    container = request.app[CONTAINER]
    try:
        async with container.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks = {"database": "ok"}
        status = 200
    except Exception as exc:  # any failure to reach the database means "not ready"
        checks = {"database": f"unreachable: {type(exc).__name__}"}
        status = 503
    for relay in request.app[EVENT_RELAY] if status == 200 else []:
        sinks = await relay.health()
        checks.update({f"sink:{name}": state for name, state in sinks.items()})
        if container.settings.events.ready_requires_sinks and any(
            not state.startswith("ok") for state in sinks.values()
        ):
            status = 503
    state = "ok" if status == 200 else "unavailable"
    return json_response(s.HealthOut(status=state, checks=checks), status)


@router.route(
    "GET",
    "/api/v1/openapi.json",
    summary="This API's OpenAPI 3.1 description",
    tag="operations",
    responses={200: None},
    auth=False,
)
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


def describe(app: web.Application) -> None:
    """Render the OpenAPI document once, when the app is built."""
    app[OPENAPI] = openapi_document(
        router,
        title="walletsvc",
        version="1",
        server_url=app[CONTAINER].settings.effective_public_url,
    )
