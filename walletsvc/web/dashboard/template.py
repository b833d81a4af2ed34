"""The dashboard's HTML documents: the page frame, the sign-in page and the error pages.

Every value from the database or the request goes through `escape`; the literals here
are trusted. The one stylesheet is inline and allowed by its hash in the CSP.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from html import escape
from typing import Final

from walletsvc.web.add_page.language import NAMES
from walletsvc.web.dashboard.language import TEXT

STYLE: Final = """
:root{color-scheme:light dark;--fg:#111;--bg:#fff;--muted:#444;--line:#767676}
@media (prefers-color-scheme:dark){:root{--fg:#f5f5f5;--bg:#111;--muted:#ccc;--line:#8f8f8f}}
*{box-sizing:border-box}
body{margin:0;font:1rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:50rem;margin:0 auto;padding:1rem 1rem 2rem}
header{display:flex;flex-wrap:wrap;gap:1rem;align-items:center;justify-content:space-between}
h1{font-size:1.5rem;margin:.5rem 0}h2{font-size:1.2rem;margin:2rem 0 .5rem}
section{border-top:1px solid var(--line)}
figure{margin:0 0 1rem}figcaption{font-weight:600;margin:.75rem 0 .25rem}
.chart{display:block;width:100%;height:auto;font-size:11px;fill:currentColor}
.legend{list-style:none;margin:0 0 .25rem;padding:0;display:flex;gap:1rem;flex-wrap:wrap}
.swatch{width:.8rem;height:.8rem;margin-right:.35rem;vertical-align:-.05rem}
table{border-collapse:collapse;margin:.5rem 0}th,td{text-align:left;padding:.2rem .75rem .2rem 0}
td{font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem;margin:.5rem 0}
dt{color:var(--muted)}dd{margin:0;font-weight:700;font-variant-numeric:tabular-nums}
.note{color:var(--muted);font-size:.9rem}
.notice{border-left:.375rem solid var(--line);padding:.25rem 0 .25rem .75rem}
form{margin:0}label{display:block;font-weight:600;margin:.5rem 0 .25rem}
input,select,button{font:inherit;min-height:2.75rem;padding:.4rem .6rem;
border:2px solid var(--line);border-radius:.4rem;background:var(--bg);color:var(--fg)}
input[type=password]{width:100%}
button{background:var(--fg);color:var(--bg);font-weight:600;cursor:pointer}
:focus-visible{outline:3px solid #1a73e8;outline-offset:2px}
nav{border-top:1px solid var(--line);padding-top:1rem;margin-top:2rem}a{color:inherit}
""".strip()

STYLE_HASH: Final = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()


@dataclass(frozen=True)
class Page:
    """One rendered page and the language it is in."""

    status: int
    language: str
    html: str


def sign_in_page(language: str, status: int = 200, message: str | None = None) -> Page:
    """Render the sign-in form, with what went wrong (a key in `TEXT`) if anything."""
    words = TEXT[language]
    notice = (
        f'<p class="notice" role="alert" id="sign-in-problem">{escape(words[message])}</p>'
        if message
        else ""
    )
    body = (
        f"<h1>{escape(words['sign_in_heading'])}</h1>{notice}"
        f'<form method="post" action="/dashboard/login?lang={language}">'
        f'<label for="key">{escape(words["api_key"])}</label>'
        '<input type="password" id="key" name="key" required autocomplete="off" '
        'spellcheck="false" maxlength="200">'
        f'<p class="note">{escape(words["sign_in_help"])}</p>'
        f'<button type="submit">{escape(words["sign_in"])}</button></form>'
    )
    return Page(status, language, document(language, words["sign_in_heading"], body, "login"))


def message_page(language: str, status: int, message: str) -> Page:
    """Render a short page saying what went wrong (403, 404, 500)."""
    words = TEXT[language]
    body = (
        f"<h1>{escape(words['title'])}</h1>"
        f'<p class="notice" role="alert">{escape(words[message])}</p>'
        f'<p><a href="/dashboard?lang={language}">{escape(words["title"])}</a></p>'
    )
    return Page(status, language, document(language, words["title"], body, ""))


def document(language: str, title: str, body: str, here: str, query: str = "") -> str:
    """Wrap `body` in the page frame with its language switch (links to `here`)."""
    words = TEXT[language]
    target = "/dashboard" + (f"/{here}" if here else "")
    switch = " ".join(
        f'<a href="{target}?{escape(query)}lang={code}" hreflang="{code}" lang="{code}">'
        f"{escape(name)}</a>"
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
