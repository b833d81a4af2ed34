"""Read the add page as a browser would see its structure: buttons, links, the QR code.

Parsed with the standard library's HTML parser, so tests check elements and decoded
attributes rather than the exact bytes of the markup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import jwt
import segno


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""


@dataclass
class AddPage:
    html: str
    lang: str = ""
    elements: list[Element] = field(default_factory=list)

    def all(self, tag: str) -> list[Element]:
        return [e for e in self.elements if e.tag == tag]

    def by_id(self, ident: str) -> Element | None:
        return next((e for e in self.elements if e.attrs.get("id") == ident), None)

    @property
    def wallet_buttons(self) -> list[Element]:
        """The wallet buttons in the order the page offers them."""
        return [e for e in self.all("a") if e.attrs.get("class") == "wallet"]

    @property
    def text(self) -> str:
        return " ".join(e.text for e in self.elements)


class _Reader(HTMLParser):
    def __init__(self, page: AddPage) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        if tag == "html":
            self.page.lang = element.attrs.get("lang", "")
        self.page.elements.append(element)
        if tag not in {"meta", "br", "img", "path", "link"}:
            self.open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self.open:
            if self.open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self.open:
            if element.tag not in {"style", "title"}:
                element.text += data


def read_add_page(html: str) -> AddPage:
    """Return the page's elements in document order."""
    page = AddPage(html)
    _Reader(page).feed(html)
    return page


def qr_matrix(page: AddPage) -> list[list[bool]]:
    """Decode the QR code's SVG path (horizontal runs of dark modules) into its matrix."""
    svg = page.all("svg")[0]
    width = int(svg.attrs["viewbox"].split()[2])
    d = page.all("path")[0].attrs["d"]
    grid = [[False] * width for _ in range(width)]
    x = y = 0.0
    for command, a, b in re.findall(r"([MmHh])(-?[\d.]+)(?:\s(-?[\d.]+))?", d):
        if command == "M":
            x, y = float(a), float(b)
        elif command == "m":
            x, y = x + float(a), y + float(b)
        else:  # a horizontal line through the middle of a row of modules
            run = float(a)
            for column in range(int(x), int(x + run)):
                grid[int(y)][column] = True
            x += run
    return grid


def segno_matrix(url: str, border: int = 4) -> list[list[bool]]:
    """Return the modules of segno's own encoding of `url`, quiet zone included."""
    code = segno.make(url, error="m", micro=False, boost_error=False)
    return [[bool(m) for m in row] for row in code.matrix_iter(border=border)]


def save_link_claims(url: str) -> dict[str, object]:
    """Return what a Google save link asks for, without `iat` (each link is signed anew)."""
    prefix = "https://pay.google.com/gp/v/save/"
    assert url.startswith(prefix), url
    claims = jwt.decode(url[len(prefix) :], options={"verify_signature": False})
    claims.pop("iat", None)
    return dict(claims)
