"""`/dashboard`: the operator's page shows what real flows recorded, to whom it may.

Passes are issued and installed through Apple's web service, scanned at a till,
visited through geofence claims; the page is then read by the figures its charts
carry (`data-*` attributes), never by patching anything of walletsvc.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from tests.conformance.test_apple_web_service import OTHER_DEVICE, Wallet
from tests.conftest import ADMIN_KEY, EXTERNAL_DATABASE, empty_all_tables
from tests.dashboard_reader import DashboardReading, read_dashboard
from tests.e2e.test_access import make_key, make_program
from tests.e2e.test_geofence import add_customer, report
from tests.e2e.test_scans import _till
from tests.helpers import issue_loyalty
from walletsvc.bootstrap import build_container, prepare_database
from walletsvc.domain.dashboard_session import make_session_token
from walletsvc.services.api_keys import hash_secret
from walletsvc.web.app import create_app
from walletsvc.web.dashboard.session import COOKIE


def _key_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def _page(client: Any, headers: dict[str, str], query: str = "") -> DashboardReading:
    response = await client.get(f"/dashboard{query}", headers=headers, allow_redirects=False)
    html = await response.text()
    assert response.status == 200, html
    assert response.content_type == "text/html"
    return read_dashboard(html)


async def _sign_in(client: Any, key: str, **headers: str) -> Any:
    return await client.post(
        "/dashboard/login", data={"key": key}, headers=headers, allow_redirects=False
    )


def _cookie_header(response: Any) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={response.cookies[COOKIE].value}"}


async def test_the_page_shows_installs_scans_visits_coupons_and_tiers(client, admin, container):
    till = await _till(client, admin)
    wallet = Wallet(client, admin)
    first = await wallet.pass_json(await issue_loyalty(client, admin, "crm-1"))
    second = await wallet.pass_json(await issue_loyalty(client, admin, "crm-2"))
    assert await wallet.register(first) == 201
    assert await wallet.register(second, device=OTHER_DEVICE, push_token="ef" * 32) == 201
    removed = await client.delete(
        Wallet.registration(second, OTHER_DEVICE), headers=Wallet.auth(second)
    )
    assert removed.status == 200
    barcode = first["barcodes"][0]["message"]
    assert (await till.scan(barcode, "purchase", amount="600.00"))[0] == 200
    assert (await till.scan(barcode))[0] == 200
    coupon = await wallet.pass_json(await wallet.coupon("crm-2"))
    assert (await till.scan(coupon["barcodes"][0]["message"], "redeem"))[0] == 200
    visitor = await add_customer(client, admin, "app-user-1", location=True)
    status, answer = await report(client, admin, visitor, store_id="berlin")
    assert (status, answer["accepted"]) == (202, True), answer

    page = await _page(client, admin)
    today = datetime.now(UTC).date().isoformat()  # the page's last day (UTC)

    assert page.program == "demo" and page.programs == ["demo"]
    assert page.bar("installs", "apple", today) == 2
    assert page.bar("removals", "apple", today) == 1
    assert page.total("installs", "google") == page.total("removals", "google") == 0
    assert page.bar("stores", "scans", "berlin") == 3  # purchase, identify, redeem
    assert page.bar("stores", "visits", "berlin") == 1
    assert page.bar("coupons", "redeemed", today) == 1
    assert page.total("coupons", "redeemed") == 1
    assert page.bar("tiers", "customers", "Silver") == 1
    assert page.bar("tiers", "customers", "Bronze") == 2  # crm-2 and the visitor
    # 30 days of bars per daily chart, the oldest 29 days ago.
    assert len([k for k in page.bars if k[:2] == ("installs", "apple")]) == 30
    # The registered device is owed a push for the purchase (no APNs in tests).
    assert int(page.figures["apns-owed"]) >= 1
    assert page.svgs >= 5 and page.scripts == 0 and page.style_attributes == 0


async def test_events_of_another_program_and_outside_the_window_are_not_counted(
    client, admin, container
):
    wallet = Wallet(client, admin)
    document = await wallet.pass_json(await issue_loyalty(client, admin, "crm-1"))
    assert await wallet.register(document) == 201
    # Setting the stage: the install happened 40 days ago, outside the 30-day window.
    async with container.engine.begin() as connection:
        await connection.execute(
            text("UPDATE outbox SET recorded_at = :then WHERE type LIKE '%pass_installed%'"),
            {"then": datetime.now(UTC) - timedelta(days=40)},
        )
    await make_program(client, admin, "other")
    page = await _page(client, admin, "?program=other")
    assert page.program == "other" and page.programs == ["demo", "other"]
    assert sum(page.bars.values()) == 0
    demo = await _page(client, admin, "?program=demo")
    assert demo.total("installs", "apple") == 0


async def test_without_a_session_the_page_sends_the_browser_to_sign_in(client):
    response = await client.get("/dashboard?lang=de", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/dashboard/login?lang=de"
    form = await client.get("/dashboard/login", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert form.status == 200 and form.content_type == "text/html"
    html = await form.text()
    assert "Beim Betriebs-Dashboard anmelden" in html and '<html lang="de">' in html
    assert "script" not in html
    assert "style-src 'sha256-" in form.headers["Content-Security-Policy"]


async def test_signing_in_sets_a_signed_cookie_naming_the_key_not_holding_it(client, admin):
    key = _key_of(await make_key(client, admin, ["dashboard:read"]))
    response = await _sign_in(client, key)
    assert response.status == 303 and response.headers["Location"].startswith("/dashboard?")
    morsel = response.cookies[COOKIE]
    key_id, secret = key.removeprefix("wsk_").split(".")
    assert morsel.value.startswith(f"{key_id}.") and secret not in morsel.value
    assert morsel["httponly"] and morsel["samesite"] == "Strict"
    assert morsel["path"] == "/dashboard" and not morsel["secure"]  # PUBLIC_URL is http here
    assert int(morsel["max-age"]) == 8 * 3600
    client.session.cookie_jar.clear()
    page = await _page(client, _cookie_header(response))
    assert page.program == "demo"
    signed_out = await client.post(
        "/dashboard/logout", headers=_cookie_header(response), allow_redirects=False
    )
    assert signed_out.status == 200 and signed_out.cookies[COOKIE].value == ""


async def test_a_wrong_key_shows_the_form_again_with_a_message(client):
    response = await _sign_in(client, "wsk_0123456789abcdef.not-the-secret")
    assert (response.status, response.content_type) == (401, "text/html")
    html = await response.text()
    assert "not valid" in html and 'id="sign-in-problem"' in html
    assert "Traceback" not in html and COOKIE not in response.cookies
    empty = await client.post("/dashboard/login", data={}, allow_redirects=False)
    assert empty.status == 401 and empty.content_type == "text/html"
    # A form that cannot be read at all (found by schemathesis): the page again, not a 500.
    unreadable = await client.post(
        "/dashboard/login",
        data=b"key=x",
        headers={"Content-Type": "multipart/form-data"},  # no boundary
        allow_redirects=False,
    )
    assert unreadable.status == 400 and unreadable.content_type == "text/html"


async def test_a_key_without_the_scope_is_refused(client, admin):
    reader = await make_key(client, admin, ["passes:read", "metrics:read"])
    response = await _sign_in(client, _key_of(reader))
    assert (response.status, response.content_type) == (403, "text/html")
    assert "dashboard:read" in await response.text() and COOKIE not in response.cookies
    bearer = await client.get("/dashboard", headers=reader, allow_redirects=False)
    assert (bearer.status, bearer.content_type) == (403, "text/html")
    wrong = await client.get("/dashboard", headers={"Authorization": "Bearer wsk_x.y"})
    assert (wrong.status, wrong.content_type) == (401, "text/html")


async def test_forged_expired_and_orphaned_cookies_are_refused(client, admin, container):
    key = _key_of(await make_key(client, admin, ["dashboard:read"]))
    signed = await _sign_in(client, key)
    value = signed.cookies[COOKIE].value
    client.session.cookie_jar.clear()
    key_id, expires, mac = value.split(".")
    forged = [
        f"{key_id}.{expires}.{'A' * len(mac)}",  # a made-up MAC
        f"{key_id}.{int(expires) + 86_400}.{mac}",  # a longer life, same MAC
        f"bootstrap.{expires}.{mac}",  # another key's id
        "garbage",
    ]
    stored_hash = hash_secret(key.split(".", 1)[1])
    past = datetime.now(UTC) - timedelta(seconds=1)
    expired = make_session_token(container.session_keys[0], key_id, past, stored_hash)
    # Signed with a key this service does not hold.
    foreign = make_session_token(b"x" * 32, key_id, datetime.now(UTC) + timedelta(hours=1), "")
    for cookie in [*forged, expired, foreign]:
        response = await client.get(
            "/dashboard", headers={"Cookie": f"{COOKIE}={cookie}"}, allow_redirects=False
        )
        assert response.status == 303, cookie
        assert response.cookies[COOKIE].value == ""  # the browser is told to drop it
    # A genuine session ends when its key is revoked.
    assert (await _page(client, {"Cookie": f"{COOKIE}={value}"})).program == "demo"
    async with container.engine.begin() as connection:
        await connection.execute(
            text("UPDATE api_keys SET revoked_at = :now WHERE id = :id"),
            {"now": datetime.now(UTC), "id": key_id},
        )
    gone = await client.get(
        "/dashboard", headers={"Cookie": f"{COOKIE}={value}"}, allow_redirects=False
    )
    assert gone.status == 303


async def test_the_bootstrap_key_signs_in_too(client):
    response = await _sign_in(client, ADMIN_KEY)
    assert response.status == 303
    assert response.cookies[COOKIE].value.startswith("bootstrap.")
    assert ADMIN_KEY not in response.cookies[COOKIE].value


async def test_a_program_key_sees_only_its_program(client, admin):
    await make_program(client, admin, "other")
    bound = await make_key(client, admin, ["dashboard:read"], program="other")
    page = await _page(client, bound)
    assert page.program == "other" and page.programs == ["other"]
    assert "outbox-lag" not in page.figures and "only to keys not bound" in page.text
    for query in ("?program=demo", "?program=nope"):
        response = await client.get(f"/dashboard{query}", headers=bound)
        assert (response.status, response.content_type) == (404, "text/html")
    signed = await _sign_in(client, _key_of(bound))
    client.session.cookie_jar.clear()
    assert (await _page(client, _cookie_header(signed))).programs == ["other"]


async def test_a_form_from_another_site_is_refused(client, admin):
    key = _key_of(await make_key(client, admin, ["dashboard:read"]))
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        response = await _sign_in(client, key, **headers)
        assert (response.status, response.content_type) == (403, "text/html"), headers
        assert COOKIE not in response.cookies
    same = await _sign_in(
        client, key, Origin="http://walletsvc.test", **{"Sec-Fetch-Site": "same-origin"}
    )
    assert same.status == 303


async def test_german_pages_follow_accept_language(client, admin):
    headers = {**admin, "Accept-Language": "de-CH, de;q=0.9, en;q=0.5"}
    response = await client.get("/dashboard", headers=headers)
    html = await response.text()
    assert response.headers["Content-Language"] == "de"
    assert "Installierte Karten pro Tag" in html and "Eingelöste Gutscheine" in html


@pytest.fixture
async def with_sink(make_settings, aiohttp_client):
    """The service with a webhook sink whose relay does not run: events stay owed."""
    settings = make_settings(
        public_url="https://wallet.example.test",
        events={
            "relay": "off",
            "webhooks": [
                {
                    "name": "crm",
                    "url": "https://crm.example.test/hooks",
                    "secret": "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                }
            ],
        },
    )
    built = build_container(settings)
    await prepare_database(built)
    try:
        yield built, await aiohttp_client(create_app(built))
    finally:
        if EXTERNAL_DATABASE is not None:
            await empty_all_tables(built)
        await built.close()


async def test_outbox_lag_and_dead_letters_per_sink(with_sink, admin):
    container, client = with_sink
    await issue_loyalty(client, admin, "crm-1")
    # Setting the stage: the first event waits for an hour, and one is a dead letter.
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    async with container.engine.begin() as connection:
        seq = (await connection.execute(text("SELECT min(seq) FROM outbox"))).scalar_one()
        await connection.execute(
            text("UPDATE outbox SET recorded_at = :t WHERE seq = :s"), {"t": hour_ago, "s": seq}
        )
        await connection.execute(
            text(
                "INSERT INTO outbox_deliveries (sink, seq, partition_key, state, attempts, "
                "queued_at, next_attempt_at) VALUES ('crm', :s, 'p', 'dead', 9, :t, :t)"
            ),
            {"s": seq, "t": hour_ago},
        )
    page = await _page(client, admin)
    assert page.sinks == {"crm": {"pending": 0, "dead": 1}}
    assert page.bar("dead-letters", "dead", "crm") == 1
    assert 3600 <= int(page.figures["outbox-lag"]) < 3700
    assert int(page.figures["undistributed"]) >= 1
    # Over https the session cookie is Secure.
    signed = await _sign_in(client, ADMIN_KEY)
    assert signed.cookies[COOKIE]["secure"]
    assert re.fullmatch(r"bootstrap\.[0-9]+\.[A-Za-z0-9_-]+=*", signed.cookies[COOKIE].value)
