"""A program's pass design through the API: bad designs refused at creation, rich ones shown."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import CERTS
from tests.helpers import path_of, unpack, verify_pkpass
from walletsvc.apple.strings import decode_strings

RICH_DESIGN: dict[str, Any] = {
    "logo_text": "Kaffee & Co",
    "background_color": "rgb(60, 30, 20)",
    "barcode_format": "code128",
    "barcode_alt_text": "{points} · {tier}",
    "fields": [
        {
            "key": "level",
            "group": "secondary",
            "label": {"en": "Level", "de": "Stufe erreicht"},
            "value": "{tier}",
        },
        {"key": "terms", "group": "back", "label": "Terms", "value": "See {program} online"},
    ],
    "location_store_ids": ["hamburg", "berlin"],
    "location_text": "{store} is around the corner",
}


def program_payload(program_id: str, apple: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": program_id,
        "name": "Kaffee & Co Rewards",
        "tiers": [
            {"name": "Bronze", "min_points": 0},
            {"name": "Gold", "min_points": 100, "display_name": {"en": "Gold", "de": "Gold"}},
            {
                "name": "Platinum",
                "min_points": 500,
                "display_name": {"en": "Platinum", "de": "Platin"},
            },
        ],
        "apple": apple,
    }


async def test_a_design_breaking_apples_rules_is_refused_at_creation(client, admin):
    clash = {
        "fields": [{"key": "balance", "group": "back", "label": "Balance", "value": "{points}"}]
    }
    response = await client.post(
        "/api/v1/programs", json=program_payload("clash", clash), headers=admin
    )
    assert response.status == 422
    problem = await response.json()
    assert problem["reason"] == "apple_rule"
    assert "field key 'balance' is used twice (Apple requires unique keys)" in problem["detail"]
    listed = await (await client.get("/api/v1/programs", headers=admin)).json()
    assert "clash" not in [program["id"] for program in listed["items"]]


async def test_fields_that_crowd_the_coupons_front_are_refused(client, admin):
    # Four front fields fit a store card, but a coupon adds its expiry date as a fifth.
    crowded = {
        "fields": [
            {"key": f"f{n}", "group": group, "label": f"F{n}", "value": "x"}
            for n, group in enumerate(("secondary", "secondary", "auxiliary", "auxiliary"))
        ]
    }
    response = await client.post(
        "/api/v1/programs", json=program_payload("crowded", crowded), headers=admin
    )
    assert response.status == 422
    problem = await response.json()
    assert problem["reason"] == "apple_rule"
    assert "coupon with a square barcode has 5 secondary and auxiliary fields" in problem["detail"]


async def test_an_unknown_placeholder_is_refused_naming_the_option(client, admin):
    sneaky = {"barcode_alt_text": "{customer.email}"}
    response = await client.post(
        "/api/v1/programs", json=program_payload("sneaky", sneaky), headers=admin
    )
    assert response.status == 422
    assert (await response.json())["field"] == "apple.barcode_alt_text"


async def test_a_rich_design_is_kept_and_shown(client, admin):
    response = await client.post(
        "/api/v1/programs", json=program_payload("kaffee", RICH_DESIGN), headers=admin
    )
    assert response.status == 201, await response.text()
    apple = (await response.json())["apple"]
    assert apple["barcode_format"] == "code128"
    assert apple["fields"][0]["label"] == {"en": "Level", "de": "Stufe erreicht"}
    assert apple["fields"][1]["label"] == {"en": "Terms", "de": None}
    assert apple["location_store_ids"] == ["hamburg", "berlin"]
    listed = await (await client.get("/api/v1/programs", headers=admin)).json()
    kaffee = next(program for program in listed["items"] if program["id"] == "kaffee")
    assert kaffee["apple"] == apple
    assert kaffee["tiers"][2]["display_name"] == {"en": "Platinum", "de": "Platin"}


async def test_an_old_style_program_payload_gets_the_default_design(client, admin):
    response = await client.post(
        "/api/v1/programs",
        json={"id": "plain", "name": "Plain", "tiers": [{"name": "Member", "min_points": 0}]},
        headers=admin,
    )
    assert response.status == 201
    apple = (await response.json())["apple"]
    assert apple["barcode_format"] == "qr"
    assert apple["fields"] == [] and apple["location_store_ids"] == []
    assert apple["location_text"] == "{store}"


async def test_a_pass_of_a_rich_design_carries_its_fields_and_both_languages(
    client, admin, tmp_path
):
    created = await client.post(
        "/api/v1/programs", json=program_payload("kaffee", RICH_DESIGN), headers=admin
    )
    assert created.status == 201
    issued = await client.post(
        "/api/v1/passes",
        json={"program": "kaffee", "kind": "loyalty", "customer_external_id": "crm-rich"},
        headers=admin,
    )
    assert issued.status == 201, await issued.text()
    body = await issued.json()
    download = await client.get(path_of(body["apple"]["pkpass_url"]))
    assert download.status == 200
    bundle = await download.read()
    pass_json = verify_pkpass(bundle, CERTS / "wwdr-dev-ca.pem", tmp_path)
    files = unpack(bundle)

    card = pass_json["storeCard"]
    assert card["headerFields"][0]["value"] == "Bronze"
    assert card["secondaryFields"] == [{"key": "level", "label": "Level", "value": "Bronze"}]
    assert card["backFields"][-1] == {
        "key": "terms",
        "label": "Terms",
        "value": "See Kaffee & Co Rewards online",
    }
    assert [code["format"] for code in pass_json["barcodes"]] == [
        "PKBarcodeFormatCode128",
        "PKBarcodeFormatQR",
    ]
    assert pass_json["barcodes"][0]["altText"] == "0 · Bronze"
    assert pass_json["logoText"] == "Kaffee & Co"

    manifest = json.loads(files["manifest.json"])
    tables = {}
    for language in ("en", "de"):
        name = f"{language}.lproj/pass.strings"
        assert name in manifest
        tables[language] = decode_strings(files[name])
    assert set(tables["en"]) == set(tables["de"])
    labels = [field["label"] for group in card.values() for field in group]
    for label in labels:
        assert label in tables["de"], label
    assert tables["de"]["Level"] == "Stufe erreicht"
    assert tables["de"]["Points"] == "Punkte"
    assert tables["de"]["Platinum"] == "Platin"
    assert {"icon.png", "logo@3x.png", "strip@2x.png"} <= set(files)
