"""The customer's add-to-wallet page behind `add_url` (German or English, no JavaScript).

A first, plain version: the pass at a glance and the Apple Wallet button. The
richer page (platform ordering, Google button, QR code for desktops) is planned.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

from walletsvc.domain.errors import NotFound
from walletsvc.domain.link_token import ExpiredLink
from walletsvc.domain.wallet_pass import PassKind
from walletsvc.services.passes import LinkedPass, open_link
from walletsvc.web.api import router
from walletsvc.web.keys import CONTAINER

TEXT = {
    "en": {
        "title": "Add your card to your wallet",
        "apple": "Add to Apple Wallet",
        "points": "Points",
        "tier": "Tier",
        "expired": "This link has expired. Ask the shop for a new one, or open the "
        "latest message they sent you.",
        "invalid": "This link is not valid. Check that you opened the whole link.",
        "other": "Deutsch",
    },
    "de": {
        "title": "Karte zur Wallet hinzufügen",
        "apple": "Zu Apple Wallet hinzufügen",
        "points": "Punkte",
        "tier": "Stufe",
        "expired": "Dieser Link ist abgelaufen. Bitte fragen Sie im Geschäft nach einem neuen "
        "oder öffnen Sie die neueste Nachricht, die Sie bekommen haben.",
        "invalid": "Dieser Link ist ungültig. Bitte prüfen Sie, ob Sie ihn vollständig "
        "geöffnet haben.",
        "other": "English",
    },
}


def language_of(request: web.Request) -> str:
    """Pick German or English from ?lang= or Accept-Language; English otherwise."""
    chosen = request.query.get("lang")
    if chosen in TEXT:
        return chosen
    ranked = []
    for part in request.headers.get("Accept-Language", "").split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((quality, tag.split("-")[0].lower()))
    for _quality, tag in sorted(ranked, reverse=True):
        if tag in TEXT:
            return tag
    return "en"


@router.route(
    "GET",
    "/add/{token}",
    summary="The customer's add-to-wallet page (HTML)",
    tag="customer pages",
    responses={200: "text/html"},
    auth=False,
)
async def add_page(request: web.Request) -> web.Response:
    lang = language_of(request)
    words = TEXT[lang]
    try:
        linked = await open_link(request.app[CONTAINER].ctx, request.match_info["token"])
    except ExpiredLink:
        return _page(lang, words["title"], f"<p>{escape(words['expired'])}</p>", status=410)
    except NotFound:
        return _page(lang, words["title"], f"<p>{escape(words['invalid'])}</p>", status=404)
    return _page(lang, linked.program.name, _card(linked, words))


def _card(linked: LinkedPass, words: dict[str, str]) -> str:
    if linked.wallet_pass.kind is PassKind.LOYALTY:
        facts = (
            f"<p>{escape(words['points'])}: <strong>{linked.customer.points_balance}</strong>"
            f" · {escape(words['tier'])}: <strong>{escape(linked.customer.tier)}</strong></p>"
        )
    else:
        coupon = linked.wallet_pass.coupon
        title = coupon.title if coupon else ""
        discount = coupon.discount if coupon and coupon.discount else ""
        facts = f"<p><strong>{escape(title)}</strong> {escape(discount)}</p>"
    return (
        f'{facts}<p><a class=button href="{escape(linked.pkpass_url)}">'
        f"{escape(words['apple'])}</a></p>"
    )


def _page(lang: str, heading: str, body: str, status: int = 200) -> web.Response:
    other = "de" if lang == "en" else "en"
    html = f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(heading)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem}}
.button{{display:inline-block;padding:.8rem 1.2rem;background:#000;color:#fff;border-radius:.5rem;
text-decoration:none}}</style></head>
<body><main><h1>{escape(heading)}</h1>{body}
<p><a href="?lang={other}">{escape(TEXT[lang]["other"])}</a></p>
</main></body></html>"""
    return web.Response(
        status=status,
        text=html,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )
