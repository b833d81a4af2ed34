"""The loyalty engine's side: authoritative balances and tiers, entries, the tier feed, reviews."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from tests.conformance.test_apple_web_service import Wallet
from tests.e2e.test_access import make_key
from tests.helpers import issue_loyalty
from walletsvc.bootstrap import build_container
from walletsvc.services.loyalty_review import review_program
from walletsvc.web.app import create_app

PROBLEM = "application/problem+json"


async def _customer(client: Any, admin: dict[str, str], external_id: str, program: str = "demo"):
    response = await client.post(
        "/api/v1/customers",
        json={"external_id": external_id, "program": program},
        headers=admin,
    )
    assert response.status in (200, 201), await response.text()
    return (await response.json())["id"]


async def _entry(client, admin, customer_id, kind, points, key, occurred_at=None):
    body: dict[str, Any] = {"kind": kind, "points": points, "business_key": key}
    if occurred_at is not None:
        body["occurred_at"] = occurred_at.isoformat()
    response = await client.post(
        f"/api/v1/customers/{customer_id}/ledger-entries", json=body, headers=admin
    )
    return response.status, await response.json()


async def _put(client, admin, customer_id, **body):
    response = await client.put(
        f"/api/v1/customers/{customer_id}/loyalty", json=body, headers=admin
    )
    return response.status, await response.json()


async def _feed(client, admin, after="0", limit=100):
    response = await client.get(f"/api/v1/tier-updates?after={after}&limit={limit}", headers=admin)
    assert response.status == 200, await response.text()
    return await response.json()


async def _program(client, admin, program_id, **loyalty):
    response = await client.post(
        "/api/v1/programs",
        json={
            "id": program_id,
            "name": program_id.title(),
            "tiers": [
                {"name": "Bronze", "min_points": 0},
                {"name": "Silver", "min_points": 500},
                {"name": "Gold", "min_points": 1500},
            ],
            "loyalty": loyalty,
        },
        headers=admin,
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def _count(container, sql, **params):
    async with container.engine.connect() as connection:
        return int((await connection.execute(text(sql), params)).scalar() or 0)


async def test_the_engine_sets_the_balance_and_the_card_shows_it(client, admin, container):
    issued = await issue_loyalty(client, admin, "crm-1")
    wallet = Wallet(client, admin)
    before = await wallet.pass_json(issued)
    pass_info = await (await client.get(f"/api/v1/passes/{issued['serial']}", headers=admin)).json()
    customer_id = pass_info["customer_id"]
    status, body = await _put(client, admin, customer_id, points=620)
    assert status == 200
    assert (body["balance"], body["tier"], body["tier_floor"]) == (620, "Silver", None)
    after = await wallet.pass_json(issued)
    assert "620" in str(after) and "620" not in str(before)
    # Setting what is already set is no movement: one adjust entry, not two.
    assert (await _put(client, admin, customer_id, points=620))[0] == 200
    entries = await _count(
        container, "SELECT count(*) FROM ledger_entries WHERE customer_id = :c", c=customer_id
    )
    assert entries == 1
    feed = await _feed(client, admin)
    assert [(i["old_tier"], i["new_tier"], i["reason"]) for i in feed["items"]] == [
        ("Bronze", "Silver", "adjust")
    ]


async def test_the_engines_tier_applies_now_and_floors_reviews(client, admin, container):
    await _program(client, admin, "shop", downgrade="balance")
    customer_id = await _customer(client, admin, "crm-2", "shop")
    status, body = await _put(client, admin, customer_id, tier="Silver")
    assert status == 200 and (body["tier"], body["tier_floor"]) == ("Silver", "Silver")
    status, body = await _entry(client, admin, customer_id, "earn", 1600, "order-1")
    assert (status, body["tier"]) == (201, "Gold")  # upgrades happen at once
    status, body = await _entry(client, admin, customer_id, "spend", 1500, "reward-1")
    assert (status, body["balance"], body["tier"]) == (201, 100, "Gold")  # not until reviewed
    report = await review_program(container.ctx, "shop")
    assert (report.customers, report.tiers_changed) == (1, 1)
    profile = await (await client.get(f"/api/v1/customers/{customer_id}", headers=admin)).json()
    assert profile["tier"] == "Silver"  # the balance reaches Bronze; the floor holds Silver
    again = await review_program(container.ctx, "shop")
    assert again.tiers_changed == 0
    feed = await _feed(client, admin)
    reasons = [(i["new_tier"], i["reason"]) for i in feed["items"]]
    assert reasons == [("Silver", "engine"), ("Gold", "earn"), ("Silver", "review")]


async def test_the_rolling_policy_counts_only_recent_earnings(client, admin, container):
    await _program(client, admin, "rolling", downgrade="rolling", qualification_days=365)
    old_timer = await _customer(client, admin, "crm-old", "rolling")
    regular = await _customer(client, admin, "crm-regular", "rolling")
    long_ago = datetime.now(UTC) - timedelta(days=400)
    await _entry(client, admin, old_timer, "earn", 2000, "o-1", occurred_at=long_ago)
    await _entry(client, admin, regular, "earn", 600, "r-1")
    report = await review_program(container.ctx, "rolling")
    assert (report.customers, report.tiers_changed) == (2, 1)
    tiers = {}
    for customer_id in (old_timer, regular):
        profile = await (await client.get(f"/api/v1/customers/{customer_id}", headers=admin)).json()
        tiers[customer_id] = (profile["tier"], profile["balance"])
    assert tiers == {old_timer: ("Bronze", 2000), regular: ("Silver", 600)}


async def test_points_expire_oldest_first_once_a_day(client, admin, container):
    await _program(client, admin, "expiring", points_expiry_days=30)
    customer_id = await _customer(client, admin, "crm-3", "expiring")
    now = datetime.now(UTC)
    await _entry(client, admin, customer_id, "earn", 100, "e-1", occurred_at=now - timedelta(60))
    await _entry(client, admin, customer_id, "earn", 50, "e-2")
    await _entry(client, admin, customer_id, "spend", 30, "s-1")
    report = await review_program(container.ctx, "expiring")
    assert report.points_expired == 70  # 100 old points, 30 of them already spent
    assert (await review_program(container.ctx, "expiring")).points_expired == 0
    profile = await (await client.get(f"/api/v1/customers/{customer_id}", headers=admin)).json()
    assert profile["balance"] == 50
    events = await _count(
        container, "SELECT count(*) FROM outbox WHERE type LIKE '%points_expired%'"
    )
    assert events == 1


async def test_an_entry_counts_once_per_business_key(client, admin, container):
    customer_id = await _customer(client, admin, "crm-4")
    assert (await _entry(client, admin, customer_id, "earn", 300, "order-9"))[0] == 201
    status, body = await _entry(client, admin, customer_id, "earn", 300, "order-9")
    assert (status, body["balance"]) == (200, 300)
    status, body = await _entry(client, admin, customer_id, "earn", 301, "order-9")
    assert (status, body["reason"]) == (409, "business_key_reused")
    answers = await asyncio.gather(
        *(_entry(client, admin, customer_id, "spend", 10, "burst") for _ in range(10))
    )
    assert sorted(status for status, _ in answers) == [200] * 9 + [201]
    status, body = await _entry(client, admin, customer_id, "spend", 1000, "too-much")
    assert (status, body["reason"]) == (409, "insufficient_points")
    profile = await (await client.get(f"/api/v1/customers/{customer_id}", headers=admin)).json()
    assert profile["balance"] == 290


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("loyalty", {}, "points"),
        ("loyalty", {"points": -1}, "points"),
        ("loyalty", {"tier": "Platinum"}, "tier"),
        ("ledger-entries", {"kind": "expire", "points": 1, "business_key": "k"}, "kind"),
        ("ledger-entries", {"kind": "earn", "points": 0, "business_key": "k"}, "points"),
        ("ledger-entries", {"kind": "adjust", "points": 0, "business_key": "k"}, "points"),
        ("ledger-entries", {"kind": "earn", "points": 5, "business_key": "a b"}, "business_key"),
        (
            "ledger-entries",
            {"kind": "earn", "points": 5, "business_key": "k", "occurred_at": "2026-01-01T10:00"},
            "occurred_at",
        ),
    ],
)
async def test_bad_loyalty_input_is_refused_naming_the_field(client, admin, path, body, field):
    customer_id = await _customer(client, admin, "crm-5")
    method = client.put if path == "loyalty" else client.post
    response = await method(f"/api/v1/customers/{customer_id}/{path}", json=body, headers=admin)
    assert response.status == 422, await response.text()
    assert response.content_type == PROBLEM
    problem = await response.json()
    assert field in (problem.get("field") or "") + str(problem.get("errors", "")), problem


async def test_loyalty_calls_check_scope_and_program(client, admin):
    customer_id = await _customer(client, admin, "crm-6")
    reader = await make_key(client, admin, ["loyalty:read"])
    assert (await _put(client, reader, customer_id, points=5))[0] == 403
    await _program(client, admin, "other")
    outsider = await make_key(client, admin, ["loyalty:write", "loyalty:read"], program="other")
    assert (await _put(client, outsider, customer_id, points=5))[0] == 404
    await _put(client, admin, customer_id, points=900)
    assert (await _feed(client, outsider))["items"] == []  # demo's changes are not theirs
    assert len((await _feed(client, reader))["items"]) == 1
    no_key = await client.get("/api/v1/tier-updates")
    assert no_key.status == 401
    bad = await client.get("/api/v1/tier-updates?after=-1", headers=admin)
    assert bad.status == 422 and bad.content_type == PROBLEM


async def test_the_feed_pages_by_cursor(client, admin):
    ids = [await _customer(client, admin, f"crm-p{n}") for n in range(5)]
    for customer_id in ids:
        await _put(client, admin, customer_id, points=600)
    first = await _feed(client, admin, limit=2)
    assert len(first["items"]) == 2
    rest = await _feed(client, admin, after=first["next_cursor"], limit=100)
    seen = [i["customer_id"] for i in first["items"] + rest["items"]]
    assert seen == ids
    empty = await _feed(client, admin, after=rest["next_cursor"])
    assert empty == {"items": [], "next_cursor": rest["next_cursor"]}


@pytest.mark.postgres
async def test_a_reader_polling_during_concurrent_writes_misses_nothing(client, admin):
    ids = [await _customer(client, admin, f"crm-c{n}") for n in range(40)]
    done = asyncio.Event()
    seen: list[str] = []

    async def reader() -> None:
        cursor = "0"
        while True:
            finished = done.is_set()
            page = await _feed(client, admin, after=cursor, limit=7)
            seen.extend(i["cursor"] for i in page["items"])
            cursor = page["next_cursor"]
            if finished and not page["items"]:
                return

    async def writer(customer_id: str) -> None:
        for points in (600, 1600, 100):
            status, _ = await _put(client, admin, customer_id, points=points)
            assert status == 200

    polling = asyncio.create_task(reader())
    await asyncio.gather(*(writer(c) for c in ids))
    done.set()
    await polling
    everything = await _feed(client, admin, limit=500)
    assert len(everything["items"]) == 80  # Bronze->Silver->Gold for each; no auto downgrade
    assert seen == [i["cursor"] for i in everything["items"]]


async def test_the_scheduled_review_runs_in_the_service(
    client, admin, make_settings, aiohttp_client
):
    await _program(client, admin, "nightly", downgrade="balance")
    customer_id = await _customer(client, admin, "crm-n", "nightly")
    await _entry(client, admin, customer_id, "earn", 600, "n-1")
    await _entry(client, admin, customer_id, "spend", 500, "n-2")
    scheduled = build_container(make_settings(loyalty={"review_interval_s": 3600}))
    try:
        await aiohttp_client(create_app(scheduled))
        for _ in range(100):
            profile = await (
                await client.get(f"/api/v1/customers/{customer_id}", headers=admin)
            ).json()
            if profile["tier"] == "Bronze":
                break
            await asyncio.sleep(0.05)
        assert profile["tier"] == "Bronze"
    finally:
        await scheduled.close()


async def test_one_process_claims_each_run_of_a_job(container):
    now = datetime.now(UTC)
    claims = []
    for at in (now, now + timedelta(seconds=10), now + timedelta(hours=1)):
        async with container.ctx.uow() as uow:
            claims.append(await uow.schedule.claim("nightly", at, 3600))
            await uow.commit()
    assert claims == [True, False, True]
