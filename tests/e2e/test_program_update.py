"""Changing a program's design reaches every pass already on a phone."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from tests.conformance.test_apple_web_service import Wallet
from tests.helpers import issue_loyalty, unpack

TIERS = [
    {"name": "Bronze", "min_points": 0},
    {"name": "Silver", "min_points": 500},
    {"name": "Gold", "min_points": 1500},
]


async def _demo(client: Any, admin: dict[str, str]) -> dict[str, Any]:
    programs = await (await client.get("/api/v1/programs", headers=admin)).json()
    demo: dict[str, Any] = next(p for p in programs["items"] if p["id"] == "demo")
    return demo


def _body(program: dict[str, Any], **apple: Any) -> dict[str, Any]:
    design = {k: v for k, v in program["apple"].items() if k not in ("fields",) and v is not None}
    design["fields"] = program["apple"]["fields"]
    design.update(apple)
    return {
        "id": program["id"],
        "name": program["name"],
        "tiers": [{"name": t["name"], "min_points": t["min_points"]} for t in program["tiers"]],
        "points_per_unit": program["points_per_unit"],
        "apple": design,
        "loyalty": program["loyalty"],
    }


async def test_a_new_design_is_pushed_to_every_pass(client, admin):
    wallet = Wallet(client, admin)
    document = await wallet.pass_json(await issue_loyalty(client, admin, "crm-1"))
    assert await wallet.register(document) == 201
    _, before = await wallet.changed(document)
    assert before is not None
    demo = await _demo(client, admin)
    response = await client.put(
        "/api/v1/programs/demo", json=_body(demo, background_color="rgb(120, 0, 40)"), headers=admin
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["design_version"] == demo["design_version"] + 1
    for _ in range(100):  # the refresh runs in the background
        _, after = await wallet.changed(document, before["lastUpdated"])
        if after is not None:
            break
        await asyncio.sleep(0.05)
    assert after is not None and after["serialNumbers"] == [document["serialNumber"]]
    latest = await client.get(
        f"/apple/v1/passes/{document['passTypeIdentifier']}/{document['serialNumber']}",
        headers=wallet.auth(document),
    )
    assert json.loads(unpack(await latest.read())["pass.json"])["backgroundColor"] == (
        "rgb(120, 0, 40)"
    )


async def test_the_same_settings_again_change_nothing(client, admin):
    demo = await _demo(client, admin)
    response = await client.put("/api/v1/programs/demo", json=_body(demo), headers=admin)
    assert response.status == 200
    assert (await response.json())["design_version"] == demo["design_version"]


async def test_a_bad_update_is_refused_and_changes_nothing(client, admin):
    demo = await _demo(client, admin)
    bad_colour = await client.put(
        "/api/v1/programs/demo", json=_body(demo, background_color="red"), headers=admin
    )
    assert bad_colour.status == 422
    assert (await bad_colour.json())["field"] == "apple.background_color"
    other_id = await client.put("/api/v1/programs/nope", json=_body(demo), headers=admin)
    assert other_id.status == 422 and (await other_id.json())["field"] == "id"
    missing = _body(demo) | {"id": "nope"}
    assert (await client.put("/api/v1/programs/nope", json=missing, headers=admin)).status == 404
    assert (await _demo(client, admin)) == demo


def test_the_cli_refreshes_a_program_at_once(tmp_path):
    env = {
        "WALLETSVC_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'w.db'}",
        "WALLETSVC_DATA_DIR": str(tmp_path / "data"),
        "PATH": "/usr/bin:/bin",
    }
    migrate = subprocess.run(
        [sys.executable, "-m", "walletsvc", "migrate"], env=env, capture_output=True, text=True
    )
    assert migrate.returncode == 0, migrate.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "walletsvc", "passes", "refresh", "--program", "nope"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1 and "no program 'nope'" in missing.stderr
