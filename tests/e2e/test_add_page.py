"""The page behind add_url: the pass, the Apple button, clear words for a bad link."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from tests.helpers import issue_loyalty, path_of
from walletsvc.domain.link_token import make_link_token


async def test_add_page_shows_the_card_and_a_working_apple_button(client, admin):
    issued = await issue_loyalty(client, admin, "page-1")
    page = await client.get(path_of(issued["add_url"]), headers={"Accept-Language": "en-GB"})
    assert page.status == 200
    html = await page.text()
    assert "Add to Apple Wallet" in html and "Bronze" in html
    button = re.search(r'class=button href="([^"]+)"', html).group(1)
    download = await client.get(path_of(button.replace("&amp;", "&")))
    assert download.status == 200
    assert download.content_type == "application/vnd.apple.pkpass"


async def test_add_page_speaks_german_when_asked(client, admin):
    issued = await issue_loyalty(client, admin, "page-2")
    german = await client.get(
        path_of(issued["add_url"]), headers={"Accept-Language": "fr;q=0.9, de-DE;q=0.95, en;q=0.5"}
    )
    html = await german.text()
    assert '<html lang="de">' in html and "Zu Apple Wallet hinzufügen" in html
    switched = await client.get(path_of(issued["add_url"]) + "?lang=en")
    assert "Add to Apple Wallet" in await switched.text()


async def test_expired_link_tells_the_customer_what_to_do(client, admin, container):
    issued = await issue_loyalty(client, admin, "page-3")
    past = datetime.fromtimestamp(time.time() - 60, UTC)
    token = make_link_token(container.ctx.link_keys[0], issued["serial"], past)
    page = await client.get(f"/add/{token}", headers={"Accept-Language": "de"})
    assert page.status == 410
    assert "abgelaufen" in await page.text()


async def test_forged_link_is_not_found(client):
    page = await client.get("/add/aaaaaaaaaaaaaaaaaaaaaaaaaa.9999999999.forged")
    assert page.status == 404
    assert page.content_type == "text/html"


async def test_program_names_are_escaped(client, admin):
    response = await client.post(
        "/api/v1/programs",
        json={
            "id": "xss",
            "name": "<script>alert(1)</script>",
            "tiers": [{"name": "A", "min_points": 0}],
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
    html = await (await client.get(path_of(issued["add_url"]))).text()
    assert "<script>" not in html and "&lt;script&gt;" in html


async def test_the_page_never_extends_a_links_life(client, admin, container):
    issued = await issue_loyalty(client, admin, "page-4")
    soon = datetime.fromtimestamp(time.time() + 120, UTC)
    token = make_link_token(container.ctx.link_keys[0], issued["serial"], soon)
    html = await (await client.get(f"/add/{token}")).text()
    button = re.search(r'class=button href="([^"]+)"', html).group(1)
    assert f"/add/{token}/pass.pkpass" in button
