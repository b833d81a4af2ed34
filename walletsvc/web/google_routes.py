"""POST /google/callback (Google Wallet's save and delete callbacks) and the classes' logo.

The callback is authenticated by its ECv2SigningOnly signature chain alone (verified
in walletsvc/google/callback.py); nothing in it is trusted before that.
"""

from __future__ import annotations

from aiohttp import web

from walletsvc.domain.errors import NotFound
from walletsvc.services.google_callbacks import record_google_callback
from walletsvc.services.google_sync import program_logo
from walletsvc.web.api import router
from walletsvc.web.google_schemas import GoogleCallbackOut
from walletsvc.web.keys import CONTAINER
from walletsvc.web.refusals import count_replay
from walletsvc.web.router import json_response


@router.route(
    "POST",
    "/google/callback",
    summary="Google Wallet's save/delete callback (ECv2SigningOnly signed message)",
    tag="wallets",
    responses={200: GoogleCallbackOut, 401: None, 404: None, 409: None, 422: None},
    auth=False,
    surface="google_callback",
)
async def post_google_callback(request: web.Request) -> web.Response:
    container = request.app[CONTAINER]
    verifier = container.google_callbacks
    issuer_id = container.settings.google.issuer_id
    if verifier is None or not issuer_id:
        raise NotFound(
            "Google Wallet callbacks are not configured", reason="callbacks_not_configured"
        )
    outcome = await record_google_callback(container.ctx, verifier, issuer_id, await request.read())
    if outcome.repeated:
        count_replay("google_callback")
    return json_response(
        GoogleCallbackOut(
            serial=outcome.serial, event=outcome.event.value, installs=outcome.installs
        )
    )


@router.route(
    "GET",
    "/google/programs/{program_id}/logo.png",
    summary="The logo a program's Google Wallet class shows (Google fetches it)",
    tag="wallets",
    responses={200: "image/png"},
    auth=False,
)
async def get_program_logo(request: web.Request) -> web.Response:
    png = await program_logo(request.app[CONTAINER].ctx, request.match_info["program_id"])
    return web.Response(
        body=png, content_type="image/png", headers={"Cache-Control": "public, max-age=3600"}
    )
