"""Who is calling: the Bearer API key on server-to-server routes."""

from __future__ import annotations

from aiohttp import web

from walletsvc.domain.api_key import Principal
from walletsvc.domain.errors import Unauthorized
from walletsvc.services.api_keys import authenticate
from walletsvc.web.keys import CONTAINER


async def principal_of(request: web.Request) -> Principal:
    """Return the caller behind the request's API key, or refuse with 401."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "send the API key as 'Authorization: Bearer <key>'", reason="missing_credentials"
        )
    container = request.app[CONTAINER]
    return await authenticate(container.ctx, token.strip(), container.admin_api_key)
