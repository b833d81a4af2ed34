"""Google Wallet serializers, save links and the callback signed-string construction."""

from __future__ import annotations

import struct
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import jwt

from tests.e2e.google_setup import public_key_of
from walletsvc.domain.customer import Customer
from walletsvc.domain.pass_content import PassContent
from walletsvc.domain.program import AppleDesign, GoogleSettings, Program, Tier
from walletsvc.domain.store import Store
from walletsvc.domain.wallet_pass import Coupon, PassKind, PassState, WalletPass
from walletsvc.google.callback import length_value
from walletsvc.google.dev_material import ensure_dev_service_account
from walletsvc.google.objects import render_class, render_object
from walletsvc.google.service_account import ServiceAccount, save_url

ISSUER = "3388000000022100000"
PROGRAM = Program(
    id="kaffee",
    name="Kaffee Rewards",
    tiers=(Tier("Bronze", 0), Tier("Gold", 100)),
    points_per_unit=Decimal(1),
    apple=AppleDesign("pass.dev.walletsvc.demo", "DEVTEAM123", "Kaffee & Co", "card"),
    google=GoogleSettings(issuer_id=ISSUER),
)


def _content(kind: PassKind = PassKind.LOYALTY, **changes: object) -> PassContent:
    wallet_pass = WalletPass(
        serial="a" * 26,
        program_id="kaffee",
        customer_id="c1",
        kind=kind,
        authentication_token="t",
        coupon=Coupon("Free coffee", expires_at=datetime(2031, 1, 1, tzinfo=UTC))
        if kind is PassKind.COUPON
        else None,
        created_at=datetime(2030, 1, 1, tzinfo=UTC),
    )
    wallet_pass = replace(wallet_pass, **changes)  # type: ignore[arg-type]
    stores = tuple(
        Store(f"s{n:02d}", "kaffee", f"Store {n}", 50.0 + n / 100, 7.0, 100) for n in range(14)
    )
    customer = Customer("c1", "kaffee", "crm-1", points_balance=120, tier="Gold")
    return PassContent(PROGRAM, customer, wallet_pass, "W1.abcd.x.y", stores)


def test_length_value_prefixes_each_chunk_with_its_little_endian_utf8_length():
    assert length_value("GooglePayPasses", "ä") == (
        struct.pack("<I", 15) + b"GooglePayPasses" + b"\x02\x00\x00\x00" + "ä".encode()
    )


def test_a_loyalty_object_shows_points_tier_barcode_and_at_most_ten_locations():
    body = render_object(_content()).body
    assert body["id"] == f"{ISSUER}.{'a' * 26}" and body["classId"] == f"{ISSUER}.kaffee"
    assert body["loyaltyPoints"]["balance"] == {"int": 120}
    assert body["secondaryLoyaltyPoints"]["balance"] == {"string": "Gold"}
    assert body["barcode"] == {"type": "QR_CODE", "value": "W1.abcd.x.y"}
    assert len(body["merchantLocations"]) == 10
    assert "messages" not in body and body["state"] == "ACTIVE"


def test_states_map_to_googles():
    for state, google in [
        (PassState.VOIDED, "INACTIVE"),
        (PassState.REDEEMED, "COMPLETED"),
        (PassState.EXPIRED, "EXPIRED"),
    ]:
        assert render_object(_content(PassKind.COUPON, state=state)).body["state"] == google


def test_an_offer_class_has_what_google_requires():
    body = render_class(PROGRAM, PassKind.COUPON, public_url="https://w.example", logo_url="x").body
    assert {"id", "issuerName", "title", "provider", "redemptionChannel", "reviewStatus"} <= set(
        body
    )
    assert body["id"] == f"{ISSUER}.kaffee-offer"


def test_the_digest_changes_with_the_content_only():
    assert render_object(_content()).digest == render_object(_content()).digest
    assert (
        render_object(_content()).digest
        != render_object(_content(version=2, state=PassState.VOIDED)).digest
    )


def test_a_save_link_is_a_skinny_rs256_jwt_under_1800_characters(tmp_path: Path):
    path = ensure_dev_service_account(tmp_path / "sa.json")
    account = ServiceAccount.from_file(path)
    object_id = f"{ISSUER}." + "z" * 26
    url = save_url(account, "loyaltyObjects", object_id, f"{ISSUER}.kaffee", ["https://w.example"])
    assert len(url) < 1800
    claims = jwt.decode(
        url.rsplit("/", 1)[1], public_key_of(path), algorithms=["RS256"], audience="google"
    )
    assert claims["typ"] == "savetowallet" and claims["iss"] == account.client_email
    assert claims["payload"] == {
        "loyaltyObjects": [{"id": object_id, "classId": f"{ISSUER}.kaffee"}]
    }
