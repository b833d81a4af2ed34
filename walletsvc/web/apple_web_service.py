"""Apple's PassKit web service routes under {PUBLIC_URL}/apple (webServiceURL).

Status codes follow PROTOCOLS.md section 2 exactly: Wallet reads nothing but them.
"""

from __future__ import annotations

import json
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime

from aiohttp import web

from walletsvc.apple.pkpass import PKPASS_MEDIA_TYPE
from walletsvc.domain.apple_device import parse_update_tag
from walletsvc.services.apple_web_service import (
    changed_passes,
    latest_pass,
    record_device_logs,
    register_device,
    unregister_device,
)
from walletsvc.web.api import router
from walletsvc.web.apple_schemas import AppleLogIn, AppleRegistrationIn, AppleSerialsOut
from walletsvc.web.keys import CONTAINER
from walletsvc.web.router import json_response

REGISTRATION = (
    "/apple/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}/{serialNumber}"
)
TAG = "apple wallet"
AUTH_NOTE = " (Authorization: ApplePass <authenticationToken>)"


@router.route(
    "POST",
    REGISTRATION,
    summary="Register a device for a pass's updates" + AUTH_NOTE,
    tag=TAG,
    surface="apple_web_service",
    body=AppleRegistrationIn,
    responses={201: None, 200: None, 401: None},
    auth=False,
    parse_body=False,
)
async def apple_register(request: web.Request) -> web.Response:
    info = request.match_info
    created = await register_device(
        request.app[CONTAINER].ctx,
        info["deviceLibraryIdentifier"],
        info["passTypeIdentifier"],
        info["serialNumber"],
        request.headers.get("Authorization"),
        await _lenient_json(request),
    )
    return web.Response(status=201 if created else 200)


@router.route(
    "DELETE",
    REGISTRATION,
    summary="Unregister a device from a pass's updates" + AUTH_NOTE,
    tag=TAG,
    surface="apple_web_service",
    responses={200: None, 401: None},
    auth=False,
)
async def apple_unregister(request: web.Request) -> web.Response:
    info = request.match_info
    await unregister_device(
        request.app[CONTAINER].ctx,
        info["deviceLibraryIdentifier"],
        info["passTypeIdentifier"],
        info["serialNumber"],
        request.headers.get("Authorization"),
    )
    return web.Response(status=200)


@router.route(
    "GET",
    "/apple/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}",
    summary="Which of the device's passes changed since the tag (no auth)",
    tag=TAG,
    surface="apple_web_service",
    responses={200: AppleSerialsOut, 204: None},
    auth=False,
    query={"passesUpdatedSince": "the lastUpdated tag of the previous answer"},
)
async def apple_changed(request: web.Request) -> web.Response:
    info = request.match_info
    changed = await changed_passes(
        request.app[CONTAINER].ctx,
        info["deviceLibraryIdentifier"],
        info["passTypeIdentifier"],
        parse_update_tag(request.query.get("passesUpdatedSince")),
    )
    if not changed.serials:
        return web.Response(status=204)
    return json_response(
        AppleSerialsOut(
            serial_numbers=list(changed.serials), last_updated=str(changed.last_updated)
        )
    )


async def apple_latest(request: web.Request) -> web.Response:
    info = request.match_info
    latest = await latest_pass(
        request.app[CONTAINER].ctx,
        info["passTypeIdentifier"],
        info["serialNumber"],
        request.headers.get("Authorization"),
        _http_date(request.headers.get("If-Modified-Since")),
    )
    headers = {
        "Last-Modified": format_datetime(latest.last_modified, usegmt=True),
        "Cache-Control": "no-cache",
    }
    if latest.bundle is None:
        return web.Response(status=304, headers=headers)
    return web.Response(body=latest.bundle.data, content_type=PKPASS_MEDIA_TYPE, headers=headers)


for _method in ("GET", "HEAD"):
    router.route(
        _method,
        "/apple/v1/passes/{passTypeIdentifier}/{serialNumber}",
        summary="The latest version of a pass; 304 when If-Modified-Since is current" + AUTH_NOTE,
        tag=TAG,
        surface="apple_web_service",
        responses={200: PKPASS_MEDIA_TYPE, 304: None, 401: None},
        auth=False,
    )(apple_latest)


@router.route(
    "POST",
    "/apple/v1/log",
    summary="Wallet reports problems with this web service",
    tag=TAG,
    surface="apple_web_service",
    body=AppleLogIn,
    responses={200: None},
    auth=False,
    parse_body=False,
)
async def apple_log(request: web.Request) -> web.Response:
    await record_device_logs(request.app[CONTAINER].ctx, await _lenient_json(request))
    return web.Response(status=200)


async def _lenient_json(request: web.Request) -> object:
    """Return the JSON body, or None when there is none (the use case says what is wrong)."""
    raw = await request.read()
    try:
        return json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None  # an unreadable date is as good as none: send the pass
    return moment if moment.tzinfo is not None else None
