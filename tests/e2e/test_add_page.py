"""The page behind add_url: the pass, buttons in the order of the phone, a QR code, bad links.

Programs with a Google issuer get a save URL because the test settings carry a
service-account key (the Google worker stays off; the link is only checked as a link).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import pytest

from tests.add_page_reader import qr_matrix, read_add_page, save_link_claims, segno_matrix
from tests.conftest import PUBLIC_URL
from tests.helpers import issue_loyalty, path_of, unpack
from walletsvc.bootstrap import build_container
from walletsvc.domain.link_token import make_link_token
from walletsvc.web.app import create_app

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"
)
DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
ISSUER = "3388000000022100042"


async def _google_pass(client: Any, admin: dict[str, str], external_id: str) -> dict[str, Any]:
    program = {
        "id": "baeckerei",
        "name": "Bäckerei Müller Bonus",
        "tiers": [
            {"name": "Bronze", "min_points": 0},
            {"name": "Gold", "min_points": 500, "display_name": {"en": "Gold", "de": "Gold"}},
        ],
        "google": {"issuer_id": ISSUER},
    }
    response = await client.post("/api/v1/programs", json=program, headers=admin)
    assert response.status == 201, await response.text()
    response = await client.post(
        "/api/v1/passes",
        json={"program": "baeckerei", "kind": "loyalty", "customer_external_id": external_id},
        headers=admin,
    )
    assert response.status == 201, await response.text()
    issued: dict[str, Any] = await response.json()
    assert issued["google"]["save_url"]
    return issued


async def _open(client: Any, url: str, **headers: str):
    response = await client.get(path_of(url), headers=headers)
    return response, read_add_page(await response.text())


async def test_add_page_shows_the_card_and_a_working_apple_button(client, admin):
    issued = await issue_loyalty(client, admin, "page-1")
    response, page = await _open(client, issued["add_url"], **{"Accept-Language": "en-GB"})
    assert response.status == 200
    assert response.content_type == "text/html" and response.charset == "utf-8"
    assert page.lang == "en"
    assert "Points" in page.text and "Bronze" in page.text and "Demo" in page.text
    (apple,) = page.wallet_buttons
    assert apple.text == "Add to Apple Wallet"
    assert apple.attrs["href"] == issued["apple"]["pkpass_url"]
    download = await client.get(path_of(apple.attrs["href"]))
    assert download.status == 200
    assert download.content_type == "application/vnd.apple.pkpass"
    assert b'"serialNumber"' in unpack(await download.read())["pass.json"]


async def test_german_from_accept_language_and_a_switch_that_keeps_the_link(client, admin):
    issued = await issue_loyalty(client, admin, "page-2")
    response, page = await _open(
        client, issued["add_url"], **{"Accept-Language": "fr;q=0.9, de-DE;q=0.95, en;q=0.5"}
    )
    assert page.lang == "de" and response.headers["Content-Language"] == "de"
    assert page.wallet_buttons[0].text == "Zu Apple Wallet hinzufügen"
    assert "Punkte" in page.text and "Stufe" in page.text
    (switch,) = [a for a in page.all("a") if a.attrs.get("hreflang")]
    assert switch.text == "English" and switch.attrs["lang"] == "en"
    english_url = urljoin(issued["add_url"], switch.attrs["href"])
    assert english_url.startswith(issued["add_url"] + "?")
    _response, english = await _open(client, english_url, **{"Accept-Language": "de"})
    assert english.lang == "en" and english.wallet_buttons[0].text == "Add to Apple Wallet"
    (back,) = [a for a in english.all("a") if a.attrs.get("hreflang")]
    assert back.text == "Deutsch"


@pytest.mark.parametrize(
    ("user_agent", "order", "has_qr"),
    [
        (IPHONE, ["apple-wallet", "google-wallet"], False),
        (ANDROID, ["google-wallet", "apple-wallet"], False),
        (DESKTOP, ["apple-wallet", "google-wallet"], True),
    ],
    ids=["iphone", "android", "desktop"],
)
async def test_buttons_come_in_the_order_of_the_phone(client, admin, user_agent, order, has_qr):
    issued = await _google_pass(client, admin, "page-order")
    _response, page = await _open(client, issued["add_url"], **{"User-Agent": user_agent})
    assert [a.attrs["id"] for a in page.wallet_buttons] == order
    google = page.by_id("google-wallet")
    # Signed anew for the page (its own iat), for the same object and class.
    assert save_link_claims(google.attrs["href"]) == save_link_claims(issued["google"]["save_url"])
    assert google.text == "Add to Google Wallet"
    assert bool(page.all("svg")) is has_qr


async def test_google_button_only_when_the_pass_has_a_save_url(client, admin):
    issued = await issue_loyalty(client, admin, "page-no-google")
    assert issued["google"]["save_url"] is None
    for user_agent in (IPHONE, ANDROID, DESKTOP):
        _response, page = await _open(client, issued["add_url"], **{"User-Agent": user_agent})
        assert [a.attrs["id"] for a in page.wallet_buttons] == ["apple-wallet"]
        assert "Google" not in page.html


async def test_google_button_speaks_german(client, admin):
    issued = await _google_pass(client, admin, "page-google-de")
    _response, page = await _open(client, issued["add_url"] + "?lang=de", **{"User-Agent": ANDROID})
    assert [a.text for a in page.wallet_buttons] == [
        "Zu Google Wallet hinzufügen",
        "Zu Apple Wallet hinzufügen",
    ]


async def test_desktop_qr_code_opens_this_page(client, admin):
    issued = await issue_loyalty(client, admin, "page-qr")
    _response, page = await _open(client, issued["add_url"], **{"User-Agent": DESKTOP})
    (svg,) = page.all("svg")
    assert svg.attrs["role"] == "img" and "phone" in svg.attrs["aria-label"]
    assert issued["add_url"].startswith(PUBLIC_URL + "/add/")
    assert qr_matrix(page) == segno_matrix(issued["add_url"])
    assert qr_matrix(page) != segno_matrix(issued["add_url"] + "x")


async def test_the_page_carries_its_security_headers(client, admin):
    issued = await issue_loyalty(client, admin, "page-headers")
    response, page = await _open(client, issued["add_url"])
    headers = response.headers
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    style = re.search(r"<style>(.*?)</style>", page.html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy
    assert "<script" not in page.html and " style=" not in page.html
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("de", "Bitte fragen Sie im Geschäft nach einem neuen Link"),
        ("en", "Ask the shop for a new link"),
    ],
)
async def test_expired_link_tells_the_customer_what_to_do(
    client, admin, container, language, words
):
    issued = await issue_loyalty(client, admin, "page-3")
    past = datetime.fromtimestamp(time.time() - 60, UTC)
    token = make_link_token(container.ctx.link_keys[0], issued["serial"], past)
    response = await client.get(f"/add/{token}", headers={"Accept-Language": language})
    assert response.status == 410 and response.content_type == "text/html"
    page = read_add_page(await response.text())
    assert page.lang == language and words in page.text
    assert not page.wallet_buttons and response.headers["Referrer-Policy"] == "no-referrer"
    assert issued["serial"] not in page.html


@pytest.mark.parametrize(
    "token",
    [
        "aaaaaaaaaaaaaaaaaaaaaaaaaa.9999999999.forged",
        "nonsense",
        "%3Cscript%3E",
        "a.²³.b",
    ],
)
async def test_invalid_link_is_not_found_in_html(client, token):
    response = await client.get(f"/add/{token}", headers={"Accept-Language": "de"})
    assert response.status == 404 and response.content_type == "text/html"
    page = read_add_page(await response.text())
    assert "Dieser Link funktioniert nicht" in page.text
    assert "<script>" not in page.html and response.headers["Cache-Control"] == "no-store"


async def test_coupon_preview_shows_title_discount_and_expiry(client, admin):
    response = await client.post(
        "/api/v1/passes",
        json={
            "kind": "coupon",
            "customer_external_id": "page-coupon",
            "coupon": {
                "title": "Winterschlussverkauf",
                "description": "Auf alles <außer> Tiernahrung",
                "discount": "20 %",
                "expires_at": "2027-01-31T12:00:00Z",
            },
        },
        headers=admin,
    )
    issued = await response.json()
    _response, german = await _open(client, issued["add_url"] + "?lang=de")
    assert "Winterschlussverkauf" in german.text and "Auf alles <außer> Tiernahrung" in german.text
    assert "&lt;außer&gt;" in german.html
    assert "Rabatt" in german.text and "20 %" in german.text
    assert "Gültig bis" in german.text and "31. Januar 2027" in german.text
    _response, english = await _open(client, issued["add_url"] + "?lang=en")
    assert "Valid until" in english.text and "31 January 2027" in english.text


async def test_a_voided_card_offers_no_buttons(client, admin):
    issued = await issue_loyalty(client, admin, "page-void")
    voided = await client.post(f"/api/v1/passes/{issued['serial']}/void", json={}, headers=admin)
    assert voided.status == 200
    _response, page = await _open(client, issued["add_url"], **{"Accept-Language": "en"})
    assert not page.wallet_buttons and "no longer valid" in page.text


async def test_program_names_are_escaped(client, admin):
    response = await client.post(
        "/api/v1/programs",
        json={
            "id": "xss",
            "name": "<script>alert(1)</script>",
            "tiers": [{"name": 'A"><b>', "min_points": 0}],
        },
        headers=admin,
    )
    assert response.status == 201
    issued = await (
        await client.post(
            "/api/v1/passes",
            json={"program": "xss", "kind": "loyalty", "customer_external_id": "x1"},
            headers=admin,
        )
    ).json()
    _response, page = await _open(client, issued["add_url"])
    assert "<script>" not in page.html and "&lt;script&gt;" in page.html
    assert "<b>" not in page.html and not page.all("b")


async def test_the_page_never_extends_a_links_life(client, admin, container):
    issued = await issue_loyalty(client, admin, "page-4")
    soon = datetime.fromtimestamp(time.time() + 120, UTC)
    token = make_link_token(container.ctx.link_keys[0], issued["serial"], soon)
    page = read_add_page(await (await client.get(f"/add/{token}")).text())
    assert page.wallet_buttons[0].attrs["href"] == f"{PUBLIC_URL}/add/{token}/pass.pkpass"
    _response, desktop = await _open(client, f"{PUBLIC_URL}/add/{token}", **{"User-Agent": DESKTOP})
    assert qr_matrix(desktop) == segno_matrix(f"{PUBLIC_URL}/add/{token}")


async def test_a_failing_service_apologises_in_html(
    client, admin, make_settings, tmp_path, aiohttp_client
):
    issued = await issue_loyalty(client, admin, "page-down")
    # The same keys, but a database that cannot be opened: the link is real, the look-up fails.
    unreachable = f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'dir' / 'walletsvc.db'}"
    broken = build_container(make_settings(database_url=unreachable))
    try:
        app = create_app(broken)
        # Only the page is under test; the background workers would fail on the same
        # database round after round and slow the test down with their logs.
        app.cleanup_ctx.clear()
        down = await aiohttp_client(app)
        response = await down.get(path_of(issued["add_url"]), headers={"Accept-Language": "de"})
        assert response.status == 500 and response.content_type == "text/html"
        page = read_add_page(await response.text())
        assert page.lang == "de" and "Etwas ist schiefgelaufen" in page.text
        assert "Traceback" not in page.html and not page.wallet_buttons
        assert response.headers["Referrer-Policy"] == "no-referrer"
    finally:
        await broken.close()
