"""`GET /add/{token}`: the page a customer opens from the link the shop sent them."""

from __future__ import annotations

from typing import Final

import structlog
from aiohttp import web

from walletsvc.domain.errors import NotFound
from walletsvc.domain.link_token import ExpiredLink
from walletsvc.services.passes import open_link
from walletsvc.web.add_page.language import choose_language
from walletsvc.web.add_page.platform import platform_of
from walletsvc.web.add_page.template import (
    STYLE_HASH,
    Page,
    failure_page,
    link_problem_page,
    pass_page,
)
from walletsvc.web.api import router
from walletsvc.web.keys import CONTAINER

log = structlog.get_logger("walletsvc.add_page")

# No script may run; the only style is the page's own. No referrer leaves the page,
# so the token in its URL never reaches Google or anyone a link leads to.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src '{STYLE_HASH}'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "Vary": "Accept-Language, User-Agent",
}


@router.route(
    "GET",
    "/add/{token}",
    summary="The customer's add-to-wallet page (HTML)",
    tag="customer pages",
    responses={200: "text/html", 404: "text/html", 410: "text/html"},
    auth=False,
)
async def add_page(request: web.Request) -> web.Response:
    language = choose_language(
        request.query.get("lang"), request.headers.get("Accept-Language", "")
    )
    try:
        linked = await open_link(request.app[CONTAINER].ctx, request.match_info["token"])
    except ExpiredLink:
        return _respond(link_problem_page(language, expired=True))
    except NotFound:
        return _respond(link_problem_page(language, expired=False))
    except Exception as error:
        # A person reads this page: an apology in their language, not problem+json.
        # Only the error's class is logged: a traceback's locals would show the token.
        log.error("add_page.failed", error=type(error).__name__)
        return _respond(failure_page(language))
    platform = platform_of(request.headers.get("User-Agent", ""))
    return _respond(pass_page(linked, language, platform))


def _respond(page: Page) -> web.Response:
    return web.Response(
        status=page.status,
        text=page.html,
        content_type="text/html",
        charset="utf-8",
        headers={**SECURITY_HEADERS, "Content-Language": page.language},
    )
