"""The operator dashboard in a real browser: headless Chromium, JavaScript off, signs in
through the form and sees the charts drawn.

Screenshots go to test-artifacts/browser/ (ignored by git).
"""

from __future__ import annotations

import json

import pytest

from tests.conformance.test_apple_web_service import TOKEN
from tests.dashboard_reader import read_dashboard
from tests.e2e.browser.conftest import Live, screenshot
from tests.helpers import unpack

pytestmark = pytest.mark.browser


async def _install(live: Live, external_id: str) -> None:
    """Issue a pass and register it on a device, as Apple Wallet does after "Add"."""
    issued = await live.call(
        "POST", "/api/v1/passes", {"kind": "loyalty", "customer_external_id": external_id}
    )
    async with live.session.get(issued["apple"]["pkpass_url"]) as download:
        assert download.status == 200
        document = json.loads(unpack(await download.read())["pass.json"])
    device = (external_id.encode().hex() + "0" * 32)[:32]
    async with live.session.post(
        f"{live.base_url}/apple/v1/devices/{device}/registrations/"
        f"{document['passTypeIdentifier']}/{document['serialNumber']}",
        json={"pushToken": TOKEN},
        headers={"Authorization": f"ApplePass {document['authenticationToken']}"},
    ) as registered:
        assert registered.status == 201, await registered.text()


async def _key(live: Live) -> str:
    made = await live.call(
        "POST", "/api/v1/api-keys", {"name": "operator", "scopes": ["dashboard:read"]}
    )
    key: str = made["key"]
    return key


async def test_an_operator_signs_in_and_sees_the_charts(live, browse):
    await _install(live, "browser-1")
    await _install(live, "browser-2")
    store = {"id": "berlin", "name": "Berlin", "latitude": 52.52, "longitude": 13.405}
    await live.call("POST", "/api/v1/stores", {**store, "program": "demo", "radius_m": 100})
    key = await _key(live)
    desk = await browse("Desktop Chrome")
    page = desk.page
    response = await page.goto(live.base_url + "/dashboard")
    assert page.url.startswith(live.base_url + "/dashboard/login")  # sent to sign in
    assert response.status == 200
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(live.base_url + "/dashboard?lang=en")
    await screenshot(page, "dashboard-en")

    reading = read_dashboard(await page.content())
    assert reading.total("installs", "apple") == 2
    charts = page.locator("svg.chart")
    assert await charts.count() >= 5
    for index in range(await charts.count()):
        chart = charts.nth(index)
        assert await chart.is_visible()
        box = await chart.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 30, box
    # The installs bar of today is drawn with a height (not a zero-size rect).
    bar = page.locator('rect[data-chart="installs"][data-series="apple"][data-value="2"]')
    box = await bar.bounding_box()
    assert box is not None and box["height"] > 10 and box["width"] > 1
    # Everything came from this service; no script, font or image was fetched.
    assert all(url.startswith(live.base_url) for url in desk.requested)

    cookies = await desk.context.cookies()
    (session,) = [c for c in cookies if c["name"] == "walletsvc_dashboard"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and key not in session["value"]

    await page.get_by_role("button", name="Sign out").click()
    assert [c for c in await desk.context.cookies() if c["name"] == "walletsvc_dashboard"] == []
    await page.goto(live.base_url + "/dashboard")
    assert "/dashboard/login" in page.url


async def test_the_german_dashboard(live, browse):
    key = await _key(live)
    desk = await browse("Desktop Chrome", locale="de-DE")
    page = desk.page
    await page.goto(live.base_url + "/dashboard/login")
    await page.get_by_label("API-Schlüssel").fill(key)
    await page.get_by_role("button", name="Anmelden").click()
    await page.wait_for_url(live.base_url + "/dashboard?lang=de")
    assert await page.get_by_role("heading", name="Betriebs-Dashboard").is_visible()
    assert await page.locator("svg.chart").first.is_visible()
    await screenshot(page, "dashboard-de")
