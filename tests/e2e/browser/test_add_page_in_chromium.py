"""The add page in a real browser: headless Chromium emulating an iPhone, an Android phone
and a desktop, against the service on a real TCP port, with JavaScript switched off.

Screenshots of each page go to test-artifacts/browser/ (ignored by git), named after
the test and the device. Run only these with `pytest -m browser`.
"""

from __future__ import annotations

import time
import zipfile
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.add_page_reader import qr_matrix, read_add_page, save_link_claims, segno_matrix
from tests.conftest import CERTS
from tests.e2e.browser.conftest import Live, screenshot
from tests.helpers import verify_pkpass
from walletsvc.domain.link_token import make_link_token

pytestmark = pytest.mark.browser

ISSUER = "3388000000022100077"
APPLE_EN = "Add to Apple Wallet"
GOOGLE_EN = "Add to Google Wallet"


async def _issue(live: Live, external_id: str) -> dict[str, Any]:
    """Issue a loyalty card in a program with a Google issuer, as a brand's backend would."""
    await live.call(
        "POST",
        "/api/v1/programs",
        {
            "id": "kaffeebar",
            "name": "Kaffeebar Treuekarte",
            "tiers": [{"name": "Bronze", "min_points": 0}, {"name": "Gold", "min_points": 100}],
            "google": {"issuer_id": ISSUER},
        },
    )
    issued = await live.call(
        "POST",
        "/api/v1/passes",
        {"program": "kaffeebar", "kind": "loyalty", "customer_external_id": external_id},
    )
    assert issued["add_url"].startswith(live.base_url + "/add/")
    assert issued["google"]["save_url"]
    return issued


async def _wallet_links(page: Any) -> list[str]:
    return [text.strip() for text in await page.locator("a.wallet").all_inner_texts()]


async def test_iphone_offers_apple_first_and_downloads_a_valid_pass(live, browse, tmp_path):
    issued = await _issue(live, "browser-iphone")
    phone = await browse("iPhone 13")
    response = await phone.page.goto(issued["add_url"])
    assert response.status == 200
    assert await _wallet_links(phone.page) == [APPLE_EN, GOOGLE_EN]
    assert await phone.page.locator("svg.qr").count() == 0
    # One request, the page itself: no script, stylesheet, font or image to wait for.
    assert phone.requested == [issued["add_url"]]
    await screenshot(phone.page, "iphone")

    async with phone.page.expect_download() as started:
        await phone.page.get_by_role("link", name=APPLE_EN).click()
    download = await started.value
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    assert saved.name == f"{issued['serial']}.pkpass"
    assert zipfile.is_zipfile(saved)
    pass_json = verify_pkpass(saved.read_bytes(), CERTS / "wwdr-dev-ca.pem", tmp_path / "check")
    assert pass_json["serialNumber"] == issued["serial"]


async def test_android_offers_google_first_with_the_save_link_in_german(live, browse):
    issued = await _issue(live, "browser-android")
    phone = await browse("Pixel 7", locale="de-DE")
    await phone.page.goto(issued["add_url"])
    assert await phone.page.locator("html").get_attribute("lang") == "de"
    assert await _wallet_links(phone.page) == [
        "Zu Google Wallet hinzufügen",
        "Zu Apple Wallet hinzufügen",
    ]
    google = phone.page.get_by_role("link", name="Zu Google Wallet hinzufügen")
    href = await google.get_attribute("href")
    assert save_link_claims(href) == save_link_claims(issued["google"]["save_url"])
    assert await phone.page.get_by_role("heading", level=1).inner_text() == (
        "Karte zur Wallet hinzufügen"
    )
    assert "Punkte" in await phone.page.locator(".card").inner_text()
    # Mobile-first: nothing wider than the phone's screen.
    width = await phone.page.evaluate("document.documentElement.scrollWidth")
    assert width <= phone.page.viewport_size["width"]
    await screenshot(phone.page, "android-de")


async def test_desktop_shows_both_buttons_a_qr_code_and_switches_to_german(live, browse):
    issued = await _issue(live, "browser-desktop")
    desktop = await browse("Desktop Chrome", locale="en-GB")
    await desktop.page.goto(issued["add_url"])
    assert await _wallet_links(desktop.page) == [APPLE_EN, GOOGLE_EN]
    qr = desktop.page.get_by_role("img", name="QR code that opens this page on a phone")
    assert await qr.is_visible()
    box = await qr.bounding_box()
    assert box["width"] >= 150 and box["height"] >= 150  # big enough for a phone camera
    page = read_add_page(await desktop.page.content())
    assert qr_matrix(page) == segno_matrix(issued["add_url"])
    await screenshot(desktop.page, "desktop-en")

    await desktop.page.get_by_role("link", name="Deutsch").click()
    await desktop.page.wait_for_url(issued["add_url"] + "?lang=de")
    assert await desktop.page.locator("html").get_attribute("lang") == "de"
    assert await _wallet_links(desktop.page) == [
        "Zu Apple Wallet hinzufügen",
        "Zu Google Wallet hinzufügen",
    ]
    assert await desktop.page.get_by_role("heading", name="Am Computer?").is_visible()
    await screenshot(desktop.page, "desktop-de")


async def test_an_expired_link_tells_the_customer_in_german_what_to_do(live, browse):
    issued = await _issue(live, "browser-expired")
    past = datetime.fromtimestamp(time.time() - 60, UTC)
    token = make_link_token(live.container.ctx.link_keys[0], issued["serial"], past)
    phone = await browse("iPhone 13", locale="de-DE")
    response = await phone.page.goto(f"{live.base_url}/add/{token}")
    assert response.status == 410
    assert await phone.page.get_by_role("heading", level=1).inner_text() == (
        "Dieser Link ist abgelaufen"
    )
    assert "fragen Sie im Geschäft nach einem neuen Link" in await phone.page.inner_text("main")
    assert await phone.page.locator("a.wallet").count() == 0
    await screenshot(phone.page, "iphone-expired-de")
