"""`GET /dashboard`, `GET|POST /dashboard/login`, `POST /dashboard/logout`: pages for operators.

A person reads these, so every answer is an HTML page in their language (never
problem+json, never a stack trace): no session sends the browser to the sign-in page,
a wrong key shows that page again with a message (401).
"""

from __future__ import annotations

from html import escape
from typing import Final

import structlog
from aiohttp import web

from walletsvc.domain.api_key import Scope
from walletsvc.domain.errors import Forbidden, NotFound, Unauthorized
from walletsvc.services.dashboard import read_dashboard, sign_in
from walletsvc.web.add_page.language import choose_language
from walletsvc.web.api import router
from walletsvc.web.dashboard.sections import dashboard_page
from walletsvc.web.dashboard.session import (
    COOKIE,
    TTL,
    clear_session,
    same_origin,
    set_session,
    viewer_of,
)
from walletsvc.web.dashboard.template import STYLE_HASH, Page, message_page, sign_in_page
from walletsvc.web.keys import CONTAINER

log = structlog.get_logger("walletsvc.dashboard")

# No script may run; the only style is the page's own; forms post only to this service.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src '{STYLE_HASH}'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not no-referrer: with it Chromium sends `Origin: null` on the page's own forms, and
    # the origin check (session.py) needs the real one. No referrer leaves the site.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "Vary": "Accept-Language, Cookie, Authorization",
}
MAX_KEY = 200  # longer than any key we issue; a bigger form field is not a key


def _language(request: web.Request) -> str:
    return choose_language(request.query.get("lang"), request.headers.get("Accept-Language", ""))


@router.route(
    "GET",
    "/dashboard",
    summary="The operator dashboard (HTML; session cookie or Bearer key, scope dashboard:read)",
    tag="operator pages",
    responses={200: "text/html", 303: None, 401: "text/html", 403: "text/html"},
    auth=False,
    query={"program": "the program to show", "lang": "en or de"},
)
async def dashboard(request: web.Request) -> web.StreamResponse:
    language = _language(request)
    container = request.app[CONTAINER]
    try:
        viewer = await viewer_of(request)
        if viewer is None:
            response = _redirect(f"/dashboard/login?lang={language}")
            if COOKIE in request.cookies:
                clear_session(request, response)  # forged, expired, or its key is gone
            return response
        if not viewer.has(Scope.DASHBOARD_READ):
            return _respond(message_page(language, 403, "no_scope"))
        chosen = request.query.get("program") or None
        board = await read_dashboard(
            container.dashboard,  # type: ignore[arg-type]
            viewer,
            chosen[:63] if chosen else None,
            _sinks(request),
            container.ctx.clock(),
        )
    except Unauthorized:
        return _respond(sign_in_page(language, 401, "wrong_key"))
    except NotFound:
        return _respond(message_page(language, 404, "unknown_program"))
    except Exception as error:
        # Only the class is logged: nothing the page read is worth a traceback's locals.
        log.error("dashboard.failed", error=type(error).__name__)
        return _respond(message_page(language, 500, "failed"))
    return _respond(dashboard_page(board, language))


@router.route(
    "GET",
    "/dashboard/login",
    summary="The operator dashboard's sign-in form (HTML)",
    tag="operator pages",
    responses={200: "text/html"},
    auth=False,
)
async def login_form(request: web.Request) -> web.StreamResponse:
    return _respond(sign_in_page(_language(request)))


@router.route(
    "POST",
    "/dashboard/login",
    summary="Sign in with an API key holding dashboard:read; sets the session cookie",
    tag="operator pages",
    responses={303: None, 401: "text/html", 403: "text/html"},
    auth=False,
)
async def login(request: web.Request) -> web.StreamResponse:
    language = _language(request)
    if not same_origin(request):
        log.warning(
            "dashboard.sign_in.cross_site",
            origin=request.headers.get("Origin", "")[:100],
            fetch_site=request.headers.get("Sec-Fetch-Site", "")[:20],
        )
        return _respond(sign_in_page(language, 403, "cross_site"))
    try:
        form = await request.post()
    except ValueError:
        # A form aiohttp cannot read (multipart without a boundary, say) is the
        # client's mistake: the sign-in page again, never a 500.
        return _respond(sign_in_page(language, 400, "wrong_key"))
    presented = form.get("key")
    if not isinstance(presented, str) or not presented.strip() or len(presented) > MAX_KEY:
        return _respond(sign_in_page(language, 401, "wrong_key"))
    container = request.app[CONTAINER]
    try:
        viewer, token = await sign_in(
            container.ctx,
            container.session_keys,
            presented.strip(),
            container.admin_api_key,
            TTL,
        )
    except Unauthorized:
        log.info("dashboard.sign_in.refused", reason="invalid_key")
        return _respond(sign_in_page(language, 401, "wrong_key"))
    except Forbidden:
        log.info("dashboard.sign_in.refused", reason="missing_scope")
        return _respond(sign_in_page(language, 403, "no_scope"))
    log.info("dashboard.signed_in", key_id=viewer.key_id)
    response = _redirect(f"/dashboard?lang={language}")
    set_session(request, response, token)
    return response


@router.route(
    "POST",
    "/dashboard/logout",
    summary="Sign out of the operator dashboard (clears the session cookie)",
    tag="operator pages",
    responses={200: "text/html", 403: "text/html"},
    auth=False,
)
async def logout(request: web.Request) -> web.StreamResponse:
    language = _language(request)
    if not same_origin(request):
        return _respond(sign_in_page(language, 403, "cross_site"))
    response = _respond(sign_in_page(language, 200, "signed_out"))
    clear_session(request, response)
    return response


def _sinks(request: web.Request) -> list[str]:
    events = request.app[CONTAINER].settings.events
    return [hook.name for hook in events.webhooks] + ([events.nats.name] if events.nats.url else [])


def _redirect(location: str) -> web.Response:
    return web.Response(
        status=303,
        text=f'<!doctype html>\n<a href="{escape(location)}">{escape(location)}</a>',
        content_type="text/html",
        charset="utf-8",
        headers={**SECURITY_HEADERS, "Location": location},
    )


def _respond(page: Page) -> web.Response:
    return web.Response(
        status=page.status,
        text=page.html,
        content_type="text/html",
        charset="utf-8",
        headers={**SECURITY_HEADERS, "Content-Language": page.language},
    )
