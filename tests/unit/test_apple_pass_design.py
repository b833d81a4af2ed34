"""pass.json carries every design option: barcodes, extra fields, dates, locations, voiding."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from walletsvc.apple.pass_json import PassJsonRenderer
from walletsvc.apple.strings import pass_strings
from walletsvc.domain.customer import Customer
from walletsvc.domain.errors import ConfigurationError, InvalidInput
from walletsvc.domain.pass_content import PassContent, sample_contents
from walletsvc.domain.program import (
    AppleDesign,
    BarcodeFormat,
    FieldGroup,
    LocalizedText,
    PassField,
    Program,
    Tier,
)
from walletsvc.domain.store import Store
from walletsvc.domain.wallet_pass import Coupon, PassKind, PassState, WalletPass

URL = "https://wallet.example.com/apple"
ISSUED = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
DESIGN = AppleDesign(
    pass_type_identifier="pass.com.example.coffee",
    team_identifier="ABCDE12345",
    organization_name="Example Coffee",
    description="Example Coffee card",
)
PROGRAM = Program(
    id="coffee",
    name="Example Coffee",
    tiers=(
        Tier("Bronze", 0),
        Tier("Gold", 500, LocalizedText("Gold", "Gold")),
        Tier("Platinum", 2000, LocalizedText("Platinum", "Platin")),
    ),
    points_per_unit=Decimal("1"),
    apple=DESIGN,
)
CUSTOMER = Customer(
    id="cust-1", program_id="coffee", external_id="crm-1", points_balance=740, tier="Gold"
)
LOYALTY = WalletPass(
    serial="abcdefghjkmnpqrstvwxyz0123",
    program_id="coffee",
    customer_id="cust-1",
    kind=PassKind.LOYALTY,
    authentication_token="t" * 43,
    created_at=ISSUED,
)
EXPIRES = datetime(2026, 4, 30, 22, 0, tzinfo=UTC)
COUPON = replace(
    LOYALTY,
    kind=PassKind.COUPON,
    coupon=Coupon(title="Spring treat", discount="2 for 1", expires_at=EXPIRES),
)
BERLIN = Store("berlin", "coffee", "Berlin Mitte", 52.5200, 13.4050, 100.0)
POTSDAM = Store("potsdam", "coffee", "Potsdam", 52.3906, 13.0645, 100.0)
HAMBURG = Store("hamburg", "coffee", "Hamburg", 53.5511, 9.9937, 100.0)
MUNICH = Store("munich", "coffee", "München", 48.1351, 11.5820, 100.0)


def content(
    design: AppleDesign = DESIGN, wallet_pass: WalletPass = LOYALTY, **extra: Any
) -> PassContent:
    program = replace(PROGRAM, apple=design)
    return PassContent(program, CUSTOMER, wallet_pass, "W1.k1.serial.mac", **extra)


def render(value: PassContent, renderer: PassJsonRenderer | None = None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((renderer or PassJsonRenderer(URL)).render(value))
    return data


def test_loyalty_card_uses_localization_keys_with_change_messages() -> None:
    card = render(content())["storeCard"]
    tier, balance = card["headerFields"][0], card["primaryFields"][0]
    assert (tier["label"], tier["value"], tier["changeMessage"]) == (
        "Tier",
        "Gold",
        "Your tier is now %@",
    )
    assert (balance["label"], balance["value"], balance["changeMessage"]) == (
        "Points",
        740,
        "You now have %@ points",
    )
    german = pass_strings(PROGRAM)["de"]
    assert german["Tier"] == "Stufe"
    assert german["You now have %@ points"] == "Sie haben jetzt %@ Punkte"
    assert german["Platinum"] == "Platin"


@pytest.mark.parametrize(
    ("chosen", "apple_format"),
    [
        (BarcodeFormat.QR, "PKBarcodeFormatQR"),
        (BarcodeFormat.PDF417, "PKBarcodeFormatPDF417"),
        (BarcodeFormat.AZTEC, "PKBarcodeFormatAztec"),
    ],
)
def test_barcode_uses_the_designs_format(chosen: BarcodeFormat, apple_format: str) -> None:
    barcodes = render(content(replace(DESIGN, barcode_format=chosen)))["barcodes"]
    assert barcodes == [
        {"format": apple_format, "message": "W1.k1.serial.mac", "messageEncoding": "iso-8859-1"}
    ]


def test_code128_is_followed_by_a_qr_code_for_apple_watch() -> None:
    design = replace(DESIGN, barcode_format=BarcodeFormat.CODE128, barcode_alt_text="{points} pts")
    barcodes = render(content(design))["barcodes"]
    assert [barcode["format"] for barcode in barcodes] == [
        "PKBarcodeFormatCode128",
        "PKBarcodeFormatQR",
    ]
    assert {barcode["message"] for barcode in barcodes} == {"W1.k1.serial.mac"}
    assert {barcode["altText"] for barcode in barcodes} == {"740 pts"}


def test_alt_text_fills_the_fixed_placeholders() -> None:
    design = replace(DESIGN, barcode_alt_text="{program} · {tier} · {serial}")
    barcode = render(content(design))["barcodes"][0]
    assert barcode["altText"] == "Example Coffee · Gold · abcdefghjkmnpqrstvwxyz0123"


def test_program_fields_land_in_their_groups_with_filled_values() -> None:
    design = replace(
        DESIGN,
        fields=(
            PassField("level", FieldGroup.SECONDARY, LocalizedText("Level"), "{tier}"),
            PassField("total", FieldGroup.AUXILIARY, LocalizedText("Balance", "Stand"), "{points}"),
            PassField(
                "terms", FieldGroup.BACK, LocalizedText("Terms", "Bedingungen"), "See {program}"
            ),
        ),
    )
    card = render(content(design))["storeCard"]
    assert card["secondaryFields"] == [{"key": "level", "label": "Level", "value": "Gold"}]
    assert card["auxiliaryFields"] == [{"key": "total", "label": "Balance", "value": "740"}]
    assert card["backFields"][-1] == {
        "key": "terms",
        "label": "Terms",
        "value": "See Example Coffee",
    }
    strings = pass_strings(replace(PROGRAM, apple=design))
    assert strings["de"]["Terms"] == "Bedingungen"
    assert strings["de"]["Level"] == "Level"  # no German given: English stands in


def test_coupon_is_relevant_on_its_last_day_and_expires() -> None:
    document = render(content(wallet_pass=COUPON))
    assert document["expirationDate"] == "2026-04-30T22:00:00+00:00"
    assert document["relevantDates"] == [
        {"startDate": "2026-04-29T22:00:00+00:00", "endDate": "2026-04-30T22:00:00+00:00"}
    ]
    assert "relevantDate" not in document
    assert document["coupon"]["primaryFields"][0]["changeMessage"] == "Your offer is now %@"


def test_coupon_issued_on_its_last_day_is_relevant_from_its_issue() -> None:
    late = replace(COUPON, created_at=EXPIRES - timedelta(hours=3, microseconds=5))
    document = render(content(wallet_pass=late))
    assert document["relevantDates"] == [
        {"startDate": "2026-04-30T18:59:59+00:00", "endDate": "2026-04-30T22:00:00+00:00"}
    ]


def test_coupon_without_expiry_has_no_dates() -> None:
    open_ended = replace(COUPON, coupon=Coupon(title="Free refill"))
    document = render(content(wallet_pass=open_ended))
    assert "relevantDates" not in document and "expirationDate" not in document


def test_voided_pass_says_so_and_stops_asking_for_attention() -> None:
    voided = replace(COUPON, state=PassState.REDEEMED)
    document = render(content(wallet_pass=voided, stores=(BERLIN,), home_store_id="berlin"))
    assert document["voided"] is True
    assert "relevantDates" not in document and "locations" not in document
    assert document["expirationDate"] == "2026-04-30T22:00:00+00:00"


def test_locations_start_at_the_home_store_with_the_designs_text() -> None:
    design = replace(DESIGN, location_text="{program} {store}")
    document = render(
        content(design, stores=(MUNICH, HAMBURG, POTSDAM, BERLIN), home_store_id="berlin")
    )
    assert [location["relevantText"] for location in document["locations"]] == [
        "Example Coffee Berlin Mitte",
        "Example Coffee Potsdam",
        "Example Coffee Hamburg",
        "Example Coffee München",
    ]
    assert document["locations"][0] == {
        "latitude": 52.52,
        "longitude": 13.405,
        "relevantText": "Example Coffee Berlin Mitte",
    }


def test_a_pass_without_stores_has_no_locations() -> None:
    assert "locations" not in render(content())


def test_same_content_renders_the_same_bytes() -> None:
    design = replace(
        DESIGN,
        barcode_format=BarcodeFormat.CODE128,
        fields=(PassField("level", FieldGroup.BACK, LocalizedText("Level", "Stufe"), "{tier}"),),
    )
    stores = (MUNICH, HAMBURG, BERLIN)
    renderer = PassJsonRenderer(URL)
    first = renderer.render(content(design, COUPON, stores=stores, home_store_id="hamburg"))
    again = PassJsonRenderer(URL).render(
        content(design, COUPON, stores=tuple(reversed(stores)), home_store_id="hamburg")
    )
    assert first == again


def test_a_changed_balance_changes_the_bytes() -> None:
    renderer = PassJsonRenderer(URL)
    richer = replace(content(), customer=replace(CUSTOMER, points_balance=741))
    assert renderer.render(content()) != renderer.render(richer)


def test_every_rendered_pass_is_checked_against_apples_rules() -> None:
    clash = replace(
        DESIGN, fields=(PassField("balance", FieldGroup.BACK, LocalizedText("Again"), "x"),)
    )
    with pytest.raises(InvalidInput) as caught:
        PassJsonRenderer(URL).render(content(clash))
    assert caught.value.reason == "apple_rule"
    assert "'balance' is used twice" in caught.value.detail


def test_plain_http_web_service_is_a_deployment_error_when_https_is_required() -> None:
    renderer = PassJsonRenderer("http://wallet.example.com/apple", require_https=True)
    with pytest.raises(ConfigurationError) as caught:
        renderer.render(content())
    assert caught.value.reason == "apple_rule"
    assert "https" in caught.value.detail
    assert render(content(), PassJsonRenderer("http://localhost:8080/apple"))


def test_samples_cover_every_tier_and_a_coupon_and_all_pass_the_rules() -> None:
    samples = sample_contents(PROGRAM)
    assert [s.customer.tier for s in samples if s.wallet_pass.kind is PassKind.LOYALTY] == [
        "Bronze",
        "Gold",
        "Platinum",
    ]
    assert [s.wallet_pass.kind for s in samples].count(PassKind.COUPON) == 1
    renderer = PassJsonRenderer(URL, require_https=True)
    for sample in samples:
        renderer.render(sample)
