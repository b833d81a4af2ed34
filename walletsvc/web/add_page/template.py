"""The add page's HTML: the pass preview, the wallet buttons, the QR code, the error pages.

Every value from the database or the request goes through `escape` before it reaches
the page; the literals here are trusted. The one stylesheet is inline and allowed by
its hash in the Content-Security-Policy, so the page needs no second request and runs
no script at all.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from html import escape
from typing import Final

from walletsvc.domain.wallet_pass import PassKind, PassState
from walletsvc.services.passes import LinkedPass
from walletsvc.web.add_page.language import NAMES, TEXT, long_date
from walletsvc.web.add_page.platform import Platform
from walletsvc.web.add_page.qr import qr_svg

# Black on white (21:1) and white on black; focus rings are 3px and never removed.
# Buttons are at least 48px tall, the size of a thumb (WCAG 2.5.5 asks for 44).
STYLE: Final = """
:root{color-scheme:light dark;--fg:#111;--bg:#fff;--muted:#444;--line:#767676}
@media (prefers-color-scheme:dark){:root{--fg:#f5f5f5;--bg:#111;--muted:#ccc;--line:#8f8f8f}}
*{box-sizing:border-box}
body{margin:0;font:1.0625rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:30rem;margin:0 auto;padding:1.25rem 1rem 2rem}
h1{font-size:1.5rem;line-height:1.25;margin:.5rem 0 1rem}
h2{font-size:1.125rem;margin:0 0 .5rem}
p{margin:0 0 1rem}
.card{border:2px solid var(--line);border-radius:.75rem;padding:1rem;margin:0 0 1.5rem}
.card dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem;margin:0}
.card dt{color:var(--muted)}.card dd{margin:0;font-weight:700}
.wallets{list-style:none;margin:0 0 1.5rem;padding:0;display:grid;gap:.75rem}
.wallet{display:flex;align-items:center;justify-content:center;min-height:3rem;
padding:.75rem 1rem;border-radius:.75rem;background:#000;color:#fff;font-weight:600;
text-decoration:none;border:2px solid #000}
@media (prefers-color-scheme:dark){.wallet{border-color:#fff}}
.wallet:hover{text-decoration:underline}
a:focus-visible{outline:3px solid #1a73e8;outline-offset:3px}
a{color:inherit}
.qr{display:block;width:12rem;height:12rem;background:#fff;shape-rendering:crispEdges}
.notice{border-left:.375rem solid var(--line);padding:.25rem 0 .25rem .75rem}
nav{border-top:1px solid var(--line);padding-top:1rem;margin-top:1rem}
nav a{display:inline-block;min-height:3rem;padding:.75rem 0}
""".strip()

STYLE_HASH: Final = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()


@dataclass(frozen=True)
class Page:
    """One rendered page and the language it is in."""

    status: int
    language: str
    html: str


def pass_page(linked: LinkedPass, language: str, platform: Platform) -> Page:
    """Render the page of a pass the link opened, buttons ordered for `platform`."""
    words = TEXT[language]
    wallet_pass = linked.wallet_pass
    heading = words["title"] if wallet_pass.kind is PassKind.LOYALTY else words["coupon_title"]
    parts = [f"<h1>{escape(heading)}</h1>", _preview(linked, language)]
    unusable = _unusable(linked, language)
    if unusable:
        parts.append(f'<p class="notice" role="status">{escape(unusable)}</p>')
    else:
        parts.append(f"<p>{escape(words['lead'])}</p>")
        parts.append(_buttons(linked, language, platform))
        if platform is Platform.DESKTOP:
            parts.append(_qr(linked, language))
    title = f"{heading} · {linked.program.name}"
    return Page(200, language, _document(language, title, "".join(parts)))


def link_problem_page(language: str, *, expired: bool) -> Page:
    """Render what a customer sees for an expired (410) or unknown (404) link."""
    words = TEXT[language]
    key = "expired" if expired else "invalid"
    heading = words[f"{key}_heading"]
    body = f"<h1>{escape(heading)}</h1><p>{escape(words[key])}</p>"
    return Page(410 if expired else 404, language, _document(language, heading, body))


def failure_page(language: str) -> Page:
    """Render what a customer sees when the service fails (500): try again later."""
    words = TEXT[language]
    body = f"<h1>{escape(words['failed_heading'])}</h1><p>{escape(words['failed'])}</p>"
    return Page(500, language, _document(language, words["failed_heading"], body))


def _preview(linked: LinkedPass, language: str) -> str:
    words = TEXT[language]
    program = linked.program
    facts: list[tuple[str, str]] = []
    coupon = linked.wallet_pass.coupon
    if linked.wallet_pass.kind is PassKind.LOYALTY:
        title = program.name
        facts.append((words["points"], _number(linked.customer.points_balance, language)))
        facts.append((words["tier"], _tier_name(linked, language)))
        description = None
    else:
        title = coupon.title if coupon else program.name
        description = coupon.description if coupon else None
        if coupon and coupon.discount:
            facts.append((words["discount"], coupon.discount))
        if coupon and coupon.expires_at:
            facts.append((words["valid_until"], long_date(coupon.expires_at, language)))
    html = ['<section class="card" aria-labelledby="pass-name">']
    if linked.wallet_pass.kind is PassKind.COUPON:
        html.append(f"<p>{escape(program.name)}</p>")
    html.append(f'<h2 id="pass-name">{escape(title)}</h2>')
    if description:
        html.append(f"<p>{escape(description)}</p>")
    if facts:
        rows = "".join(f"<dt>{escape(name)}</dt><dd>{escape(value)}</dd>" for name, value in facts)
        html.append(f"<dl>{rows}</dl>")
    html.append("</section>")
    return "".join(html)


def _number(value: int, language: str) -> str:
    # 1,250 in English, 1.250 in German.
    grouped = f"{value:,}"
    return grouped.replace(",", ".") if language == "de" else grouped


def _tier_name(linked: LinkedPass, language: str) -> str:
    for tier in linked.program.tiers:
        if tier.name == linked.customer.tier:
            return tier.shown.in_language(language)
    return linked.customer.tier


def _unusable(linked: LinkedPass, language: str) -> str | None:
    words = TEXT[language]
    state = linked.wallet_pass.state
    if state is PassState.VOIDED:
        return words["voided"]
    if state is PassState.REDEEMED:
        return words["redeemed"]
    if state is PassState.EXPIRED:
        return words["pass_expired"]
    return None


def _buttons(linked: LinkedPass, language: str, platform: Platform) -> str:
    words = TEXT[language]
    apple = (
        f'<li><a class="wallet" id="apple-wallet" href="{escape(linked.pkpass_url)}" '
        f'type="application/vnd.apple.pkpass">{escape(words["apple"])}</a></li>'
    )
    buttons = [apple]
    # Without a save URL (no Google issuer on the program) there is nothing to offer.
    if linked.google_save_url:
        google = (
            f'<li><a class="wallet" id="google-wallet" href="{escape(linked.google_save_url)}">'
            f"{escape(words['google'])}</a></li>"
        )
        buttons.insert(0 if platform is Platform.ANDROID else 1, google)
    return f'<ul class="wallets" aria-label="{escape(words["buttons"])}">{"".join(buttons)}</ul>'


def _qr(linked: LinkedPass, language: str) -> str:
    words = TEXT[language]
    return (
        '<section aria-labelledby="qr-heading">'
        f'<h2 id="qr-heading">{escape(words["qr_heading"])}</h2>'
        f"<p>{escape(words['qr_help'])}</p>"
        f"{qr_svg(linked.add_url, words['qr_label'])}</section>"
    )


def _document(language: str, title: str, body: str) -> str:
    words = TEXT[language]
    # The switch is a relative link, so it keeps the token in the path.
    switch = " ".join(
        f'<a href="?lang={code}" hreflang="{code}" lang="{code}">{escape(name)}</a>'
        for code, name in NAMES.items()
        if code != language
    )
    return (
        f'<!doctype html>\n<html lang="{language}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}"
        f'<nav aria-label="{escape(words["language"])}">{switch}</nav>'
        "</main></body></html>"
    )
