"""Who is looking at the dashboard: the session cookie, a Bearer key, and the forms' origin check.

CSRF: the cookie is SameSite=Strict, so a browser never sends it with a request another
site starts, and the only state-changing forms (sign in, sign out) are also refused
when the browser says they came from elsewhere: an `Origin` other than this service's,
or `Sec-Fetch-Site` other than same-origin. Browsers send `Origin` with every form
POST, so a cross-site form cannot slip through; clients that are not browsers (curl)
send neither header and carry no ambient cookie to abuse. This also stops login CSRF
(a foreign page signing the operator in under the attacker's key), which SameSite
alone does not.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web

from walletsvc.domain.api_key import Principal
from walletsvc.services.api_keys import authenticate
from walletsvc.services.dashboard import open_session
from walletsvc.web.keys import CONTAINER

COOKIE: Final = "walletsvc_dashboard"
PATH: Final = "/dashboard"
TTL: Final = timedelta(hours=8)


async def viewer_of(request: web.Request) -> Principal | None:
    """Return who sent the request (Bearer key or session cookie); None when nobody.

    A wrong Bearer key raises `Unauthorized`, as on the API.
    """
    container = request.app[CONTAINER]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return await authenticate(container.ctx, token.strip(), container.admin_api_key)
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    return await open_session(
        container.ctx, container.session_keys, cookie, container.admin_api_key
    )


def set_session(request: web.Request, response: web.StreamResponse, token: str) -> None:
    """Put the session token in the cookie the dashboard's paths get back."""
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(TTL.total_seconds()),
        path=PATH,
        httponly=True,
        secure=_https(request),
        samesite="Strict",
    )


def clear_session(request: web.Request, response: web.StreamResponse) -> None:
    """Tell the browser to forget the session cookie."""
    response.del_cookie(COOKIE, path=PATH, secure=_https(request), samesite="Strict")


def same_origin(request: web.Request) -> bool:
    """Tell whether a form post came from this service's own pages (see the module doc)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    if not parts.scheme or not parts.netloc:
        return False  # "null": a sandboxed or privacy-sensitive context
    public = urlsplit(request.app[CONTAINER].settings.effective_public_url)
    if (parts.scheme, parts.netloc) == (public.scheme, public.netloc):
        return True
    # Behind a proxy that keeps the Host header, the browser's origin is this host.
    return parts.netloc == request.headers.get("Host", "")


def _https(request: web.Request) -> bool:
    return request.app[CONTAINER].settings.effective_public_url.startswith("https://")
